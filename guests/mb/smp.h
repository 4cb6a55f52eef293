/* What mb-smp.c and its AP start-up code in smp-ap.S share. */
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

/* The trampoline's bytes, to be copied to TRAMPOLINE_ADDR. */
extern const uint8_t smp_trampoline_start[], smp_trampoline_end[];

/* Called by smp-ap.S on each AP, in protected mode, on its own stack. */
__attribute__((noreturn)) void ap_main(void);
#endif

#endif
