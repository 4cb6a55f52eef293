/*
 * mb-flush-race: a hostile guest for a monitor that reads guest memory on
 * one thread while another vCPU asks for that memory to be unmapped. Needs
 * two CPUs and QEMU's pc-testdev (-device pc-testdev), whose port 0xe4
 * takes a guest-physical address and drops the host's mapping of that page
 * for a moment (pyvmm: mprotect to PROT_NONE and back).
 *
 * Both CPUs install the trap library. The BSP starts CPU 1, then writes the
 * address of page P to port 0xe4 over and over until CPU 1 is finished.
 * CPU 1 meanwhile sends ROUNDS ucalls whose struct lies on page P: SYNC
 * (stage 1, value = the round) in every round, and PRINT instead in every
 * 64th, whose message ("flush-race: print") lies elsewhere. Output:
 *
 *   flush-race: 2 cpus, 4096 rounds, ucall struct at 0x00105000
 *   flush-race: print                   (ROUNDS / 64 times)
 *   flush-race: 4096 rounds, N flushes
 *   traps cpu=0 total=0 / trap-last cpu=0 none / traps cpu=1 ... (two lines per CPU)
 *
 * then ucall DONE (status 0; a monitor without pyvmm's ucall port carries
 * on to debug_exit(0x19), status 51). "rounds=N" on the command line changes
 * ROUNDS. A robust monitor serves every ucall whole (or rejects one it
 * cannot read) and never faults itself: an unmapping must wait for, or be
 * invisible to, a read of the same page on another thread. Without
 * pc-testdev the flushes are writes to an empty port and the race is gone.
 * QEMU 7.2's own pc-testdev has the same race: with KVM or TCG it dies
 * with SIGSEGV too (it has no ucall port, so there CPU 1's plain stores to
 * P are what meets the unmapped window).
 */
#include <stdint.h>

#include "io.h"
#include "kernel.h"
#include "serial.h"
#include "smp.h"
#include "trap.h"
#include "ucall.h"

#define TESTDEV_FLUSH_PORT 0xe4
#define DEFAULT_ROUNDS     4096
#define PRINT_EVERY        64
#define PAGE_SIZE          4096
#define WAIT_SPINS         2000000

/* Page P: the ucall struct, alone on its page. */
static struct pyvmm_ucall race_call __attribute__((aligned(PAGE_SIZE)));
static uint8_t race_page_rest[PAGE_SIZE - sizeof(struct pyvmm_ucall)] __attribute__((used));

static const char print_msg[] = "flush-race: print";

static volatile uint32_t ap_started, ap_finished;
static uint32_t rounds;

static void send(uint32_t cmd, uint64_t value)
{
	race_call.magic = UCALL_MAGIC;
	race_call.cmd = cmd;
	race_call.args[0] = 1;
	race_call.args[1] = value;
	race_call.args[2] = 0;
	race_call.args[3] = 0;
	race_call.file = 0;
	race_call.msg = cmd == UCALL_PRINT ? (uint64_t)(uintptr_t)print_msg : 0;
	race_call.line = 0;
	race_call.result = 0;
	ucall_raw((uint32_t)(uintptr_t)&race_call);
}

void ap_main(void)
{
	uint32_t rank = smp_rank(smp_apic_id()), i;

	if (rank == 1) {
		trap_init_cpu(1);
		ap_started = 1;
		for (i = 0; i < rounds; i++)
			send(i % PRINT_EVERY == PRINT_EVERY - 1 ? UCALL_PRINT : UCALL_SYNC, i);
		__atomic_store_n(&ap_finished, 1, __ATOMIC_RELEASE);
	}
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	uint32_t bsp_rank, flushes = 0, i;
	int spins = WAIT_SPINS;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	trap_putc = serial_putc;
	if (smp_find_cpus() != SMP_FOUND || smp_ncpus < 2) {
		serial_puts("flush-race: needs 2 cpus in the ACPI MADT\n");
		return EXIT_MISSING;
	}
	bsp_rank = smp_rank(smp_apic_id());
	if (bsp_rank != 0) {
		serial_puts("flush-race: the BSP must have the lowest APIC id\n");
		return EXIT_FAILED;
	}
	rounds = cmdline_number(info, "rounds", DEFAULT_ROUNDS);
	trap_init_cpu(0);

	serial_puts("flush-race: 2 cpus, ");
	serial_put_dec(rounds);
	serial_puts(" rounds, ucall struct at ");
	put_hex((uintptr_t)&race_call, 8);
	serial_putc('\n');

	smp_start_cpus(smp_apic_ids[0], 2);
	while (!ap_started && --spins > 0)
		cpu_relax();
	if (!ap_started) {
		serial_puts("flush-race: cpu 1 did not start\n");
		return EXIT_FAILED;
	}
	while (!__atomic_load_n(&ap_finished, __ATOMIC_ACQUIRE)) {
		outl(TESTDEV_FLUSH_PORT, (uint32_t)(uintptr_t)&race_call);
		flushes++;
	}

	serial_puts("flush-race: ");
	serial_put_dec(rounds);
	serial_puts(" rounds, ");
	serial_put_dec(flushes);
	serial_puts(" flushes\n");
	for (i = 0; i < 2; i++)
		trap_print(serial_putc, i);
	/* pyvmm ends the run here; a monitor without the ucall port goes on to the exit port. */
	ucall(UCALL_DONE, 0, 0, 0, 0, NULL, NULL, 0);
	return 0x19;
}
