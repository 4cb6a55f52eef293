"""MSR exits: a guest with its own IDT (msr-probe) writes LSTAR, reads an MSR only a handler
answers, has a write changed, and takes #GP when a handler asks; from the library, from a
`--handlers` file, with `--msr-exit` and `--trace`; the example handler file; bad requests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import ROOT, guest, one_line_error, pyvmm

from vmm.cpu.modes import CpuMode
from vmm.errors import ConfigError, ExitStatus
from vmm.machine import Machine
from vmm.msr import GP, MsrAccess

pytestmark = pytest.mark.kvm

LSTAR, SYSENTER_EIP, EFER = 0xC0000082, 0x176, 0xC0000080
ANSWERED, REFUSED = 0x40000F00, 0x40000F01
PROBE_DONE = 97  # debug_exit(0x30)

# what msr-probe prints when nobody handles an MSR: 0x40000f00/01 are unknown to KVM (#GP)
PLAIN = [
    "msr-probe: write lstar -> ok",
    "msr-probe: lstar 0xffffffff81a00000",
    "msr-probe: read 0x40000f00 -> #GP",
    "msr-probe: write sysenter_eip -> ok",
    "msr-probe: sysenter_eip 0x1000",
    "msr-probe: read 0x40000f01 -> #GP",
    "msr-probe: write 0x40000f01 -> #GP",
    "traps cpu=0 total=3 v13=3",
]

HANDLERS = """\
from vmm.msr import GP


def setup(machine):
    machine.on_msr(0x40000F00, lambda a: 0x1122334455667788, writes=False)
    machine.on_msr(0x176, lambda a: a.value + 0x1000 if a.write else None, reads=False)
    # 0x40000f01 is unknown to KVM; the handler answers reads and refuses writes
    machine.on_msr(0x40000F01, lambda a: GP if a.write else 7)
    machine.on_msr(0xC0000082, lambda a: GP, reads=False)
