"""Loading --policy arguments: a built-in example by name, or a Python file."""

from __future__ import annotations

from vmm.cli.userfile import call_entry, load_user_file
from vmm.errors import ConfigError
from vmm.snapshot.hooks import SnapshotHooks, register_module_hooks
from vmm.spp.controller import Spp
from vmm.spp.policies import BUILTIN


def load_policy(arg: str, spp: Spp, hooks: SnapshotHooks | None = None) -> None:
    """A policy file defines policy(event) (added as is) or setup(spp) (adds its own); one that
    also defines snapshot_state() and restore_state(data) keeps its state in snapshots."""
    path = str(BUILTIN[arg]) if arg in BUILTIN else arg
    module = load_user_file(path, "policy")
    if hooks is not None:
        register_module_hooks(hooks, f"policy:{arg}", module)
    if callable(getattr(module, "setup", None)):
        call_entry(module, path, "policy", "setup", spp)
    elif callable(getattr(module, "policy", None)):
        spp.add_policy(module.policy)
    else:
        raise ConfigError(f"policy file {path!r} defines neither policy(event) nor setup(spp)")
