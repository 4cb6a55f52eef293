"""What `pyvmm run` pays for before the guest starts: the modules a flat binary's run imports, and
the dataclasses and typing.NamedTuples created while importing them.

A dataclass compiles its generated methods when its class statement runs (about 4.5 M
instructions for a frozen one under callgrind), a typing.NamedTuple compiles each field's
annotation (about 0.9 M for four fields), and the 26 dataclasses a plain run once created were a
quarter of its start-up. The records a run builds at start-up are `vmm.record` classes; these
tests keep it that way, and keep the PC platform, the ELF and multiboot parsers, the snapshot
file code, the trace writer and click (a plain run's line is read by vmm.cli.run_args) out of a
flat binary's run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# Dataclasses created on the way: none. Keep it so.
ALLOWED_DATACLASSES: set[str] = set()

# Modules a flat binary's run has no use for.
NOT_IMPORTED = [
    "vmm.board.pc",
    "vmm.board.sleep",
    "vmm.cpu.catalog",
    "vmm.devices.acpi_pm",
    "vmm.devices.fw_cfg",
    "vmm.devices.pci",
    "vmm.firmware.acpi",
    "vmm.loaders.elf",
    "vmm.loaders.multiboot",
    "vmm.snapshot.state",
    "vmm.runner.tracewriter",
    "vmm.cli.userfile",
    "vmm.cli.commands",
    "click",
    "difflib",
    "importlib.util",
    "json",
    "pathlib",
    "traceback",
]

PROBE = textwrap.dedent(
    """
    import dataclasses, sys
    made = []
    original = dataclasses._process_class
    def counting(cls, *args, **kwargs):
        made.append(f"{cls.__module__}.{cls.__qualname__}")
        return original(cls, *args, **kwargs)
    dataclasses._process_class = counting
    import typing
    tuples = []
    original_tuple = typing.NamedTupleMeta.__new__
    def counting_tuple(cls, name, bases, ns):
        tuples.append(f"{ns['__module__']}.{name}")
        return original_tuple(cls, name, bases, ns)
    typing.NamedTupleMeta.__new__ = counting_tuple
    import vmm.cli.entry, vmm.cli.launch, vmm.cli.outcome, vmm.loaders
    from vmm.cli.run_args import read_run_line
    assert read_run_line(["run", "-q", "guest.bin"]) is not None  # a plain run's line, read without click
    from vmm.loaders import detect_format
    detect_format(b"\\x90" * 64)  # a flat binary, as a run tells it apart
    modules = sorted(sys.modules)  # taken before the probe loads json to report
    import json
    print(json.dumps({"dataclasses": made, "named_tuples": tuples, "modules": modules}))
    """
)


def _probe() -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    result: dict[str, list[str]] = json.loads(out)
    return result


def test_start_up_creates_only_the_allowed_dataclasses() -> None:
    made = set(_probe()["dataclasses"])
    assert made <= ALLOWED_DATACLASSES, sorted(made - ALLOWED_DATACLASSES)


def test_start_up_creates_no_typing_named_tuple() -> None:
    assert _probe()["named_tuples"] == []


def test_a_flat_run_does_not_import_what_it_does_not_use() -> None:
    modules = set(_probe()["modules"])
    assert [m for m in NOT_IMPORTED if m in modules] == []