"""


def run_probe(m: Machine, out: io.BytesIO) -> tuple[list[str], int]:
    m.load_flat(guest("msr-probe").read_bytes(), CpuMode.LONG)
    result = m.run(timeout=30)
    return out.getvalue().decode().splitlines(), result.status


def test_without_handlers_the_kernel_answers_every_msr() -> None:
    with Machine(console=(out := io.BytesIO())) as m:
        lines, status = run_probe(m, out)
    assert status == PROBE_DONE
    assert lines[: len(PLAIN)] == PLAIN


def test_handlers_answer_reads_change_writes_and_inject_gp() -> None:
    seen: list[MsrAccess] = []

    def lstar(a: MsrAccess) -> None:
        seen.append(a)

    def eip(a: MsrAccess) -> int:
        assert a.value is not None
        return a.value + 0x1000  # the guest reads back what the handler wrote

    with Machine(console=(out := io.BytesIO())) as m:
        m.on_msr(ANSWERED, lambda a: 0x1122334455667788, writes=False)
        m.on_msr(SYSENTER_EIP, eip, reads=False)
        m.on_msr(REFUSED, lambda a: GP)
        m.on_msr(LSTAR, lstar, reads=False)
        lines, status = run_probe(m, out)
        assert m.msr is not None
        counts = dict(m.msr.counts)
    assert status == PROBE_DONE
    assert lines[:8] == [
        "msr-probe: write lstar -> ok",
        "msr-probe: lstar 0xffffffff81a00000",  # the write stood, and the read stayed in the kernel
        "msr-probe: read 0x40000f00 0x1122334455667788",
        "msr-probe: write sysenter_eip -> ok",
        "msr-probe: sysenter_eip 0x2000",
        "msr-probe: read 0x40000f01 -> #GP",
        "msr-probe: write 0x40000f01 -> #GP",
        "traps cpu=0 total=2 v13=2",  # the guest's own #GP handler counted exactly the two asked for
    ]
    assert [(a.index, a.write, a.value) for a in seen] == [(LSTAR, True, 0xFFFFFFFF81A00000)]
    assert seen[0].rip is not None and 0x100000 <= seen[0].rip < 0x110000
    assert counts == {"read": 2, "write": 3, "gp": 2}


def test_a_handler_file_refuses_lstar_and_answers_an_unknown_msr(tmp_path: Path) -> None:
    handlers = tmp_path / "msr_handlers.py"
    handlers.write_text(HANDLERS)
    proc = pyvmm("run", str(guest("msr-probe")), "--handlers", str(handlers), "-q")
    out = proc.stdout.decode().splitlines()
    assert proc.returncode == PROBE_DONE, proc.stderr
    assert out[:8] == [
        "msr-probe: write lstar -> #GP",
        "msr-probe: lstar 0x0",
        "msr-probe: read 0x40000f00 0x1122334455667788",
        "msr-probe: write sysenter_eip -> ok",
        "msr-probe: sysenter_eip 0x2000",
        "msr-probe: read 0x40000f01 0x7",
        "msr-probe: write 0x40000f01 -> #GP",
        "traps cpu=0 total=2 v13=2",
    ]


def test_msr_exit_option_traces_and_counts_without_changing_anything(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    proc = pyvmm("run", str(guest("msr-probe")), "--msr-exit", "0xc0000082:w", "--msr-exit", "0x176",
                 "--trace", str(trace), "--stats", "-q")  # fmt: skip
    assert proc.returncode == PROBE_DONE, proc.stderr
    assert proc.stdout.decode().splitlines()[: len(PLAIN)] == PLAIN
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    msr = [(r["reason"], r["index"], r["data"], r["error"]) for r in records if r.get("reason", "").endswith("MSR")]
    assert msr == [
        ("X86_WRMSR", LSTAR, 0xFFFFFFFF81A00000, False),  # LSTAR reads (:w) stay in the kernel
        ("X86_WRMSR", SYSENTER_EIP, 0x1000, False),
        ("X86_RDMSR", SYSENTER_EIP, 0x1000, False),
    ]
    stats = proc.stderr.decode()
    assert "X86_WRMSR" in stats and "X86_RDMSR" in stats


def test_the_example_logs_syscall_msr_writes() -> None:
    proc = pyvmm("run", str(guest("msr-probe")), "--handlers", str(ROOT / "examples" / "syscall_msr_watch.py"), "-q")
    assert proc.returncode == PROBE_DONE, proc.stderr
    assert proc.stdout.decode().splitlines()[: len(PLAIN)] == PLAIN  # it only watches
    log = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("msr-watch:")]
    assert any(" wrote LSTAR 0x0 -> 0xffffffff81a00000 at rip 0x" in ln for ln in log), log
    assert any(" wrote SYSENTER_EIP 0x0 -> 0x1000 at rip 0x" in ln for ln in log), log
    assert all("vCPU 0" in ln for ln in log)


def test_a_handler_answer_that_is_not_one_ends_the_run_with_the_handler_status() -> None:
    with Machine(console=io.BytesIO()) as m:
        m.on_msr(ANSWERED, lambda a: "seven", writes=False)  # type: ignore[arg-type,return-value]
        m.load_flat(guest("msr-probe").read_bytes(), CpuMode.LONG)
        result = m.run(timeout=30)
    assert result.status == ExitStatus.HANDLER_ERROR
    assert "returned 'seven'" in result.reason


@pytest.mark.parametrize(
    "arg, message",
    [
        ("0xc0000082:x", "the access kind is r, w or rw"),
        ("lstar", "MSR index"),
        ("0x200-0x100", "ends before it starts"),
        ("0x100000000", "not within 32-bit indices"),
    ],
)
def test_bad_msr_exit_options_are_one_line(arg: str, message: str) -> None:
    line = one_line_error(pyvmm("run", str(guest("msr-probe")), "--msr-exit", arg), ExitStatus.USAGE)
    assert message in line


def test_library_refuses_bad_registrations() -> None:
    with Machine(console=io.BytesIO()) as m:
        with pytest.raises(ConfigError, match="reads=True, writes=True"):
            m.on_msr(LSTAR, None, reads=False, writes=False)
        with pytest.raises(ConfigError, match="filter ranges"):
            for i in range(17):
                m.on_msr(i * 0x10000, None, writes=False)


def test_a_write_kvm_refuses_gives_gp_when_the_handler_lets_it_stand() -> None:
    def let_stand(a: MsrAccess) -> None:
        return None

    with Machine(console=(out := io.BytesIO())) as m:
        # 0x40000f01 is not an MSR KVM knows: letting the write "stand" cannot succeed
        m.on_msr(REFUSED, let_stand)
        lines, status = run_probe(m, out)
    assert status == PROBE_DONE
    assert lines[5:8] == ["msr-probe: read 0x40000f01 -> #GP", "msr-probe: write 0x40000f01 -> #GP",
                          "traps cpu=0 total=3 v13=3"]  # fmt: skip
