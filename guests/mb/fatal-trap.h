/*
 * Exception and interrupt reporting for the multiboot kernels: an IDT whose
 * 256 gates all lead to trap_report(), which prints the vector, its name,
 * the error code, where it happened and the CPU, and ends the run with
 * EXIT_TRAP. A kernel that expects no interrupt at all loads it first
 * thing, so a stray exception is a report on COM1 and a distinctive status
 * rather than a silent triple fault.
 *
 * The handlers never return (no IRET: on this project's hosts KVM runs CPL-0
 * code in its instruction emulator, which implements IRET only in real mode).
 */
#ifndef MB_FATAL_TRAP_H
#define MB_FATAL_TRAP_H

#include "kernel.h"

#define TRAP_VECTORS  256

#ifndef __ASSEMBLER__
#include <stdint.h>

/* What the entry stubs in trap-isr.S push, lowest address first. */
struct trap_frame {
	uint32_t edi, esi, ebp, esp_at_pushal, ebx, edx, ecx, eax;	/* pushal */
	uint32_t vector;
	uint32_t error;		/* the CPU's error code, or 0 for vectors without one */
	uint32_t eip, cs, eflags;	/* pushed by the CPU (no privilege change) */
};

/* Entry stubs, one per vector, in vector order (trap-isr.S). */
extern const uint32_t trap_stubs[TRAP_VECTORS];

/* Fills the IDT and loads it on the calling CPU. Call once, on the BSP. */
void fatal_trap_init(void);

/* Loads the IDT that fatal_trap_init() filled on the calling CPU (an AP). */
void fatal_trap_load(void);

/*
 * Called first by trap_report(): a kernel waiting for one interrupt defines
 * it to take that one (it must not return for it: nothing here can resume
 * the interrupted code); returning hands the frame on to the report.
 */
void trap_expected(const struct trap_frame *frame);

/* Called from every stub: prints the frame and ends the run with EXIT_TRAP. */
__attribute__((noreturn)) void trap_report(const struct trap_frame *frame);
#endif

#endif
