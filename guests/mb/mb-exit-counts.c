/*
 * mb-exit-counts: every CPU makes a number of exits a test can know in
 * advance, so a monitor's per-vCPU statistics and trace can be checked
 * exactly, not just for being plausible.
 *
 * Command line (-append): "outs=N" (default 1000), "stores=S" (default 0),
 * "cpus=N" CPUs to use (default: every CPU in the ACPI MADT).
 *
 * The BSP finds the CPUs (ACPI MADT), prints
 *
 *   exit-counts: 2 cpus, outs 1000, stores 10
 *
 * and, when S > 0, asks the host (ucall SPP_PROTECT) to write-protect the
 * page `slots` lies on with mask 0x80000001: every sub-page denied but the
 * first and the last, so a host that guards a page's neighbours against
 * stores that cross into a denied edge sub-page has no reason to trap
 * them (the kernel's other data is there, and would add exits). It starts the
 * APs (INIT, SIPI, SIPI, all in the in-kernel LAPIC: no exit). Every CPU,
 * the BSP included, installs the trap library for itself (own GDT, TSS
 * whose I/O bitmap allows every port, IDT whose handlers count every
 * exception) and drops to CPL 3, where the CPU of rank r (rank = order of
 * APIC ids, so rank r is vCPU r) does, in turn:
 *
 *   (r + 1) * N  `outb` to the UART scratch register (one port exit each)
 *   (r + 1) * S  stores of 1, 2, 3 ... into slots.allowed[r] (sub-page 1)
 *   (r + 1) * S  stores of 1, 2, 3 ... into slots.denied[r]  (sub-page 2)
 *
 * (the names say what a test's policy does: allow sub-page 1, deny 2).
 *
 * With the page protected each store is one MMIO exit and one SPP event.
 * Back at CPL 0 it counts itself done and halts (an AP) or waits for the
 * others (the BSP), which then prints, per CPU,
 *
 *   cpu 0: outs 1000, allowed 10, denied 0
 *   traps cpu=0 total=0          (the trap library's two lines)
 *   trap-last cpu=0 none
 *
 * where allowed and denied are what the two slots read at the end (the
 * last value stored if the host let the stores through, 0 if it dropped
 * them), then "exit-counts: done", and ends through isa-debug-exit with
 * 0x1c (status 57); EXIT_FAILED (251) if a CPU did not finish.
 *
 * Exits, exactly: an AP of rank r makes (r + 1) * N port exits and
 * 2 * (r + 1) * S MMIO exits (S > 0 and the page protected) and nothing
 * else. The BSP makes N port exits for its work, 3 in serial_init, 2 per
 * byte printed on COM1 (a read of LSR, always ready here, and the write of
 * THR), 1 for the SPP_PROTECT ucall when S > 0 and 1 for the exit port;
 * plus its 2 * S MMIO exits.
 */
#include <stdint.h>

#include "exit.h"
#include "io.h"
#include "kernel.h"
#include "machine.h"
#include "serial.h"
#include "smp.h"
#include "trap.h"
#include "ucall.h"

#define DEFAULT_OUTS     1000
#define USER_STACK_SIZE  4096
#define PAGE_SIZE        4096
#define SUBPAGE_SIZE     128
#define SLOTS_MASK       0x80000001u	/* sub-pages 0 and 31 writable */
/* Generous: every CPU runs emulated here, and each store to the page is a host trip. */
#define DONE_SPINS       200000000

/* The page a host protects: one slot per CPU in sub-page 1, one in sub-page 2, nothing else. */
struct slots {
	uint8_t edge[SUBPAGE_SIZE];			/* sub-page 0: left writable */
	volatile uint32_t allowed[SUBPAGE_SIZE / 4];	/* sub-page 1 */
	volatile uint32_t denied[SUBPAGE_SIZE / 4];	/* sub-page 2 */
	uint8_t pad[PAGE_SIZE - 3 * SUBPAGE_SIZE];
};

