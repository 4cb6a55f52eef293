"""Protecting pages the CPU itself uses: the guest's code page, and the GDT, IDT and page tables
pyvmm builds for it. A read-only memslot must not disturb instruction fetch, descriptor loads or
page walks, so the guest has to run to DONE as it would unprotected.
"""

from __future__ import annotations

import re

import pytest

from tests.spp_driver import EXEC_PAGE_STORE, IMAGE, READ64, STORE64, TARGET, Op, StoreDriver, stores_machine
from vmm import layout
from vmm.errors import ExitStatus
from vmm.spp.event import SppEvent

pytestmark = pytest.mark.kvm

PAGE = 4096
CODE_PAGE = layout.DEFAULT_LOAD  # the image is loaded at 1 MiB and starts with its code
FAR = 0xA00000  # unprotected, in another 2 MiB page than anything else the guest touches
MAP = IMAGE.with_suffix(".map")


def link_map() -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Symbols and output sections (start, size) of the spp-stores image, from its linker map."""
    text = MAP.read_text()
    symbols = {name: int(addr, 16) for addr, name in re.findall(r"^\s+0x([0-9a-f]+)\s+([A-Za-z_]\w*)$", text, re.M)}
    sections = {
        name: (int(start, 16), int(size, 16))
        for name, start, size in re.findall(r"^(\.\w+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", text, re.M)
    }
    return symbols, sections


def test_the_code_page_holds_nothing_the_guest_writes() -> None:
    """What the test below relies on: on the first page only code and constants; the data, bss
    (mailbox, ucall struct) and user stack start on later pages; the boot stack grows down from
    the load address, so it is below."""
    symbols, sections = link_map()
    assert symbols["_start"] == CODE_PAGE
    assert CODE_PAGE <= symbols["spp_code_scratch"] < CODE_PAGE + PAGE
    data_start, data_size = sections[".data"]
    assert data_size == 0 or data_start >= CODE_PAGE + PAGE
    assert sections[".bss"][0] >= CODE_PAGE + PAGE
    assert sections[".noinit"][0] >= CODE_PAGE + PAGE


@pytest.mark.parametrize("cpl", [0, 3])
def test_guest_runs_from_a_fully_denied_code_page(cpl: int) -> None:
    scratch = link_map()[0]["spp_code_scratch"]  # int3 filler in .text, never executed
    events: list[SppEvent] = []
    with stores_machine() as m:
        image = m.memory.read(CODE_PAGE, PAGE)
        spp = m.enable_spp()
        spp.add_policy(events.append)
        spp.protect(CODE_PAGE, 0)
        ops = [
            Op(STORE64, TARGET, 0x1111),
            Op(READ64, CODE_PAGE),
            Op(EXEC_PAGE_STORE, scratch, 0x2222),
            Op(STORE64, TARGET + 8, 0x3333),
        ]
        driver = StoreDriver(m, cpl, [ops, ops])  # twice: the code keeps running after the event
        result = m.run(timeout=20)
        after = m.memory.read(CODE_PAGE, PAGE)
        stored = m.memory.read(TARGET, 16)
        read = m.memory.read_u64(driver.mailbox + 16 + 32 + 24)
        refused = driver.refused()

    assert result.status == ExitStatus.OK, result.reason
    assert refused == 0
    assert after == image  # fetches and reads worked, the store into the code did not land
    assert after[scratch - CODE_PAGE : scratch - CODE_PAGE + 8] == b"\xcc" * 8
    assert read == int.from_bytes(image[:8], "little")
    assert stored == (0x1111).to_bytes(8, "little") + (0x3333).to_bytes(8, "little")
    assert [(e.gpa, e.size, e.data, e.backend) for e in events] == [
        (scratch, 8, (0x2222).to_bytes(8, "little"), "software")
    ] * 2


CPU_TABLES = [layout.BOOT_GDT, layout.BOOT_IDT, *range(layout.BOOT_PML4, layout.BOOT_PD + 4 * PAGE, PAGE)]


@pytest.mark.parametrize("cpl", [0, 3])
def test_guest_runs_with_its_gdt_idt_and_page_tables_denied(cpl: int) -> None:
    """Descriptor loads and page walks only read these pages. The CPU does write to them in one
    way, setting accessed/dirty bits in page-table entries on first use (it does so unprotected);
    with the pages protected those updates do not land, KVM drops them without any exit, so no
    policy sees them either, and the guest runs on regardless."""
    events: list[SppEvent] = []
    with stores_machine() as m:
        before = {p: m.memory.read(p, PAGE) for p in CPU_TABLES}
        spp = m.enable_spp()
        spp.add_policy(events.append)
        for p in CPU_TABLES:
            spp.protect(p, 0)
        ops = [Op(STORE64, TARGET, 0x4444), Op(STORE64, FAR, 0x5555), Op(READ64, FAR)]
        driver = StoreDriver(m, cpl, [ops])
        result = m.run(timeout=20)
        after = {p: m.memory.read(p, PAGE) for p in CPU_TABLES}
        stored = (m.memory.read_u64(TARGET), m.memory.read_u64(FAR))
        refused = driver.refused()

    assert result.status == ExitStatus.OK, result.reason
    assert refused == 0
    assert after == before
    assert stored == (0x4444, 0x5555)
    assert events == []
