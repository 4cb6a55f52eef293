"""A 2-vCPU guest keeps flushing (pc-testdev port 0xe4) the page that holds the struct of the
ucalls its other vCPU sends: the monitor's reads of that struct must never meet an unmapped page.
The run ends with DONE, never by a signal, five times of five."""

from __future__ import annotations

import pytest
from conftest import GUESTS, pyvmm

from vmm.errors import ExitStatus

pytestmark = pytest.mark.kvm


@pytest.mark.parametrize("attempt", range(5))
def test_flush_race_at_smp_2(attempt: int) -> None:
    proc = pyvmm("run", str(GUESTS / "mb" / "mb-flush-race.elf"), "-smp", "2", "-device", "pc-testdev",
                 "--timeout", "30", timeout=60)  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == ExitStatus.OK, err  # a SIGSEGV would be -11
    assert "Traceback" not in err
    out = proc.stdout.decode()
    assert "flush-race: 4096 rounds" in out
    assert out.count("flush-race: print") == 4096 // 64
