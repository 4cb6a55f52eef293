"""Loading a user's Python file (handlers, policies) and calling its entry function."""

from __future__ import annotations

import importlib.util
import os.path
from collections.abc import Callable
from types import ModuleType
from typing import Any

from vmm.errors import ConfigError, PyvmmError, UserCodeError
from vmm.inputs import TEXT_FILE_LIMIT, InputFileError, check_regular


def load_user_file(path: str, kind: str) -> ModuleType:
    try:
        check_regular(path, TEXT_FILE_LIMIT)
    except InputFileError as e:
        raise ConfigError(f"{kind} file {path!r} {e}") from None
    spec = importlib.util.spec_from_file_location(f"pyvmm_user_{_stem(path)}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{kind} file {path!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{kind} file {path!r} line {e.lineno}: syntax error: {e.msg}") from None
    except OSError as e:
        raise ConfigError(f"{kind} file {path!r} is not readable: {e.strerror}") from None
    except SystemExit as e:
        # pyvmm owns the process status: a file that exits would pick one outside the table
        raise UserCodeError(f"{kind} file {path!r} called sys.exit({e.code!r}) while loading") from None
    except Exception as e:
        raise UserCodeError(f"{kind} file {path!r} raised while loading: {e!r}", user_traceback(e)) from None
    return module


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def call_entry(module: ModuleType, path: str, kind: str, name: str, *args: Any) -> Any:
    fn: Callable[..., Any] | None = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"{kind} file {path!r} defines no {name}() function")
    try:
        return fn(*args)
    except PyvmmError:
        raise
    except SystemExit as e:
        raise UserCodeError(f"{kind} file {path!r}: {name}() called sys.exit({e.code!r})") from None
    except Exception as e:
        raise UserCodeError(f"{kind} file {path!r}: {name}() raised {e!r}", user_traceback(e)) from None


def user_traceback(e: BaseException) -> str:
    """The traceback from the first frame outside pyvmm's own package onward."""
    import traceback  # only a failing file needs it: kept off every run's start-up

    frames = traceback.extract_tb(e.__traceback__)
    pkg = os.path.dirname(__file__)
    keep = [f for f in frames if not f.filename.startswith(pkg)] or frames
    return "".join(traceback.format_list(keep)) + "".join(traceback.format_exception_only(type(e), e))
