"""The isa-debug-exit device on its own: a write of v asks for status (v << 1) | 1, a read sees
all-ones and does not stop."""

from __future__ import annotations

import pytest

from tests.fakes import port_access
from vmm import layout as L
from vmm.devices.isa_debug_exit import IsaDebugExit
from vmm.verdict import Stop


@pytest.mark.parametrize("v", [0, 1, 0x10, 21, 0x7F])
def test_written_value_becomes_the_status(v: int) -> None:
    _, verdict = port_access(IsaDebugExit(), L.DEBUG_EXIT_PORT, 4, v)
    assert isinstance(verdict, Stop)
    assert verdict.status == (v << 1) | 1
    assert not verdict.fatal  # the guest chose to stop: no state dump


def test_read_returns_all_ones_and_does_not_stop() -> None:
    value, verdict = port_access(IsaDebugExit(), L.DEBUG_EXIT_PORT, 4)
    assert verdict is None
    assert value == 0xFFFFFFFF
