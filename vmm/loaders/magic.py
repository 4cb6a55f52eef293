"""The bytes that tell image formats apart, in a module of their own so that recognising a flat
binary loads neither the ELF nor the multiboot parser (start-up time)."""

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
