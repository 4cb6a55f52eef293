"""Guest RAM: memfd-backed mmaps addressed by guest-physical address, every access bounds-checked."""

from __future__ import annotations

import struct
from collections.abc import Callable

from kvm_abi import constants as c
from kvm_abi import ffi, libc
from vmm.errors import ConfigError, GuestMemoryError, KvmSetupError
from vmm.record import TupleRecord


class RamRegion(TupleRecord):
    gpa: int
    size: int
    host_addr: int  # address of the mapping in this process, for memslots
    memfd: int
    buffer: memoryview  # writable view of the whole mapping

    @property
    def end(self) -> int:
        return self.gpa + self.size


def _map_memfd(name: str, size: int) -> tuple[int, int]:
    fd = libc.memfd_create(name.encode(), c.MFD_CLOEXEC)
    if fd < 0:
        raise KvmSetupError(f"memfd_create for guest RAM failed (errno {ffi.errno})")
    if libc.ftruncate(fd, size) != 0:
        libc.close(fd)
        raise KvmSetupError(f"cannot size guest RAM to {size} bytes (errno {ffi.errno})")
    ptr = libc.mmap(ffi.NULL, size, c.PROT_READ | c.PROT_WRITE, c.MAP_SHARED | c.MAP_NORESERVE, fd, 0)
    addr = int(ffi.cast("uintptr_t", ptr))
    if addr == c.MAP_FAILED:
        libc.close(fd)
        raise KvmSetupError(f"cannot map {size} bytes of guest RAM (errno {ffi.errno})")
    return fd, addr


class GuestMemory:
    """All guest RAM. Reads and writes here are the monitor's own: they are never write-protected."""

    def __init__(self) -> None:
        self.regions: list[RamRegion] = []
        # pages the monitor itself wrote (devices, loaders, SPP verdicts) while a snapshot's
        # dirty tracking is on: KVM's dirty log sees only the guest's own writes
        self.written: set[int] | None = None  # set through track_writes
        # called whenever tracking starts or stops: code that writes guest RAM behind `view`'s
        # back (the run loop's store index) must stop doing so, or record its pages
        self.on_tracking: list[Callable[[], None]] = []
        # The SPP software engine's hook for the monitor's writes into pages it traps: it makes
        # them under the engine's lock, so they are atomic against a guest's locked instructions
        # there (True: written). Views handed out by `view` are the caller's to keep short.
        self.trapped_writer: Callable[[int, bytes | bytearray | memoryview], bool] | None = None

    def track_writes(self, pages: set[int] | None) -> None:
        """Record the pages the monitor writes into `pages` from now on (None: stop recording)."""
        self.written = pages
        for changed in self.on_tracking:
            changed()

    def add_ram(self, gpa: int, size: int) -> RamRegion:
        if gpa % 4096 or size % 4096 or size <= 0:
            raise ConfigError(f"RAM region {gpa:#x}+{size:#x} is not page-aligned")
        for r in self.regions:
            if gpa < r.end and r.gpa < gpa + size:
                raise ConfigError(f"RAM region {gpa:#x}+{size:#x} overlaps {r.gpa:#x}+{r.size:#x}")
        fd, addr = _map_memfd(f"pyvmm-ram-{gpa:#x}", size)
        buf = ffi.buffer(ffi.cast("char *", addr), size)
        region = RamRegion(gpa, size, addr, fd, memoryview(buf))
        self.regions.append(region)
        self.regions.sort(key=lambda r: r.gpa)
        return region

    def close(self) -> None:
        for r in self.regions:
            r.buffer.release()
            libc.munmap(ffi.cast("void *", r.host_addr), r.size)
            libc.close(r.memfd)
        self.regions.clear()

    @property
    def size(self) -> int:
        return sum(r.size for r in self.regions)

    # --- lookups -----------------------------------------------------------------------
    def region_of(self, gpa: int, length: int = 1) -> RamRegion:
        """The region holding all of [gpa, gpa + length), or GuestMemoryError."""
        for r in self.regions:
            if r.gpa <= gpa and gpa + length <= r.end and length >= 0:
                return r
        raise GuestMemoryError(f"guest-physical range {gpa:#x}+{length:#x} is not in RAM")

    def contains(self, gpa: int, length: int = 1) -> bool:
        return any(r.gpa <= gpa and gpa + length <= r.end for r in self.regions) and length >= 0

    def first_gap(self, gpa: int, length: int) -> int | None:
        """The first address of [gpa, gpa + length) that no RAM region holds, or None; by
        arithmetic over the regions, however long the range."""
        pos, end = gpa, gpa + length
        for r in self.regions:  # sorted by address
            if r.end <= pos:
                continue
            if r.gpa > pos:
                return pos
            pos = r.end
            if pos >= end:
                return None
        return pos if pos < end else None

    def host_address(self, gpa: int) -> int:
        r = self.region_of(gpa)
        return r.host_addr + (gpa - r.gpa)

    # --- access ------------------------------------------------------------------------
    def view(self, gpa: int, length: int) -> memoryview:
        """A live, writable view of guest RAM (no copy); counted as written while pages are tracked."""
        if self.written is not None and length > 0:
            self.written.update(range(gpa & ~0xFFF, gpa + length, 0x1000))
        return self._span(gpa, length)

    def _span(self, gpa: int, length: int) -> memoryview:
        r = self.region_of(gpa, length)
        off = gpa - r.gpa
        return r.buffer[off : off + length]

    def read(self, gpa: int, length: int) -> bytes:
        return bytes(self._span(gpa, length))

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        hook = self.trapped_writer
        if hook is not None and hook(gpa, data):
            return
        self.view(gpa, len(data))[:] = data

    def write_direct(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        """`write` without the SPP engine's hook: the engine's own writes, made under its lock."""
        self.view(gpa, len(data))[:] = data

    def fill(self, gpa: int, length: int, byte: int = 0) -> None:
        self.write(gpa, bytes([byte]) * length)

    def read_u8(self, gpa: int) -> int:
        return self._span(gpa, 1)[0]

    def read_u16(self, gpa: int) -> int:
        return int(struct.unpack("<H", self._span(gpa, 2))[0])

    def read_u32(self, gpa: int) -> int:
        return int(struct.unpack("<I", self._span(gpa, 4))[0])

    def read_u64(self, gpa: int) -> int:
        return int(struct.unpack("<Q", self._span(gpa, 8))[0])

    def write_u32(self, gpa: int, value: int) -> None:
        self.write(gpa, struct.pack("<I", value & 0xFFFFFFFF))

    def write_u64(self, gpa: int, value: int) -> None:
        self.write(gpa, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def read_cstring(self, gpa: int, limit: int = 4096) -> str:
        """A NUL-terminated string the guest points at; it must end within `limit` bytes of RAM."""
        r = self.region_of(gpa)
        avail = min(limit, r.end - gpa)
        raw = self.read(gpa, avail)
        end = raw.find(b"\0")
        if end < 0:
            raise GuestMemoryError(f"string at {gpa:#x} is not terminated within {avail} bytes")
        return raw[:end].decode("utf-8", "replace")
