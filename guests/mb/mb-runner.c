/*
 * mb-runner: a kernel for the command line a kvm-unit-tests style runner
 * generates for one test:
 *
 *   qemu-system-x86_64 --no-reboot -nodefaults -global kvm-pit.lost_tick_policy=discard
 *     -device pc-testdev -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none
 *     -serial stdio -device pci-testdev -machine accel=kvm -kernel mb-runner.elf -smp 2
 *     -cpu max -append 'ARGS' -initrd ENVFILE
 *
 * It prints what such a test reads from its environment:
 *
 *   runner: args "ARGS" (N words)
 *   runner: env file 1 of 1 modules, 2 lines
 *     env A=1
 *     env B=two
 *   runner: cpus 2 in the MADT, 2 in fw_cfg, 2 up
 *   runner: pci-testdev (1b36:0005) at 00:02.0
 *   runner: pc-testdev ports 0xe0 and 0xe8 and memory at 0xff000000 read back
 *   runner: exit code 0x0
 *
 * and exits through isa-debug-exit with the code given as `code=N` in
 * ARGS, 0 by default: status 1, which such a runner counts as a pass. The
 * env file is the first multiboot module (QEMU: -initrd), read as lines of
 * KEY=VALUE (a line that is not is printed with "not KEY=VALUE"); a
 * missing module prints "runner: no env file". Absent devices print
 * "runner: no pci-testdev" / "runner: no pc-testdev" and the run goes on.
 * `fault` in ARGS executes ud2 after the environment lines, to show the
 * trap report (vector 0x06, #UD) and its status (EXIT_TRAP).
 *
 * pc-testdev (QEMU hw/misc/pc-testdev.c), as used here: port 0xe0, 4
 * bytes, stores what is written and reads it back (any width); port 0xe8,
 * the same store through byte-wide accesses; 64 KiB of memory-like MMIO
 * at 0xff000000.
 */
#include "io.h"
#include "kernel.h"
#include "pci.h"
#include "serial.h"
#include "smp.h"
#include "fatal-trap.h"

#define MAX_ARGS        1024
#define MAX_LINE        200
#define MAX_ENV_LINES   64
#define WAIT_SPINS      2000000	/* see mb-smp.c */

#define FW_CFG_PORT_SEL   0x510
#define FW_CFG_PORT_DATA  0x511
#define FW_CFG_SIGNATURE  0x00
#define FW_CFG_NB_CPUS    0x05

#define PC_TESTDEV_PORT       0xe0
#define PC_TESTDEV_PORT_BYTE  0xe8
#define PC_TESTDEV_IOMEM      0xff000000u

static volatile uint32_t aps_up;

