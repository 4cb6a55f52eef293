/*
 * mb-cpuid: starts every CPU (ACPI MADT, INIT-SIPI-SIPI, as mb-smp does)
 * and has each one, in APIC-id order, print its CPUID leaves:
 *
 *   cpuid: 2 cpus
 *   cpu 0 (apic id 0)
 *     00000000.0: eax 0x0000000d ebx 0x68747541 ecx 0x444d4163 edx 0x69746e65
 *     00000001.0: ...
 *     ...
 *     vendor "AuthenticAMD" brand "QEMU Virtual CPU version 2.5+"
 *   cpu 1 (apic id 1)
 *     ...
 *   cpuid: done
 *
 * then exits with 0x18. Leaves, when the maximum leaf (basic or extended)
 * includes them: 0, 1, 7.0, 0xd.0, 0xd.1, 0x80000000-0x80000008, and the
 * topology leaves 0xb and 0x1f (every subleaf up to the first of type 0).
 *
 * What is printed: every register of those leaves as the monitor's CPUID
 * table defines it, with the bits cleared that KVM computes from the vCPU's
 * current state rather than taking from the table (so they say what the OS
 * did, not what the model is):
 *   1.ecx bit 27   OSXSAVE: mirrors CR4.OSXSAVE
 *   1.edx bit 9    APIC: mirrors the enable bit of IA32_APIC_BASE
 *   7.0.ecx bit 4  OSPKE: mirrors CR4.PKE
 *   0xd.0 ebx      XSAVE area size for the features now enabled in XCR0
 *   0xd.1 ebx      the same for XCR0 | IA32_XSS
 * Everything else comes from the CPU model and the machine: for a named
 * model (`-cpu qemu64`, `-cpu kvm64`) QEMU's model definition (family,
 * model, stepping, maximum leaves, brand, address sizes) minus the features
 * the host's KVM cannot offer (QEMU warns about each one it drops, and they
 * differ between hosts), with the host's vendor string (QEMU puts the
 * host's vendor into named models when it runs on KVM), and the topology
 * (-smp) in 1.ebx 31:16, 0xb and 0x1f; for `-cpu host` and `-cpu max` the
 * host's own values as KVM reports them. So on one host a monitor can be
 * compared with QEMU for every model; across hosts only the topology
 * fields are stable for every model.
 *
 * On this project's hosts (KVM under PVM) CPUID executed at CPL 0 answers
 * leaf 1 ecx, leaf 7.0 and leaf 0xd with bits of the host CPU that neither
 * QEMU's table nor pyvmm's (KVM_GET_SUPPORTED_CPUID) contains: qemu64 shows
 * AVX, AES and the rest in 1.ecx, and the same 7.0.ebx (0xf1bf03ab) as
 * pyvmm's table with 0x01800002 in it. The other leaves follow the table.
 * QEMU 7.2 does not start at all with `-cpu max` or `-cpu host` there
 * ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES); `-cpu
 * max,-arch-capabilities` works.
 *
 * `-append topology` prints, per CPU, only what the machine and not the
 * host defines for every model: the APIC ids and counts of leaf 1 ebx
 * 31:16, the 0xb / 0x1f subleaves and AMD's 0x8000001e (APIC id, core and
 * node ids), when the maximum extended leaf includes it.
 *
 * `-append caches` prints, per CPU, what a kernel reads to name the CPU and
 * size its caches: the brand string (0x80000002-4), the cache descriptors of
 * leaf 2, the deterministic cache
 * parameters of leaf 4 and of 0x8000001d (every subleaf up to the first of
 * cache type 0, which is printed too; each only when the maximum leaf
 * includes it) and the AMD cache and TLB descriptions of 0x80000005 and
 * 0x80000006. For `-cpu max` and `-cpu host` these come from the host's
 * CPU, so the two monitors can be compared there on one host. Leaf 4
 * eax bits 31:26 (cores per package) and bits 25:14 (logical CPUs sharing
 * the cache) and 0x8000001d eax 25:14 follow the topology and are printed
 * as they are.
 */
#include "kernel.h"
#include "serial.h"
#include "smp.h"
#include "fatal-trap.h"

#define WAIT_SPINS     2000000	/* see mb-smp.c: seconds of emulated CPL-0 code */
#define MAX_SUBLEAVES  8	/* of 0xb and 0x1f: SMT, core, module, tile, die, ... */

struct regs {
	uint32_t a, b, c, d;
};

static volatile uint32_t arrived;
static volatile uint32_t turn;
static int topology_only;
static int caches_only;

static struct regs cpuid(uint32_t leaf, uint32_t subleaf)
{
	struct regs r;

	__asm__ volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(subleaf));
	return r;
}

static void put_leaf(uint32_t leaf, uint32_t subleaf, struct regs r)
{
	serial_puts("  ");
	serial_put_hex(leaf, 8);
	serial_putc('.');
	serial_put_hex(subleaf, 0);
	serial_puts(": eax ");
	put_hex(r.a, 8);
	serial_puts(" ebx ");
	put_hex(r.b, 8);
	serial_puts(" ecx ");
	put_hex(r.c, 8);
	serial_puts(" edx ");
	put_hex(r.d, 8);
	serial_putc('\n');
}

static void print(uint32_t leaf, uint32_t subleaf, struct regs mask)
{
	struct regs r = cpuid(leaf, subleaf);

	r.a &= mask.a;
	r.b &= mask.b;
	r.c &= mask.c;
	r.d &= mask.d;
	put_leaf(leaf, subleaf, r);
}

