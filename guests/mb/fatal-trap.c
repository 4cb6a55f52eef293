/* The IDT of the multiboot kernels and its one handler. See trap.h. */
#include "exit.h"
#include "idt.h"
#include "serial.h"
#include "fatal-trap.h"

static struct idt_gate idt[TRAP_VECTORS] __attribute__((aligned(8)));

/* Only the first trap is reported: one on another CPU meanwhile waits here for the exit. */
static volatile uint32_t reporting;

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "coprocessor segment overrun", "#TS", "#NP", "#SS", "#GP", "#PF", "reserved",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "reserved", "reserved",
	"reserved", "reserved", "reserved", "reserved", "#HV", "#VC", "#SX", "reserved",
};

static void load(void)
{
	struct {
		uint16_t limit;
		uint32_t base;
	} __attribute__((packed)) desc = { sizeof(idt) - 1, (uint32_t)(uintptr_t)idt };

	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
}

void fatal_trap_init(void)
{
	int v;

	for (v = 0; v < TRAP_VECTORS; v++) {
		idt[v].offset_low = (uint16_t)trap_stubs[v];
		idt[v].selector = KERNEL_CS;
		idt[v].zero = 0;
		idt[v].type_attr = GATE_INTERRUPT32;
		idt[v].offset_high = (uint16_t)(trap_stubs[v] >> 16);
	}
	load();
}

void fatal_trap_load(void)
{
	load();
}

/* The initial APIC id from CPUID leaf 1: needs no local APIC mapping, so it works anywhere. */
static uint32_t initial_apic_id(void)
{
	uint32_t a = 1, b, c = 0, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return b >> 24;
}

/* A kernel that expects one interrupt defines its own (see fatal-trap.h). */
__attribute__((weak)) void trap_expected(const struct trap_frame *f)
{
	(void)f;
}

void trap_report(const struct trap_frame *f)
{
	uint32_t cr2;

	trap_expected(f);
	if (__atomic_exchange_n(&reporting, 1, __ATOMIC_ACQUIRE))
		halt();
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	serial_puts("\ntrap: vector ");
	put_hex(f->vector, 2);
	if (f->vector < 32) {
		serial_puts(" (");
		serial_puts(exception_names[f->vector]);
		serial_putc(')');
	} else {
		serial_puts(" (interrupt)");
	}
	serial_puts(" error ");
	put_hex(f->error, 8);
	serial_puts(" at ");
	put_hex(f->cs, 4);
	serial_putc(':');
	put_hex(f->eip, 8);
	serial_puts(" eflags ");
	put_hex(f->eflags, 8);
	serial_puts(" cr2 ");
	put_hex(cr2, 8);
	serial_puts(" on apic id ");
	serial_put_dec(initial_apic_id());
	serial_putc('\n');
	debug_exit(EXIT_TRAP);
}
