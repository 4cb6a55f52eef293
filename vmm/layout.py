"""Where pyvmm puts things in guest-physical memory, and the guest-visible port numbers.

These numbers are the guest interface: guests in ``guests/`` and the README rely on them.
"""

from __future__ import annotations

PAGE_SIZE = 4096
SUBPAGE_SIZE = 128

# --- boot structures written by the monitor for protected and long mode --------------------
# They sit in low RAM, below the default load address; an image may not overlap them.
BOOT_GDT = 0x1000  # descriptor table (selectors below)
BOOT_IDT = 0x2000  # left empty (limit 0): an exception before the guest loads its own IDT triple-faults
BOOT_TSS = 0x3000  # 104-byte TSS followed by an all-zero I/O permission bitmap (every port allowed at CPL 3)
BOOT_PML4 = 0x6000  # long mode: PML4, PDPT and four page directories identity-map 4 GiB with 2 MiB pages
BOOT_PDPT = 0x7000
BOOT_PD = 0x8000  # four consecutive pages, 0x8000..0xbfff
MONITOR_AREA = (0x1000, 0xC000)  # [start, end) reserved for the above in protected and long mode

# KVM needs three pages for the real-mode TSS and one for the identity map on Intel hosts; they
# must lie outside RAM. These are the addresses QEMU uses.
KVM_TSS_ADDR = 0xFFFBD000
KVM_IDENTITY_MAP_ADDR = 0xFFFBC000

# --- selectors of the boot GDT ---------------------------------------------------------
SEL_KERNEL_CODE = 0x08
SEL_KERNEL_DATA = 0x10
SEL_USER_CODE = 0x18 | 3
SEL_USER_DATA = 0x20 | 3
SEL_TSS = 0x28

# --- default image placement --------------------------------------------------------------
REAL_MODE_LOAD = 0x7C00  # CS:IP = 0000:7C00, as a BIOS starts a boot sector
DEFAULT_LOAD = 0x100000  # protected and long mode: 1 MiB
DEFAULT_MEM = 128 << 20  # QEMU's default RAM, for flat binaries and kernels alike
KERNEL_STACK = 0x9F000  # ELF and multiboot kernels: a stack below the EBDA, above the loader's data

# --- guest interface ports ----------------------------------------------------------------
COM1_PORT = 0x3F8  # 16550 UART, 8 registers
DEBUGCON_PORT = 0xE9  # one-port debug console
DEBUG_EXIT_PORT = 0xF4  # isa-debug-exit compatible: writing v ends the run with (v << 1) | 1
DEBUG_EXIT_SIZE = 4
UCALL_PORT = 0x1000  # 32-bit OUT of the guest-physical address of a struct ucall

# --- ACPI power management (PIIX4's blocks, at the addresses QEMU's pc machine uses) -----------
PM_BASE = 0x600
PM1A_EVT_BLK = PM_BASE  # PM1a_STS (2 bytes) then PM1a_EN (2 bytes)
PM1_EVT_LEN = 4
PM1A_CNT_BLK = PM_BASE + 4  # PM1a_CNT, 2 bytes
PM1_CNT_LEN = 2
PM_TMR_BLK = PM_BASE + 8  # the 3.579545 MHz PM timer, 24 bits, read as 4 bytes
PM_TMR_LEN = 4
SCI_IRQ = 9
SLP_TYP_S3, SLP_TYP_S5 = 1, 0  # the DSDT's \_S3_ and \_S5_ values (QEMU's)