void ap_main(void)
{
	fatal_trap_load();
	__atomic_fetch_add(&aps_up, 1, __ATOMIC_SEQ_CST);
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

static void print_args(const struct mb_info *info)
{
	const char *s;
	int n = 0, words = 0, in_word = 0;

	if (!(info->flags & MB_INFO_CMDLINE)) {
		serial_puts("runner: no command line\n");
		return;
	}
	s = (const char *)(uintptr_t)info->cmdline;
	/* The first word is the image QEMU was given; the rest is -append. */
	while (n < MAX_ARGS && s[n] && s[n] != ' ')
		n++;
	if (s[n] == ' ')
		n++;
	s += n;
	serial_puts("runner: args \"");
	for (n = 0; n < MAX_ARGS && s[n]; n++) {
		serial_putc(s[n]);
		if (s[n] != ' ' && !in_word)
			words++;
		in_word = s[n] != ' ';
	}
	serial_puts("\" (");
	serial_put_dec((unsigned long)words);
	serial_puts(words == 1 ? " word)\n" : " words)\n");
}

static int is_key_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_key_char(char c)
{
	return is_key_start(c) || (c >= '0' && c <= '9');
}

static int env_line_ok(const char *p, const char *end)
{
	if (p == end || !is_key_start(*p))
		return 0;
	while (p < end && is_key_char(*p))
		p++;
	return p < end && *p == '=';
}

static void print_env(const struct mb_info *info)
{
	const struct mb_module *m = (const struct mb_module *)(uintptr_t)info->mods_addr;
	const char *p, *end;
	int lines = 0;

	if (!(info->flags & MB_INFO_MODS) || info->mods_count == 0) {
		serial_puts("runner: no env file\n");
		return;
	}
	p = (const char *)(uintptr_t)m->mod_start;
	end = (const char *)(uintptr_t)m->mod_end;
	/* Counted first, so the count comes before the lines. */
	for (const char *q = p; q < end; q++)
		if (*q == '\n' || q + 1 == end)
			lines++;
	serial_puts("runner: env file 1 of ");
	serial_put_dec(info->mods_count);
	serial_puts(info->mods_count == 1 ? " module, " : " modules, ");
	serial_put_dec((unsigned long)lines);
	serial_puts(lines == 1 ? " line\n" : " lines\n");
	for (lines = 0; p < end && lines < MAX_ENV_LINES; lines++) {
		const char *eol = p;
		int n;

		while (eol < end && *eol != '\n')
			eol++;
		serial_puts("  env ");
		for (n = 0; p + n < eol && n < MAX_LINE; n++)
			serial_putc(p[n]);
		if (p + n < eol)
			serial_puts("...");
		if (!env_line_ok(p, eol))
			serial_puts(" (not KEY=VALUE)");
		serial_putc('\n');
		p = eol + 1;
	}
}

static uint32_t fw_cfg_cpus(void)
{
	uint32_t sig = 0, n;
	int i;

	outw(FW_CFG_PORT_SEL, FW_CFG_SIGNATURE);
	for (i = 0; i < 4; i++)
		sig |= (uint32_t)inb(FW_CFG_PORT_DATA) << (8 * i);
	if (sig != 0x554d4551u)	/* "QEMU" */
		return 0;
	outw(FW_CFG_PORT_SEL, FW_CFG_NB_CPUS);
	n = inb(FW_CFG_PORT_DATA);
	return n | (uint32_t)inb(FW_CFG_PORT_DATA) << 8;
}

static int count_cpus(void)
{
	uint32_t bsp, want;
	int spins = WAIT_SPINS;

	if (smp_find_cpus() != SMP_FOUND) {
		serial_puts("runner: no usable ACPI MADT\n");
		return 0;
	}
	bsp = smp_apic_id();
	smp_start_aps(bsp);
	want = smp_ncpus - 1;
	while (aps_up < want && --spins > 0)
		cpu_relax();
	serial_puts("runner: cpus ");
	serial_put_dec(smp_ncpus);
	serial_puts(" in the MADT, ");
	serial_put_dec(fw_cfg_cpus());
	serial_puts(" in fw_cfg, ");
	serial_put_dec(aps_up + 1);
	serial_puts(" up\n");
	return aps_up == want;
}

static void check_pci_testdev(void)
{
	struct pci_fn f;

	if (!pci_find(0x1b36, 0x0005, &f)) {
		serial_puts("runner: no pci-testdev\n");
		return;
	}
	serial_puts("runner: pci-testdev (1b36:0005) at ");
	serial_put_hex(f.bus, 2);
	serial_putc(':');
	serial_put_hex(f.dev, 2);
	serial_putc('.');
	serial_put_hex(f.fn, 1);
	serial_putc('\n');
}

static void check_pc_testdev(void)
{
	volatile uint32_t *iomem = (volatile uint32_t *)PC_TESTDEV_IOMEM;
	int ok;

	outl(PC_TESTDEV_PORT, 0x12345678u);
	ok = inl(PC_TESTDEV_PORT) == 0x12345678u && inb(PC_TESTDEV_PORT + 1) == 0x56;
	outl(PC_TESTDEV_PORT_BYTE, 0x9abcdef0u);
	ok = ok && inl(PC_TESTDEV_PORT_BYTE) == 0x9abcdef0u;
	if (!ok) {
		serial_puts("runner: no pc-testdev\n");
		return;
	}
	iomem[1] = 0xa5a55a5au;
	serial_puts("runner: pc-testdev ports 0xe0 and 0xe8 ");
	serial_puts(iomem[1] == 0xa5a55a5au ? "and memory at 0xff000000 read back\n"
					    : "read back, memory at 0xff000000 does not\n");
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t code;

	fatal_trap_init();
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	print_args(info);
	print_env(info);
	if (cmdline_has(info, "fault"))
		__asm__ volatile("ud2");
	if (!count_cpus())
		return EXIT_FAILED;
	check_pci_testdev();
	check_pc_testdev();
	code = cmdline_number(info, "code", 0);
	serial_puts("runner: exit code ");
	put_hex(code, 0);
	serial_putc('\n');
	return (int)code;
}
