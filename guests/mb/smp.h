/*
 * Finding the CPUs and starting the APs, for mb-smp and mb-smp-spp: smp.c
 * reads the ACPI MADT and sends INIT, SIPI, SIPI through the xAPIC, and
 * smp-ap.S takes each AP from its start-up IPI to the kernel's ap_main().
 */
#ifndef MB_SMP_H
#define MB_SMP_H

/*
 * The real-mode trampoline is copied here: page-aligned and below 1 MiB, as
 * a start-up IPI's vector (the page number) requires, in conventional RAM
 * that neither QEMU's firmware nor pyvmm keeps for itself after boot
 * (pyvmm's boot structures occupy 0x1000-0xbfff).
 */
#define TRAMPOLINE_ADDR  0x70000
#define MAX_CPUS         16
#define AP_STACK_SIZE    4096

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Why smp_find_cpus() failed; each kernel reports it in its own words. */
enum smp_find_result {
	SMP_FOUND,
	SMP_NO_RSDP,		/* no valid RSDP in the BIOS area 0xe0000-0xfffff */
	SMP_NO_MADT,		/* no valid RSDT, or no valid MADT in it */
	SMP_TOO_MANY,		/* more enabled local APICs than MAX_CPUS */
};

/*
 * What smp_find_cpus() found: the enabled local APICs' ids in ascending
 * order (a CPU's rank is its index here) and the local APICs' MMIO base.
 */
extern uint32_t smp_ncpus;
extern uint32_t smp_apic_ids[MAX_CPUS];
extern uint32_t smp_lapic_addr;

/* Reads the MADT into the variables above, on the BSP (again if need be: it starts afresh). */
enum smp_find_result smp_find_cpus(void);

/* The calling CPU's APIC id (after smp_find_cpus() has succeeded). */
uint32_t smp_apic_id(void);

/* The rank of the CPU with this APIC id, or smp_ncpus if the MADT does not list it. */
uint32_t smp_rank(uint32_t apic_id);

/*
 * Copies the trampoline to TRAMPOLINE_ADDR, enables the BSP's local APIC and
 * starts every listed CPU but the BSP (APIC id bsp_id). Returns without
 * waiting for the APs: each reaches ap_main() on its own.
 */
void smp_start_aps(uint32_t bsp_id);

/* The same, but only until `count` CPUs (the BSP included) run: the first APs in rank order. */
void smp_start_cpus(uint32_t bsp_id, uint32_t count);

/*
 * Called, when set, on the BSP between an AP's INIT and its SIPIs: the AP
 * then waits for its start-up IPI (mb-smp's sync-before-sipi).
 */
extern void (*smp_before_sipi)(uint32_t apic_id);

/* The trampoline's bytes, in smp-ap.S. */
extern const uint8_t smp_trampoline_start[], smp_trampoline_end[];

/* Defined by each kernel; smp-ap.S calls it on each AP, in protected mode, on its own stack. */
__attribute__((noreturn)) void ap_main(void);
#endif

#endif
