"""The hook through which user handlers and SPP policies keep their own state in a snapshot.

A hook is a name and two callables: `save()` returns JSON-able data, `load(data)` puts it back.
A snapshot restored before a hook is registered (a restored process loads its handler and policy
files after the machine) keeps that hook's data pending; registering the hook then loads it.
"""

from __future__ import annotations

from collections.abc import Callable

from vmm.errors import UserCodeError
from vmm.record import TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any


class Hook(TupleRecord):
    save: Callable[[], Any]
    load: Callable[[Any], None]


class SnapshotHooks:
    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.pending: dict[str, Any] = {}

    def register(self, name: str, save: Callable[[], Any], load: Callable[[Any], None]) -> None:
        self.hooks[name] = Hook(save, load)
        if name in self.pending:
            self._load(name, self.pending.pop(name))

    def save_all(self) -> dict[str, str]:
        """Each hook's data as JSON text, so later changes to the live objects cannot reach it."""
        import json  # a run that never snapshots never needs it (start-up time)

        out = {}
        for name, hook in self.hooks.items():
            try:
                out[name] = json.dumps(hook.save(), sort_keys=True)
            except Exception as e:
                raise UserCodeError(f"snapshot hook {name!r} could not save its state: {e}") from None
        return out

    def load_all(self, saved: dict[str, str]) -> None:
        import json

        self.pending = {}
        for name, text in saved.items():
            data = json.loads(text)
            if name in self.hooks:
                self._load(name, data)
            else:
                self.pending[name] = data

    def _load(self, name: str, data: Any) -> None:
        try:
            self.hooks[name].load(data)
        except Exception as e:
            raise UserCodeError(f"snapshot hook {name!r} could not restore its state: {e}") from None


def register_module_hooks(hooks: SnapshotHooks, name: str, module: Any) -> None:
    """A handler or policy file that defines `snapshot_state()` and `restore_state(data)` keeps
    its state in snapshots under `name`."""
    save, load = getattr(module, "snapshot_state", None), getattr(module, "restore_state", None)
    if callable(save) and callable(load):
        hooks.register(name, save, load)