_Static_assert(sizeof(struct slots) == PAGE_SIZE, "the slots fill one page");
_Static_assert(MAX_CPUS <= SUBPAGE_SIZE / 4, "one slot per CPU in a sub-page");

static struct slots slots __attribute__((aligned(PAGE_SIZE)));

/* Off the slots' page: bookkeeping must not cost a host trip per access. */
static volatile uint32_t done;
static volatile uint32_t outs_done[MAX_CPUS];
static uint32_t ncpus, outs, stores;

static uint8_t user_stacks[MAX_CPUS][USER_STACK_SIZE]
	__attribute__((aligned(16), section(".noinit")));

/* CPL 3: the exits of rank r. */
static uintptr_t work(uintptr_t rank)
{
	uint32_t i, n = (uint32_t)(rank + 1) * outs, s = (uint32_t)(rank + 1) * stores;

	for (i = 0; i < n; i++)
		outb(COM1_PORT + UART_SCR, (uint8_t)i);
	outs_done[rank] = n;
	for (i = 0; i < s; i++)
		slots.allowed[rank] = i + 1;
	for (i = 0; i < s; i++)
		slots.denied[rank] = i + 1;
	return 0;
}

static void run_cpu(uint32_t rank)
{
	trap_init_cpu(rank);
	user_run(work, rank, user_stacks[rank] + USER_STACK_SIZE);
	__atomic_fetch_add(&done, 1, __ATOMIC_SEQ_CST);
}

void ap_main(void)
{
	uint32_t rank = smp_rank(smp_apic_id());

	if (rank < ncpus && rank < TRAP_MAX_CPUS)
		run_cpu(rank);
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t bsp_rank, wanted, i;
	int spins = DONE_SPINS;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	trap_putc = serial_putc;
	if (smp_find_cpus() != SMP_FOUND) {
		serial_puts("exit-counts: no usable ACPI MADT\n");
		return EXIT_MISSING;
	}
	bsp_rank = smp_rank(smp_apic_id());
	outs = cmdline_number(info, "outs", DEFAULT_OUTS);
	stores = cmdline_number(info, "stores", 0);
	wanted = cmdline_number(info, "cpus", smp_ncpus);
	ncpus = wanted == 0 || wanted > smp_ncpus ? smp_ncpus : wanted;
	if (ncpus > TRAP_MAX_CPUS)
		ncpus = TRAP_MAX_CPUS;
	if (bsp_rank != 0) {
		serial_puts("exit-counts: the BSP is not the lowest APIC id\n");
		return EXIT_FAILED;
	}

	serial_puts("exit-counts: ");
	serial_put_dec(ncpus);
	serial_puts(" cpus, outs ");
	serial_put_dec(outs);
	serial_puts(", stores ");
	serial_put_dec(stores);
	serial_putc('\n');
	if (stores > 0 && ucall_spp_protect((uintptr_t)&slots, 1, SLOTS_MASK) != 0)
		serial_puts("exit-counts: the host did not protect the slots (stores land in RAM)\n");

	smp_start_cpus(smp_apic_ids[bsp_rank], ncpus);
	run_cpu(bsp_rank);

	while (done != ncpus && --spins > 0)
		cpu_relax();
	if (done != ncpus) {
		serial_puts("exit-counts: only ");
		serial_put_dec(done);
		serial_puts(" of ");
		serial_put_dec(ncpus);
		serial_puts(" cpus finished\n");
		return EXIT_FAILED;
	}
	for (i = 0; i < ncpus; i++) {
		serial_puts("cpu ");
		serial_put_dec(i);
		serial_puts(": outs ");
		serial_put_dec(outs_done[i]);
		serial_puts(", allowed ");
		serial_put_dec(slots.allowed[i]);
		serial_puts(", denied ");
		serial_put_dec(slots.denied[i]);
		serial_putc('\n');
		trap_print(serial_putc, i);
	}
	serial_puts("exit-counts: done\n");
	return 0x1c;
}