static const struct regs ALL = { ~0u, ~0u, ~0u, ~0u };

/* 4 or 0x8000001d: subleaves until the cache type (eax 4:0) is 0, which is printed too. */
static void print_cache_leaf(uint32_t leaf)
{
	uint32_t n;

	for (n = 0; n < MAX_SUBLEAVES; n++) {
		struct regs r = cpuid(leaf, n);

		put_leaf(leaf, n, r);
		if ((r.a & 0x1f) == 0)
			break;
	}
}

/* 0xb or 0x1f: subleaves until the level type (ecx 15:8) is 0, which is printed too. */
static void print_topology_leaf(uint32_t leaf)
{
	uint32_t n;

	for (n = 0; n < MAX_SUBLEAVES; n++) {
		struct regs r = cpuid(leaf, n);

		put_leaf(leaf, n, r);
		if (((r.c >> 8) & 0xff) == 0)
			break;
	}
}

static void put_chars(uint32_t word)
{
	int i;

	for (i = 0; i < 4; i++, word >>= 8)
		if (word & 0xff)
			serial_putc((char)(word & 0xff));
}

static void print_names(uint32_t max_ext)
{
	struct regs v = cpuid(0, 0);
	uint32_t leaf;

	serial_puts("  vendor \"");
	put_chars(v.b);
	put_chars(v.d);
	put_chars(v.c);
	serial_putc('"');
	if (max_ext >= 0x80000004) {
		/* Brand strings are often padded with leading spaces: printed as they are. */
		serial_puts(" brand \"");
		for (leaf = 0x80000002; leaf <= 0x80000004; leaf++) {
			struct regs r = cpuid(leaf, 0);

			put_chars(r.a);
			put_chars(r.b);
			put_chars(r.c);
			put_chars(r.d);
		}
		serial_putc('"');
	}
	serial_putc('\n');
}

static void print_cpu(void)
{
	uint32_t max = cpuid(0, 0).a, max_ext = cpuid(0x80000000, 0).a, leaf;

	if (caches_only) {
		for (leaf = 0x80000002; leaf <= max_ext && leaf <= 0x80000006; leaf++)
			print(leaf, 0, ALL);
		if (max >= 2)
			print(2, 0, ALL);
		if (max >= 4)
			print_cache_leaf(4);
		if (max_ext >= 0x8000001d)
			print_cache_leaf(0x8000001d);
		print_names(max_ext);
		return;
	}
	if (topology_only) {
		struct regs r = cpuid(1, 0);

		serial_puts("  00000001.0: ebx[31:16] ");
		put_hex(r.b >> 16, 4);
		serial_putc('\n');
	} else {
		print(0, 0, ALL);
		print(1, 0, (struct regs){ ~0u, ~0u, ~(1u << 27), ~(1u << 9) });
		if (max >= 7)
			print(7, 0, (struct regs){ ~0u, ~0u, ~(1u << 4), ~0u });
		if (max >= 0xd) {
			print(0xd, 0, (struct regs){ ~0u, 0, ~0u, ~0u });
			print(0xd, 1, (struct regs){ ~0u, 0, ~0u, ~0u });
		}
		for (leaf = 0x80000000; leaf <= max_ext && leaf <= 0x80000008; leaf++)
			print(leaf, 0, ALL);
	}
	if (max >= 0xb)
		print_topology_leaf(0xb);
	if (max >= 0x1f)
		print_topology_leaf(0x1f);
	if (topology_only && max_ext >= 0x8000001e)
		print(0x8000001e, 0, ALL);
	if (!topology_only)
		print_names(max_ext);
}

static int wait_for(volatile uint32_t *p, uint32_t value)
{
	int spins = WAIT_SPINS;

	while (*p != value) {
		if (--spins == 0)
			return 0;
		cpu_relax();
	}
	return 1;
}

/* Waits for this CPU's turn, prints, passes the turn on. Only one CPU prints at a time. */
static int take_turn(uint32_t apic_id)
{
	uint32_t rank = smp_rank(apic_id);

	if (rank == smp_ncpus || !wait_for(&turn, rank))
		return 0;
	serial_puts("cpu ");
	serial_put_dec(rank);
	serial_puts(" (apic id ");
	serial_put_dec(apic_id);
	serial_puts(")\n");
	print_cpu();
	__atomic_store_n(&turn, rank + 1, __ATOMIC_RELEASE);
	return 1;
}

void ap_main(void)
{
	fatal_trap_load();
	__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
	take_turn(smp_apic_id());
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t bsp_id;

	fatal_trap_init();
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	topology_only = cmdline_has(info, "topology");
	caches_only = cmdline_has(info, "caches");
	if (smp_find_cpus() != SMP_FOUND) {
		serial_puts("cpuid: no usable ACPI MADT\n");
		return EXIT_MISSING;
	}
	serial_puts("cpuid: ");
	serial_put_dec(smp_ncpus);
	serial_puts(smp_ncpus == 1 ? " cpu\n" : " cpus\n");

	bsp_id = smp_apic_id();
	smp_start_aps(bsp_id);
	if (!take_turn(bsp_id) || !wait_for(&turn, smp_ncpus)) {
		serial_puts("cpuid: only ");
		serial_put_dec(turn);
		serial_puts(" of ");
		serial_put_dec(smp_ncpus);
		serial_puts(" cpus reported (");
		serial_put_dec(arrived);
		serial_puts(" APs started)\n");
		return EXIT_FAILED;
	}
	serial_puts("cpuid: done\n");
	return 0x18;
}
