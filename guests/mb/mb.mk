# Kernels for QEMU's -kernel option, and the ELF kernels pyvmm loads the same
# way: included from guests/Makefile, so paths are relative to guests/ and
# the compiler flags, LD, LDFLAGS and the 32/64-bit guest libraries are that
# Makefile's. Products in build/mb/:
#
#   NAME.elf   multiboot kernels (ELF, 32-bit, with a multiboot header)
#   NAME.bin   multiboot kernels as flat images (header with load addresses)
#   NAME.elf   plain ELF32/ELF64 kernels (no multiboot header)
#   NAME.map   link maps
#
# mb-low is linked by its own script (low.ld) below 64 KiB.
#
# Every kernel prints on COM1 and ends through the isa-debug-exit port, but
# mb-smp-spp, which is for pyvmm only and ends with a ucall.

MB_MK    := $(lastword $(MAKEFILE_LIST))
MB_BUILD := $(BUILD)/mb

# Multiboot kernels linked as ELF at 1 MiB: start.o + NAME.o + kernel.o.
MB_ELF_KERNELS  := mb-info mb-modules mb-fwcfg mb-rtc mb-exitcodes mb-smp mb-timer \
                   mb-smp-spp mb-pci mb-cpuid mb-acpi mb-runner \
                   mb-trap-selftest mb-iret-probe mb-atomics mb-flush-race mb-ticks mb-exit-counts
# Multiboot kernels linked by a script of their own (low.ld: below 64 KiB),
# from one source: mb-low with text at 0x8000 and data at 0xb000; mb-low-a000
# with text at 0xa000 and data at 0xd000, clear of the 0x9000-0x95ff that
# QEMU's multiboot loader always takes for the memory map and the info
# structure (see mb-low.c).
MB_LOW_KERNELS  := mb-low mb-low-a000
# Multiboot kernels as flat images at 2 MiB, from the same C as mb-info.
MB_FLAT_KERNELS := mb-info-flat
# Plain ELF kernels, no multiboot header: elf-hello.c on elf-hello-start.S,
# compiled once per word size.
MB_PLAIN        := elf32-hello elf64-hello

MB_IMAGES := $(MB_ELF_KERNELS:%=$(MB_BUILD)/%.elf) $(MB_LOW_KERNELS:%=$(MB_BUILD)/%.elf) \
             $(MB_FLAT_KERNELS:%=$(MB_BUILD)/%.bin) \
             $(MB_PLAIN:%=$(MB_BUILD)/%.elf)

all: $(MB_IMAGES)

$(MB_BUILD):
	mkdir -p $@

# -Imb for this directory's headers; -Ilib (in the common flags) for the guest library.
MB_CFLAGS32  := $(CFLAGS32) -Imb
MB_CFLAGS64  := $(CFLAGS64) -Imb
MB_ASFLAGS32 := $(ASFLAGS32) -Imb
MB_ASFLAGS64 := $(ASFLAGS64) -Imb

$(MB_BUILD)/%.o: mb/%.c $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_CFLAGS32) -c $< -o $@
$(MB_BUILD)/%.o: mb/%.S $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_ASFLAGS32) -c $< -o $@
$(MB_BUILD)/start-flat.o: mb/start.S $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_ASFLAGS32) -DMB_ADDRESS_FIELDS -c $< -o $@
# A 4 KiB boot stack: the low kernel's data segment has little room.
$(MB_BUILD)/start-low.o: mb/start.S $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_ASFLAGS32) -DBOOT_STACK_SIZE=4096 -c $< -o $@
# The trap library's self-test, shared with the flat 64-bit trap-selftest.
$(MB_BUILD)/mb-trap-selftest.o: trap-selftest.c $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_CFLAGS32) -I. -DMB_KERNEL -c $< -o $@
$(MB_BUILD)/mb-iret-probe.o: iret-probe.c $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_CFLAGS32) -I. -DMB_KERNEL -c $< -o $@
# The plain ELF kernels' objects, named for their source and word size.
$(MB_BUILD)/elf-hello-32.o: mb/elf-hello.c $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_CFLAGS32) -c $< -o $@
$(MB_BUILD)/elf-hello-start-32.o: mb/elf-hello-start.S $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_ASFLAGS32) -c $< -o $@
$(MB_BUILD)/elf-hello-64.o: mb/elf-hello.c $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_CFLAGS64) -c $< -o $@
$(MB_BUILD)/elf-hello-start-64.o: mb/elf-hello-start.S $(THIS) $(MB_MK) | $(MB_BUILD)
	$(CC) $(MB_ASFLAGS64) -c $< -o $@

# The reporting IDT (fatal-trap.c, fatal-trap-isr.S) is linked into the kernels that load it.
MB_TRAP := $(MB_BUILD)/fatal-trap.o $(MB_BUILD)/fatal-trap-isr.o

