"""The debugger's `monitor` commands (qRcmd): pyvmm's own state, as text.

info exits         exits per vCPU
info spp           every page with an SPP mask (watchpoints' pages among them), and its mask
info breakpoints   what each debugger breakpoint uses: a planted int3 or a debug register
info registers     the selected vCPU's registers, with the control registers and bases
help
"""

from __future__ import annotations

from vmm.gdb import registers as R
from vmm.spp.masks import FULL

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

HELP = (
    "pyvmm monitor commands: info exits, info spp, info breakpoints, info registers, info cpus, "
    "x/FMT ADDR, xp/FMT ADDR, help\n"
)


def monitor_command(command: str, stub: Any) -> str:
    words = command.split()
    if words in (["info", "exits"], ["exits"], ["stats"]):
        return "".join(f"vCPU {v.index}: {v.exits} exits\n" for v in stub.vcpus)
    if words == ["info", "spp"]:
        return spp_text(stub._spp_masks() if stub._spp_masks is not None else None, stub)
    if words == ["info", "breakpoints"]:
        return breakpoints_text(stub)
    if words == ["info", "registers"]:
        return registers_text(R.read_state(stub.vcpus[stub.current]), stub.current)
    if words == ["help"]:
        return HELP
    if words and (words[0].split("/")[0] in ("x", "xp") or words == ["info", "cpus"]):
        from vmm.debug.console import MonitorConsole

        console = MonitorConsole(stub.vcpus, stub.memory, lambda: None)
        console.cpu = stub.current
        return console.answer(command)  # the vCPUs are stopped: answered here, on the stopped one's thread
    return f"unknown monitor command {command!r}; try 'help'\n"


def spp_text(masks: dict[int, int] | None, stub: Any) -> str:
    if masks is None:
        return "SPP is off (no page protected, no watchpoint)\n"
    pages = {p: m for p, m in masks.items() if m != FULL}
    if not pages:
        return "SPP is on; no page is protected\n"
    watched = stub._watchpoints().owned if stub._watchpoints is not None else set()
    lines = [f"{len(pages)} protected page(s); mask bit i set = sub-page i (128 bytes) writable\n"]
    for page, mask in sorted(pages.items()):
        denied = [i for i in range(32) if not mask >> i & 1]
        note = " (watchpoint)" if page in watched else ""
        lines.append(f"  {page:#012x} mask {mask:#010x} denied sub-pages {_ranges(denied)}{note}\n")
    return "".join(lines)


def breakpoints_text(stub: Any) -> str:
    bp = stub.breakpoints
    lines = [
        f"  {gva:#x}: int3 planted at {p.gpa:#x} (original byte {p.original:#04x})\n" for gva, p in bp.planted.items()
    ]
    lines += [f"  {gva:#x}: debug register DR{i}\n" for i, gva in enumerate(bp.slots) if gva is not None]
    lines += [f"  {gva:#x}+{n}: write watchpoint (SPP)\n" for gva, n in stub.watch_ids]
    return "".join(lines) or "no breakpoints or watchpoints\n"


def registers_text(state: R.State, index: int) -> str:
    names = [*R.GPRS, "rip", "eflags", *R.SEGMENTS, "fs_base", "gs_base", "k_gs_base", *R.CONTROL]
    values = [(n, R.REGISTERS[R.NUMBER[n]].get(state)) for n in names]
    rows = [f"vCPU {index}\n"]
    for i in range(0, len(values), 4):
        rows.append("  " + "  ".join(f"{n:>9} {v:#018x}" for n, v in values[i : i + 4]) + "\n")
    return "".join(rows)


def _ranges(items: list[int]) -> str:
    out: list[str] = []
    for i in items:
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = out[-1].split("-")[0] + f"-{i}"
        else:
            out.append(str(i))
    return ",".join(out)
