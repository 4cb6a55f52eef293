"""The `pyvmm` command line: options (QEMU's spellings too), launching a run, and reporting how it
ended (statuses come from `vmm.errors.status_of`)."""

from __future__ import annotations

from vmm.cli.commands import main

__all__ = ["main"]
