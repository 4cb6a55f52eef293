"""AVX stores into a protected page (vmovdqu ymm, vmovq), where the guest could enable AVX: KVM
cannot emulate them into a read-only slot, so the engine carries them out from their decoded
form (the upper YMM half from KVM_GET_XSAVE). Skipped, with the reason, where this host's CPUID
gives the guest no AVX. At CPL 0 the ops' first instruction, a vmovdqu load from the unprotected
mailbox, is already one KVM's emulator lacks: not SPP's, so a plain emulation failure (status 10),
as with nothing protected."""

from __future__ import annotations

import pytest

from tests.spp_driver import TARGET, Op, StoreDriver, stores_machine
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

VMOVDQU256, VMOVQ = 31, 32  # spp-stores ops (guests/README.md)
AVX_OFFSET, AVX_ENABLED = 12552, 1 << 4
TRAP_COUNTS = 12288 + 8
MASK = 0xFFFFFFF0
DENIED, ALLOWED = TARGET + 0x40, TARGET + 0x400
V1, V2 = 0x0123456789ABCDEF, 0x1122334455667788


def q(v: int) -> bytes:
    return v.to_bytes(8, "little")


@pytest.mark.parametrize("cpl", [3])
@pytest.mark.parametrize(
    ("op", "stored"), [(VMOVDQU256, (q(V1) + q(V2)) * 2), (VMOVQ, q(V1))], ids=["vmovdqu", "vmovq"]
)
def test_avx_store_is_emulated(cpl: int, op: int, stored: bytes) -> None:
    events: list[SppEvent] = []
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(TARGET, MASK)
        driver = StoreDriver(m, cpl, [[Op(op, DENIED, V1, V2), Op(op, ALLOWED, V1, V2)]])
        result = m.run(timeout=20)
        avx = m.memory.read_u32(driver.mailbox + AVX_OFFSET)
        if not avx & AVX_ENABLED:
            pytest.skip(f"the guest could not enable AVX here (findings {avx:#x})")
        assert result.status == ExitStatus.OK, result.reason
        assert driver.refused() == 0
        traps = {v: c for v in range(32) if (c := m.memory.read_u32(driver.mailbox + TRAP_COUNTS + 4 * v))}
        assert traps == {}
        assert m.memory.read(ALLOWED, len(stored)) == stored
        assert m.memory.read(DENIED, len(stored)) == bytes(len(stored))
    assert [(e.backend, e.gpa, e.data) for e in events] == [("software", DENIED, stored)]


def test_cpl0_avx_load_before_the_store_is_not_spps() -> None:
    with stores_machine() as m:
        spp = m.enable_spp()
        spp.protect(TARGET, MASK)
        driver = StoreDriver(m, 0, [[Op(VMOVQ, DENIED, V1, V2)]])
        result = m.run(timeout=20)
        page = m.memory.read(TARGET, 4096)
        avx = m.memory.read_u32(driver.mailbox + AVX_OFFSET)
    if not avx & AVX_ENABLED:
        pytest.skip(f"the guest could not enable AVX here (findings {avx:#x})")
    assert result.status == ExitStatus.INTERNAL_ERROR, result.reason
    assert "EMULATION (instruction bytes c5 fa 6f 02" in result.reason  # vmovdqu xmm0, [rdx]
    assert page == bytes(4096)
