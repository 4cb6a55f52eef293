"""The multiboot kernels in guests/mb/ under QEMU and under pyvmm: the same image and command line
must give the same serial output and the same exit status.

Each kernel is first run under QEMU (`-kernel`), whose output is checked against what the kernel is
meant to print there: that proves the kernel itself against the reference. pyvmm's run is then
compared with QEMU's byte for byte. QEMU's result is computed once per case and shared by both
tests; without `qemu-system-x86_64` both are skipped.

QEMU runs with `-vga none -nic none` and without `-nographic`: with `-nographic`, SeaBIOS copies its
screen (banner, escape sequences, "Booting from ROM..") to COM1, and without `-nic none` iPXE adds
its own banner, neither of which belongs to the kernel.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import GUESTS, pyvmm, skip_without_qemu

pytestmark = pytest.mark.kvm

MB: Path = GUESTS / "mb"
QEMU = shutil.which("qemu-system-x86_64")
QEMU_TIMEOUT = 90  # a boot takes about 3 s through SeaBIOS; generous for a loaded host
PYVMM_TIMEOUT = 60  # pyvmm's own --timeout: a hang ends as a status with a state dump


MB_INFO_MEMORY = 1 << 0
MB_INFO_CMDLINE = 1 << 2
MB_INFO_MMAP = 1 << 6

MODULE_A = b"first line of module a\nsecond line\n"
MODULE_B = b"\x7fELF-like binary, no newline"


@dataclass(frozen=True)
class Result:
    status: int
    serial: bytes
    stderr: str


@dataclass(frozen=True)
class Case:
    """One boot: a kernel and the options given identically to QEMU and to pyvmm."""

    id: str
    kernel: str  # file name in guests/build/mb/
    append: str | None = None
    initrd: str | None = None  # QEMU syntax: "file args,file2 args2"
    smp: int = 1
    mem: str = "128M"

    def image(self) -> Path:
        p = MB / self.kernel
        if not p.exists():
            pytest.fail(f"kernel {p} is missing: run `make guests`")
        return p

    def qemu_args(self) -> list[str]:
        assert QEMU is not None
        args = [
            QEMU,
            "-accel", "kvm",
            "-no-reboot",
            "-display", "none",
            "-vga", "none",
            "-nic", "none",
            "-monitor", "none",
            "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-m", self.mem,
            "-smp", str(self.smp),
            "-kernel", str(self.image()),
        ]  # fmt: skip
        if self.append is not None:
            args += ["-append", self.append]
        if self.initrd is not None:
            args += ["-initrd", self.initrd]
        return args

    def pyvmm_args(self) -> list[str]:
        args = ["run", str(self.image()), "-m", self.mem, "--smp", str(self.smp), "--timeout", str(PYVMM_TIMEOUT)]
        if self.append is not None:
            args += ["--append", self.append]
        if self.initrd is not None:
            args += ["--initrd", self.initrd]
        return args


_qemu_results: dict[tuple[str, ...], Result] = {}


def run_qemu(case: Case) -> Result:
    if QEMU is None:
        skip_without_qemu()
    args = case.qemu_args()
    key = tuple(args)
    if key not in _qemu_results:
        proc = subprocess.run(args, capture_output=True, stdin=subprocess.DEVNULL, timeout=QEMU_TIMEOUT)
        _qemu_results[key] = Result(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))
    return _qemu_results[key]


def run_pyvmm(case: Case) -> Result:
    proc = pyvmm(*case.pyvmm_args(), timeout=PYVMM_TIMEOUT + 30)
    return Result(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def lines(r: Result) -> list[str]:
    return r.serial.decode(errors="replace").splitlines()


def status(code: int) -> int:
    """The process status isa-debug-exit gives for a guest's code."""
    return ((code << 1) | 1) & 0xFF


