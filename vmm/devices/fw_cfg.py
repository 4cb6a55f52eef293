"""QEMU's firmware configuration device (fw_cfg), legacy I/O interface only.

The guest writes a 16-bit key to the selector port and reads the item a byte at a time from the
data port; every selection rewinds to the item's first byte, and reads past the end (or of a key
that holds nothing) return 0. Key numbers and item encodings are QEMU's, so firmware and test
kernels that probe fw_cfg (SeaBIOS, kvm-unit-tests) read the same values they would under QEMU.

Not offered: the DMA interface (the ID item says so, and nothing answers at 0x514) and guest
writes to items (QEMU dropped them in 2.4; data-port writes are ignored, as there).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from vmm.devices.protocol import Region

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from vmm.devices.protocol import PortAccess

SELECTOR_PORT = 0x510
DATA_PORT = 0x511
PORT_COUNT = 2  # QEMU decodes both ports as one 2-byte window (see handle_io)

# well-known keys (QEMU's numbering)
SIGNATURE = 0x0000
ID = 0x0001
UUID = 0x0002
RAM_SIZE = 0x0003
NOGRAPHIC = 0x0004
NB_CPUS = 0x0005
MACHINE_ID = 0x0006
KERNEL_ADDR = 0x0007
KERNEL_SIZE = 0x0008
KERNEL_CMDLINE = 0x0009
INITRD_ADDR = 0x000A
INITRD_SIZE = 0x000B
BOOT_DEVICE = 0x000C
NUMA = 0x000D
BOOT_MENU = 0x000E
MAX_CPUS = 0x000F
KERNEL_ENTRY = 0x0010
KERNEL_DATA = 0x0011
INITRD_DATA = 0x0012
CMDLINE_ADDR = 0x0013
CMDLINE_SIZE = 0x0014
CMDLINE_DATA = 0x0015
SETUP_ADDR = 0x0016
SETUP_SIZE = 0x0017
SETUP_DATA = 0x0018
FILE_DIR = 0x0019
FILE_FIRST = 0x0020

# bit 14 once selected the write channel, bit 15 marks the architecture's own keys
WRITE_CHANNEL = 0x4000
ARCH_LOCAL = 0x8000
ENTRY_MASK = 0x3FFF

# x86's architecture-local keys
ACPI_TABLES = ARCH_LOCAL | 0
SMBIOS_ENTRIES = ARCH_LOCAL | 1
IRQ0_OVERRIDE = ARCH_LOCAL | 2
E820_TABLE = ARCH_LOCAL | 3
HPET = ARCH_LOCAL | 4

ID_TRADITIONAL = 0x1  # the selector/data ports work
ID_DMA = 0x2  # the DMA interface exists (never set here)

FILE_SLOTS = 0x20  # QEMU's default number of file selectors
FILE_NAME_SIZE = 56
_FILE_ENTRY = struct.Struct(">IHH56s")  # size, select, reserved, name: big-endian, unlike the rest


class FwCfg:
    """The item store and the selector/offset state machine."""

    name = "fw_cfg"

    def __init__(self) -> None:
        self._items: dict[int, bytes] = {}
        self._files: dict[str, bytes] = {}
        self._file_keys: dict[str, int] = {}
        self.selected = SIGNATURE
        self.offset = 0
        self._current = b""
        self.set_bytes(SIGNATURE, b"QEMU")
        self.set_u32(ID, ID_TRADITIONAL)
        self.set_bytes(UUID, bytes(16))
        self._rebuild_file_dir()

    # --- items ------------------------------------------------------------------------
    def set_bytes(self, key: int, data: bytes) -> None:
        """Store an item under a well-known key (replacing it); files go through `add_file`."""
        if not 0 <= key <= 0xFFFF or (key & ENTRY_MASK) >= FILE_FIRST:
            raise ValueError(f"fw_cfg key {key:#x} is not a well-known key")
        if key == FILE_DIR and self._items.get(FILE_DIR) is not None and data != self._items[FILE_DIR]:
            raise ValueError("the fw_cfg file directory is built from add_file, not set directly")
        self._items[key & (ARCH_LOCAL | ENTRY_MASK)] = bytes(data)
        self._refresh()

    # integers are little-endian, as QEMU's fw_cfg_add_i16/i32/i64 store them
    def set_u16(self, key: int, value: int) -> None:
        self.set_bytes(key, struct.pack("<H", value))

    def set_u32(self, key: int, value: int) -> None:
        self.set_bytes(key, struct.pack("<I", value))

    def set_u64(self, key: int, value: int) -> None:
        self.set_bytes(key, struct.pack("<Q", value))

    def add_file(self, name: str, data: bytes) -> int:
        """Add (or replace) a named file and return its selector.

        The directory is kept sorted by name and selectors follow that order from 0x20, as in
        current QEMU machine types; adding a file can therefore move the selectors of files that
        sort after it, which is why guests always look selectors up in the directory.
        """
        raw = name.encode()
        if not raw or len(raw) >= FILE_NAME_SIZE or b"\0" in raw:
            raise ValueError(f"fw_cfg file name {name!r} must be 1 to {FILE_NAME_SIZE - 1} bytes without NUL")
        if name not in self._files and len(self._files) >= FILE_SLOTS:
            raise ValueError(f"fw_cfg has no free file slot for {name!r} (all {FILE_SLOTS} are in use)")
        self._files[name] = bytes(data)
        self._rebuild_file_dir()
        return self._file_keys[name]

    def set_kernel(self, data: bytes, *, addr: int | None = None, entry: int | None = None) -> None:
        """The -kernel keys: size and data, and where the loader is to put and enter it."""
        self.set_u32(KERNEL_SIZE, len(data))
        self.set_bytes(KERNEL_DATA, data)
        if addr is not None:
            self.set_u32(KERNEL_ADDR, addr)
        if entry is not None:
            self.set_u32(KERNEL_ENTRY, entry)

    def set_initrd(self, data: bytes, *, addr: int | None = None) -> None:
        self.set_u32(INITRD_SIZE, len(data))
        self.set_bytes(INITRD_DATA, data)
        if addr is not None:
            self.set_u32(INITRD_ADDR, addr)

    def set_cmdline(self, cmdline: str | bytes, *, addr: int | None = None) -> None:
        """The -append keys; the size counts the terminating NUL, which the data carries."""
        raw = (cmdline.encode() if isinstance(cmdline, str) else bytes(cmdline)) + b"\0"
        self.set_u32(CMDLINE_SIZE, len(raw))
        self.set_bytes(CMDLINE_DATA, raw)
        if addr is not None:
            self.set_u32(CMDLINE_ADDR, addr)

    def file_selector(self, name: str) -> int:
        return self._file_keys[name]

    def item(self, key: int) -> bytes:
        """The bytes a guest reads after selecting `key` (empty for keys that hold nothing)."""
        # the write-channel bit is ignored on reads, as in QEMU
        key &= ARCH_LOCAL | ENTRY_MASK
        if FILE_FIRST <= key < FILE_FIRST + FILE_SLOTS:
            index = key - FILE_FIRST
            names = sorted(self._files)
            return self._files[names[index]] if index < len(names) else b""
        return self._items.get(key, b"")

    def _rebuild_file_dir(self) -> None:
        names = sorted(self._files)
        self._file_keys = {n: FILE_FIRST + i for i, n in enumerate(names)}
        # QEMU's directory is sized for every slot; a reader only walks `count` entries, so the
        # unused slots are left out here
        out = bytearray(struct.pack(">I", len(names)))
        for n in names:
            out += _FILE_ENTRY.pack(len(self._files[n]), self._file_keys[n], 0, n.encode())
        self._items[FILE_DIR] = bytes(out)
        self._refresh()

    def _refresh(self) -> None:
        # an item replaced while selected is read from the same offset in its new contents
        self._current = self.item(self.selected)

    # --- the guest side ---------------------------------------------------------------------
    def select(self, key: int) -> None:
        self.selected = key & 0xFFFF
        self.offset = 0
        self._current = self.item(self.selected)

    def read_byte(self) -> int:
        if self.offset >= len(self._current):
            return 0
        b = self._current[self.offset]
        self.offset += 1
        return b

    def write_byte(self, value: int) -> None:
        """Guest writes to the data port: accepted and dropped (QEMU 2.4 and later)."""

    # --- snapshots: the items too, since a loader filled them (command line, modules) --------
    def save_state(self) -> dict[str, Any]:
        return {"items": {str(k): v.hex() for k, v in self._items.items()},
                "files": {n: v.hex() for n, v in self._files.items()},
                "selected": self.selected, "offset": self.offset}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        self._items = {int(k): bytes.fromhex(v) for k, v in state["items"].items()}
        self._files = {n: bytes.fromhex(v) for n, v in state["files"].items()}
        self._file_keys = {n: FILE_FIRST + i for i, n in enumerate(sorted(self._files))}
        self.selected = state["selected"]
        self._current = self.item(self.selected)
        self.offset = state["offset"]

    # --- I/O plumbing -------------------------------------------------------------------------
    def handle_io(self, ex: PortAccess) -> None:
        # QEMU decodes 0x510-0x511 as one window and tells the registers apart by access width,
        # not by port: a 16-bit write selects, a byte write is a (dropped) data write, a byte
        # read returns the next data byte. Other widths are invalid there; reads of them get 0.
        if ex.is_write:
            if ex.size == 2:
                self.select(ex.value)
            elif ex.size == 1:
                self.write_byte(ex.value)
        elif ex.size == 1:
            ex.value = self.read_byte()
        else:
            ex.value = 0

    def regions(self) -> Sequence[Region]:
        return (Region("io", SELECTOR_PORT, PORT_COUNT, self.handle_io),)


def e820_table(entries: list[tuple[int, int, int]]) -> bytes:
    """The "etc/e820" file: packed {u64 address, u64 length, u32 type} little-endian entries."""
    return b"".join(struct.pack("<QQI", addr, length, kind) for addr, length, kind in entries)


E820_RAM = 1
E820_RESERVED = 2
