"""SPP under hostile or failing conditions: huge guest requests, a backend that refuses, a store
that runs off the end of RAM, and a policy that raises SystemExit."""

from __future__ import annotations

import threading
import time

import pytest

from tests.spp_driver import STORE64, Op, run_ops, stores_machine
from vmm.errors import ExitStatus, SppRequestError

pytestmark = pytest.mark.kvm


def test_a_huge_page_count_is_refused_at_once() -> None:
    with stores_machine() as m:
        spp = m.enable_spp()
        t0 = time.monotonic()
        with pytest.raises(SppRequestError, match=r"SPP page 0x1000000 is not in guest RAM"):
            spp.protect(0x200000, 0, 1 << 40)
        with pytest.raises(SppRequestError, match="is not in guest RAM"):
            spp.release(0xFF0000, 64)  # 16 pages in RAM, then beyond it
        assert time.monotonic() - t0 < 1
        assert spp.masks() == {}


def test_a_refused_change_leaves_the_table_as_it_was() -> None:
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.protect(0x300000, 0xF0F0F0F0)

        def refuse(pages: list[int]) -> None:
            raise SppRequestError("stand-in for KVM refusing the memslot change")

        spp.backend.apply = refuse  # type: ignore[method-assign]
        with pytest.raises(SppRequestError, match="stand-in"):
            spp.protect(0x300000, 0)
        with pytest.raises(SppRequestError, match="stand-in"):
            spp.protect(0x301000, 0)
        assert spp.masks() == {0x300000: 0xF0F0F0F0}


def test_a_store_running_off_the_end_of_ram_lands_its_ram_part() -> None:
    with stores_machine() as m:
        last = m.mem_size - 0x1000
        m.enable_spp().protect(last, 1 << 31)  # only the last sub-page is writable
        result = run_ops(m, 3, [Op(STORE64, m.mem_size - 4, 0x1122334455667788)])
        assert result.status == 0, result.reason
        assert m.memory.read(m.mem_size - 4, 4) == bytes.fromhex("88776655")


def test_system_exit_in_a_policy_ends_the_run_as_a_handler_error_and_joins_every_thread() -> None:
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.protect(0x300000, 0)

        def leave(event: object) -> None:
            raise SystemExit(3)

        spp.add_policy(leave)  # type: ignore[arg-type]
        result = run_ops(m, 3, [Op(STORE64, 0x300000, 1)])
        assert result.status == ExitStatus.HANDLER_ERROR
        assert "raised sys.exit(3)" in result.reason
    assert [t for t in threading.enumerate() if t.name.startswith("pyvmm-")] == []
