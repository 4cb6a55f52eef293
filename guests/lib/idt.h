/*
 * An IDT gate descriptor as the CPU reads it: 8 bytes in protected mode,
 * 16 in long mode (with an IST index and the upper offset bits). One
 * definition for the trap library and the kernels that build their own IDT.
 */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H

#include <stdint.h>

#ifdef __x86_64__
struct idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t zero;
} __attribute__((packed));
#else
struct idt_gate {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t zero;
	uint8_t type_attr;
	uint16_t offset_high;
} __attribute__((packed));
#endif

/* present, DPL 0, interrupt gate (IF cleared on entry); 32-bit or 64-bit by the mode */
#define GATE_INTERRUPT32 0x8e

#endif
