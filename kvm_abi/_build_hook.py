"""setuptools' build_py, extended to write kvm_abi's generated out-of-line ffi modules.

pyproject.toml names this class under ``[tool.setuptools] cmdclass``; setuptools loads the file
by path, without importing the kvm_abi package, and the generator is loaded the same way.

- Building a wheel (``pip install .``, ``python -m build``): the modules are written into the
  build directory beside the copied sources, overwriting any copied from the source tree, so a
  wheel always carries modules generated from the cdef it ships; the source tree is untouched.
- An editable install (``pip install -e .``): build_py copies nothing, the package being imported
  from the source tree, so the modules are written there. After a cdef edit, the Makefile's
  setup step regenerates them (an editable install does not rebuild itself).

Only cffi is needed (``[build-system] requires``): out-of-line ABI mode involves no C compiler.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from setuptools.command.build_py import build_py


def _ffi_build() -> ModuleType:
    path = Path(__file__).resolve().with_name("_ffi_build.py")
    spec = importlib.util.spec_from_file_location("_kvm_abi_ffi_build", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithFfi(build_py):
    """build_py, then the generated ffi modules (see the module docstring for where)."""

    def run(self) -> None:
        super().run()
        generator = _ffi_build()
        if self.editable_mode:
            written = generator.generate(generator.PACKAGE_DIR, bytecode=True)
        else:
            written = generator.generate(Path(self.build_lib) / "kvm_abi")
        for path in written:
            self.announce(f"generated {path}", level=2)