# Kernels made of more than start, body and kernel.o.
$(MB_BUILD)/mb-smp.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o
$(MB_BUILD)/mb-smp-spp.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o
$(MB_BUILD)/mb-timer.elf: $(MB_BUILD)/timer-isr.o
$(MB_BUILD)/mb-ticks.elf: $(MB_BUILD)/ticks-isr.o $(MB_TRAP)
$(MB_BUILD)/mb-pci.elf: $(MB_BUILD)/pci.o $(MB_TRAP)
$(MB_BUILD)/mb-cpuid.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o $(MB_TRAP)
$(MB_BUILD)/mb-acpi.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o $(MB_BUILD)/acpi.o $(MB_BUILD)/acpi-resume.o $(MB_TRAP)
$(MB_BUILD)/mb-runner.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o $(MB_BUILD)/pci.o $(MB_TRAP)
$(MB_BUILD)/mb-atomics.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o
$(MB_BUILD)/mb-flush-race.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o
$(MB_BUILD)/mb-exit-counts.elf: $(MB_BUILD)/smp.o $(MB_BUILD)/smp-ap.o

$(MB_ELF_KERNELS:%=$(MB_BUILD)/%.elf): $(MB_BUILD)/%.elf: $(MB_BUILD)/start.o $(MB_BUILD)/%.o \
		$(MB_BUILD)/kernel.o $(LIB32) mb/kernel.ld
	$(LD) -m elf_i386 $(LDFLAGS) -T mb/kernel.ld --defsym=KERNEL_BASE=0x100000 \
		-Map=$(MB_BUILD)/$*.map -o $@ $(filter %.o,$^) $(LIB32)

MB_LOW_OBJS := $(MB_BUILD)/start-low.o $(MB_BUILD)/mb-low.o $(MB_BUILD)/kernel.o $(MB_TRAP)
$(MB_BUILD)/mb-low.elf: $(MB_LOW_OBJS) $(LIB32) mb/low.ld
	$(LD) -m elf_i386 $(LDFLAGS) -T mb/low.ld --defsym=TEXT_BASE=0x8000 --defsym=DATA_BASE=0xb000 \
		-Map=$(MB_BUILD)/mb-low.map -o $@ $(filter %.o,$^) $(LIB32)
$(MB_BUILD)/mb-low-a000.elf: $(MB_LOW_OBJS) $(LIB32) mb/low.ld
	$(LD) -m elf_i386 $(LDFLAGS) -T mb/low.ld --defsym=TEXT_BASE=0xa000 --defsym=DATA_BASE=0xd000 \
		-Map=$(MB_BUILD)/mb-low-a000.map -o $@ $(filter %.o,$^) $(LIB32)

# The flat kernel is linked as an ELF first (for symbols and the map), then
# stripped to the bytes from load_addr to load_end_addr.
$(MB_BUILD)/mb-info-flat.elf: $(MB_BUILD)/start-flat.o $(MB_BUILD)/mb-info.o $(MB_BUILD)/kernel.o \
		$(LIB32) mb/kernel.ld
	$(LD) -m elf_i386 $(LDFLAGS) -T mb/kernel.ld --defsym=KERNEL_BASE=0x200000 \
		-Map=$(MB_BUILD)/mb-info-flat.map -o $@ $(filter %.o,$^) $(LIB32)
$(MB_FLAT_KERNELS:%=$(MB_BUILD)/%.bin): $(MB_BUILD)/%.bin: $(MB_BUILD)/%.elf
	$(OBJCOPY) -O binary $< $@

# Plain ELF32 at 2 MiB and ELF64 at 1 MiB: different addresses on purpose,
# so a loader that ignores the program headers shows.
$(MB_BUILD)/elf32-hello.elf: $(MB_BUILD)/elf-hello-start-32.o $(MB_BUILD)/elf-hello-32.o \
		$(LIB32) mb/kernel.ld
	$(LD) -m elf_i386 $(LDFLAGS) -T mb/kernel.ld --defsym=KERNEL_BASE=0x200000 \
		-Map=$(MB_BUILD)/elf32-hello.map -o $@ $(filter %.o,$^) $(LIB32)
$(MB_BUILD)/elf64-hello.elf: $(MB_BUILD)/elf-hello-start-64.o $(MB_BUILD)/elf-hello-64.o \
		$(LIB64) mb/kernel.ld
	$(LD) -m elf_x86_64 $(LDFLAGS) -T mb/kernel.ld --defsym=KERNEL_BASE=0x100000 \
		-Map=$(MB_BUILD)/elf64-hello.map -o $@ $(filter %.o,$^) $(LIB64)

# Header dependencies (build/mb/*.d) are read by guests/Makefile's own -include.
