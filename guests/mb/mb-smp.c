/*
 * mb-smp: finds the CPUs in the ACPI MADT (RSDP found by scanning
 * 0xe0000-0xfffff), starts every other CPU with INIT, SIPI, SIPI through
 * the xAPIC, and has each one report, in APIC-id order:
 *
 *   smp: 4 cpus in the MADT, bsp apic id 0, local apic 0xfee00000
 *   cpu 0 up (apic id 0)
 *   cpu 1 up (apic id 1)
 *   ...
 *   smp: all 4 cpus up
 *
 * then exits with 0x14. With "sync-before-sipi" on the command line, the
 * BSP makes a ucall SYNC (stage 2, the AP's APIC id) between each AP's INIT
 * and its SIPIs, while that AP waits for its start-up IPI: a host can stop
 * the run there (pyvmm's --snapshot-at sync:N). "cpu N" is the CPU's rank
 * by APIC id. Every CPU,
 * the BSP included, waits for its turn (a shared counter) before printing,
 * and printing is under a spinlock as well, so the output does not depend
 * on which AP starts first.
 */
#include "kernel.h"
#include "serial.h"
#include "smp.h"
#include "ucall.h"

/*
 * How long a CPU waits for its turn: on this project's hosts CPL-0 code may
 * be emulated (about a microsecond per instruction), so this amounts to
 * seconds, far more than any working machine needs.
 */
#define WAIT_SPINS       2000000

/* Shared by every CPU. */
static volatile uint32_t arrived;	/* APs that reached C */
static volatile uint32_t turn;		/* rank of the CPU whose turn it is to report */
static volatile uint32_t print_lock;

static void lock(void)
{
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		while (print_lock)
			cpu_relax();
}

static void unlock(void)
{
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
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

/* The loader's memory map must show the trampoline's page as free RAM. */
static int trampoline_page_free(const struct mb_info *info)
{
	uint32_t addr = info->mmap_addr, end = info->mmap_addr + info->mmap_length;

	if (!(info->flags & MB_INFO_MMAP))
		return 0;
	while (addr < end) {
		const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)addr;

		if (e->type == 1 && e->base <= TRAMPOLINE_ADDR &&
		    e->base + e->length >= TRAMPOLINE_ADDR + 0x1000)
			return 1;
		addr += e->size + sizeof(e->size);
	}
	return 0;
}

static void put_cpu_line(uint32_t rank, uint32_t apic_id)
{
	serial_puts("cpu ");
	serial_put_dec(rank);
	serial_puts(" up (apic id ");
	serial_put_dec(apic_id);
	serial_puts(")\n");
}

/* Waits for this CPU's turn, reports, and passes the turn on. 0 if the turn never came. */
static int take_turn(uint32_t apic_id)
{
	uint32_t rank = smp_rank(apic_id);

	if (rank == smp_ncpus) {
		lock();
		serial_puts("apic id ");
		serial_put_dec(apic_id);
		serial_puts(" is not in the MADT\n");
		unlock();
		return 0;
	}
	if (!wait_for(&turn, rank))
		return 0;
	lock();
	put_cpu_line(rank, apic_id);
	unlock();
	__atomic_store_n(&turn, rank + 1, __ATOMIC_RELEASE);
	return 1;
}

void ap_main(void)
{
	__atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
	take_turn(smp_apic_id());
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

static void sync_before_sipi(uint32_t apic_id)
{
	ucall_sync(2, apic_id);
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t bsp_id;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	if (!trampoline_page_free(info)) {
		serial_puts("the memory map does not show the trampoline page ");
		put_hex(TRAMPOLINE_ADDR, 5);
		serial_puts(" as RAM\n");
		return EXIT_MISSING;
	}
	switch (smp_find_cpus()) {
	case SMP_FOUND:
		break;
	case SMP_NO_RSDP:
		serial_puts("no ACPI RSDP in 0xe0000-0xfffff\n");
		return EXIT_MISSING;
	case SMP_NO_MADT:
		serial_puts("no valid RSDT or MADT\n");
		return EXIT_MISSING;
	case SMP_TOO_MANY:
		serial_puts("more CPUs in the MADT than this kernel supports\n");
		return EXIT_FAILED;
	}

	bsp_id = smp_apic_id();
	serial_puts("smp: ");
	serial_put_dec(smp_ncpus);
	serial_puts(" cpus in the MADT, bsp apic id ");
	serial_put_dec(bsp_id);
	serial_puts(", local apic ");
	put_hex(smp_lapic_addr, 8);
	serial_putc('\n');

	if (cmdline_has(info, "sync-before-sipi"))
		smp_before_sipi = sync_before_sipi;
	smp_start_aps(bsp_id);

	if (!take_turn(bsp_id) || !wait_for(&turn, smp_ncpus)) {
		lock();
		serial_puts("smp: only ");
		serial_put_dec(turn);
		serial_puts(" of ");
		serial_put_dec(smp_ncpus);
		serial_puts(" cpus reported (");
		serial_put_dec(arrived);
		serial_puts(" APs started)\n");
		unlock();
		return EXIT_FAILED;
	}
	serial_puts("smp: all ");
	serial_put_dec(smp_ncpus);
	serial_puts(" cpus up\n");
	return 0x14;
}
