/*
 * kernel-target (flat 64-bit, CPL 0 only, debug console): a guest that runs
 * on page tables of its own, as a kernel does, for the debugger's planted
 * breakpoints and its physical-memory mode. With its own GDT, TSS and IDT
 * (the trap library), so a #BP or #DB that reached the guest is counted and
 * reported at the end.
 *
 * The tables map the first 1 GiB twice with 2 MiB pages, supervisor only
 * (no U/S bit: no CPL-3 code can run there), at virtual 0 (identity) and at
 * ALIAS (virtual ALIAS + x is physical x). After switching CR3 it calls
 * work() three times (total = 1 + 2 + 3), then prints:
 *   kernel-target: total 0x6
 *   traps cpu=0 total=0
 *   trap-last cpu=0 none
 *   kernel-target: done
 * and ends with debug_exit(0x32): status 101.
 */
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "trap.h"

#define ALIAS 0x40000000UL
#define PTE_P 1UL
#define PTE_RW 2UL
#define PTE_PS 0x80UL

volatile uint64_t total;

static uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
static uint64_t pd[512] __attribute__((aligned(4096)));

__attribute__((noinline)) void work(uint64_t by)
{
	total += by;
}

__attribute__((noinline)) void paging_on(void)
{
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | PTE_P | PTE_RW | PTE_PS;
	pdpt[0] = (uint64_t)pd | PTE_P | PTE_RW;
	pdpt[ALIAS >> 30] = (uint64_t)pd | PTE_P | PTE_RW;
	pml4[0] = (uint64_t)pdpt | PTE_P | PTE_RW;
	__asm__ volatile("mov %0, %%cr3" : : "r"(pml4) : "memory");
}

int main(void)
{
	trap_init();
	paging_on();
	for (uint64_t i = 1; i <= 3; i++)
		work(i);
	debugcon_puts("kernel-target: total 0x");
	debugcon_put_hex(total, 0);
	debugcon_putc('\n');
	trap_print(debugcon_putc, 0);
	debugcon_puts("kernel-target: done\n");
	debug_exit(0x32);
}