# --- the cases ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two module files, shared by the QEMU and the pyvmm run so that their paths (which the kernel
    prints as part of the module strings) are the same."""
    d = tmp_path_factory.mktemp("modules")
    a, b = d / "module-a.txt", d / "module-b.bin"
    a.write_bytes(MODULE_A)
    b.write_bytes(MODULE_B)
    return a, b


def info_case(kernel: str) -> Case:
    return Case(kernel.rsplit(".", 1)[0], kernel, append="root=/dev/null  two spaces,comma")


def modules_case(mods: tuple[Path, Path]) -> Case:
    a, b = mods
    return Case("mb-modules", "mb-modules.elf", append="mods", initrd=f"{a} alpha beta=1,{b}")


FWCFG = Case("mb-fwcfg", "mb-fwcfg.elf", smp=2)
RTC_128M = Case("mb-rtc-128M", "mb-rtc.elf", smp=2)
RTC_48M = Case("mb-rtc-48M", "mb-rtc.elf", mem="48M")
EXIT_CODES = [0, 0x2A, 0x7F]
SMP = Case("mb-smp", "mb-smp.elf", smp=4)
TIMER = Case("mb-timer", "mb-timer.elf")


def exit_case(code: int) -> Case:
    return Case(f"mb-exitcodes-{code:#x}", "mb-exitcodes.elf", append=f"quiet code={code:#x} tail")


# Every case but mb-modules, whose module paths come from a fixture.
FIXED_CASES = {
    c.id: c
    for c in [
        info_case("mb-info.elf"),
        info_case("mb-info-flat.bin"),
        FWCFG,
        RTC_128M,
        RTC_48M,
        *(exit_case(code) for code in EXIT_CODES),
        SMP,
        TIMER,
    ]
}


# --- the kernels work under QEMU ---------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["mb-info.elf", "mb-info-flat.bin"])
def test_info_under_qemu(kernel: str) -> None:
    case = info_case(kernel)
    r = run_qemu(case)
    out = lines(r)
    assert r.status == status(0x10), r.stderr
    assert out[0] == "multiboot magic ok"
    flags = int(out[1].removeprefix("flags "), 16)
    assert flags & (MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MMAP) == MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MMAP
    assert out[2].startswith("mem_lower 639 KiB, mem_upper ")
    assert out[3] == f'cmdline "{case.image()} {case.append}"'
    mmap = [ln for ln in out if ln.startswith("mmap 0x")]
    assert mmap[0] == "mmap 0x0000000000000000 len 0x000000000009fc00 type 1"
    assert any(ln.startswith("mmap 0x0000000000100000 len ") and ln.endswith(" type 1") for ln in mmap)
    assert out[-1] == f"mmap entries {len(mmap)}"


def test_modules_under_qemu(modules: tuple[Path, Path]) -> None:
    a, b = modules
    r = run_qemu(modules_case(modules))
    assert r.status == status(0x11), r.stderr
    assert lines(r) == [
        "modules 2",
        f'module 0 "{a} alpha beta=1"',
        f"  {len(MODULE_A)} bytes, page-aligned",
        '  first line "first line of module a"',
        f'module 1 "{b}"',
        f"  {len(MODULE_B)} bytes, page-aligned",
        f'  first line "{MODULE_B.decode()}"',
    ]


def test_fwcfg_under_qemu() -> None:
    r = run_qemu(FWCFG)
    assert r.status == status(0x12), r.stderr
    assert lines(r) == ['fw_cfg signature "QEMU"', "ram size 0x0000000008000000", "cpus 2, max cpus 2"]


@pytest.mark.parametrize(
    ("case", "extended", "above_16m", "cpus"),
    [
        pytest.param(RTC_128M, 65535, 1792, 2, id="128M"),  # 0x17/0x30 saturate at 65535 KiB
        pytest.param(RTC_48M, 47 * 1024, 512, 1, id="48M"),
    ],
)
def test_rtc_under_qemu(case: Case, extended: int, above_16m: int, cpus: int) -> None:
    r = run_qemu(case)
    assert r.status == status(0x13), r.serial + r.stderr.encode()
    assert lines(r) == [
        "cmos 0x15 base memory 640 KiB",
        f"cmos 0x17 extended memory {extended} KiB",
        f"cmos 0x30 extended memory {extended} KiB",
        f"cmos 0x34 memory above 16 MiB {above_16m} x 64 KiB",
        f"cmos 0x5f cpus - 1 = {cpus - 1}",
        "rtc ok",
    ]


@pytest.mark.parametrize("code", EXIT_CODES)
def test_exit_code_under_qemu(code: int) -> None:
    r = run_qemu(exit_case(code))
    assert lines(r) == [f"exit code {code:#x}"]
    assert r.status == status(code)


def test_smp_under_qemu() -> None:
    r = run_qemu(SMP)
    assert r.status == status(0x14), r.serial + r.stderr.encode()
    assert lines(r) == [
        "smp: 4 cpus in the MADT, bsp apic id 0, local apic 0xfee00000",
        *(f"cpu {i} up (apic id {i})" for i in range(4)),
        "smp: all 4 cpus up",
    ]


def test_timer_under_qemu() -> None:
    r = run_qemu(TIMER)
    assert r.status == status(0x15), r.serial + r.stderr.encode()
    assert lines(r) == ["pit channel 0 divisor 1193, irq 0 at vector 0x20", "10 ticks"]


# --- pyvmm gives the same output and status ----------------------------------------------------


def case_by_id(case_id: str, mods: tuple[Path, Path]) -> Case:
    return modules_case(mods) if case_id == "mb-modules" else FIXED_CASES[case_id]


@pytest.mark.parametrize("case_id", [*FIXED_CASES, "mb-modules"])
def test_pyvmm_matches_qemu(case_id: str, modules: tuple[Path, Path]) -> None:
    case = case_by_id(case_id, modules)
    want = run_qemu(case)
    got = run_pyvmm(case)
    assert "Traceback" not in got.stderr, got.stderr
    assert got.serial.decode(errors="replace") == want.serial.decode(errors="replace"), got.stderr
    assert got.status == want.status, got.stderr
