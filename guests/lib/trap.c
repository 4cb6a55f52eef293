/*
 * The trap library's tables and its dispatcher (see trap.h). One source for
 * 32-bit and 64-bit guests; everything here runs at CPL 0.
 */
#include <stddef.h>
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "format.h"
#include "idt.h"
#include "trap.h"

#define IO_BITMAP_BYTES  (65536 / 8)
#define KSTACK_SIZE      4096
#define TSS_HW_SIZE      104

#define RFLAGS_TF        (1u << 8)
#define RFLAGS_RF        (1u << 16)
#define DR6_RESET        0xffff0ff0u

#define GATE_INTERRUPT   0x8e	/* present, DPL 0, interrupt gate (IF cleared on entry) */
#define GATE_USER        0xee	/* the same with DPL 3: int3 and into from CPL 3 reach it */

/*
 * A TSS and its I/O permission bitmap. The byte after the bitmap must be
 * 0xff (the CPU reads two bytes for an access at the last ports), and the
 * descriptor's limit covers it.
 */
struct trap_tss {
	uint8_t hw[TSS_HW_SIZE];
	uint8_t io_bitmap[IO_BITMAP_BYTES];
	uint8_t io_end;
} __attribute__((packed, aligned(64)));

#define TSS_LIMIT (sizeof(struct trap_tss) - 1)

/* Stacks and TSSs need no clearing by the start-up code: each CPU sets up its own. */
static struct trap_tss tss[TRAP_MAX_CPUS] __attribute__((section(".noinit")));
static uint8_t kstack[TRAP_MAX_CPUS][KSTACK_SIZE]
	__attribute__((aligned(16), section(".noinit")));
#ifdef __x86_64__
/* IST1 for #DF, IST2 for NMI: a fault on a broken kernel stack still gets a stack. */
#define IST_DF  1
#define IST_NMI 2
#define IST_ANY 3	/* every other vector, after trap_use_ist_everywhere() */
static uint8_t ist_stack[TRAP_MAX_CPUS][3][KSTACK_SIZE]
	__attribute__((aligned(16), section(".noinit")));
#endif

#define GDT_FIXED 5	/* null, kernel code, kernel data, user code, user data */
static uint64_t gdt[GDT_FIXED + TRAP_MAX_CPUS * (TRAP_TSS_DESC_SIZE / 8)] __attribute__((aligned(16)));

#define IDT_ENTRIES TRAP_VECTORS

static struct idt_gate idt[IDT_ENTRIES] __attribute__((aligned(16)));
static int tables_built;

static struct trap_state own_states[TRAP_MAX_CPUS];
static struct trap_state *states[TRAP_MAX_CPUS];

putc_fn trap_putc = debugcon_putc;
int (*trap_fixup_hook)(struct trap_frame *frame);

/* From the linker script: the TRAP_FIXUP entries of every object. */
extern const struct trap_fixup __trap_fixup_start[], __trap_fixup_end[];

struct pseudo_descriptor {
	uint16_t limit;
	uintptr_t base;
} __attribute__((packed));

/* Access bytes with the accessed bit preset, so loading a selector writes nothing. */
#ifdef __x86_64__
#define DESC_KERNEL_CODE 0x00af9b000000ffffull	/* 64-bit code, DPL 0 */
#define DESC_USER_CODE   0x00affb000000ffffull	/* 64-bit code, DPL 3 */
#else
#define DESC_KERNEL_CODE 0x00cf9b000000ffffull	/* 32-bit code, 4 GiB, DPL 0 */
#define DESC_USER_CODE   0x00cffb000000ffffull	/* 32-bit code, 4 GiB, DPL 3 */
#endif
#define DESC_KERNEL_DATA 0x00cf93000000ffffull
#define DESC_USER_DATA   0x00cff3000000ffffull

/*
 * rep stos: one emulated instruction instead of a loop of them, in words
 * of the native size to keep its iterations few. (A long one at CPL 0 sits
 * at one RIP with no exit for a long time, which a monitor watching for
 * stuck vCPUs may take for one.)
 */
static void zero(void *p, size_t n)
{
	uint8_t *b = p;
	size_t words = n / sizeof(uintptr_t), rest = n % sizeof(uintptr_t);

#ifdef __x86_64__
	__asm__ volatile("rep stosq" : "+D"(b), "+c"(words) : "a"(0) : "memory");
#else
	__asm__ volatile("rep stosl" : "+D"(b), "+c"(words) : "a"(0) : "memory");
#endif
	__asm__ volatile("rep stosb" : "+D"(b), "+c"(rest) : "a"(0) : "memory");
}

static void set_gate(int vector, uintptr_t handler, uint8_t type_attr, int ist)
{
	struct idt_gate *g = &idt[vector];

	g->offset_low = (uint16_t)handler;
	g->selector = TRAP_SEL_KERNEL_CODE;
	g->type_attr = type_attr;
#ifdef __x86_64__
	g->ist = (uint8_t)ist;
	g->offset_mid = (uint16_t)(handler >> 16);
	g->offset_high = (uint32_t)(handler >> 32);
	g->zero = 0;
#else
	(void)ist;
	g->zero = 0;
	g->offset_high = (uint16_t)(handler >> 16);
#endif
}

static void set_tss_descriptor(uint32_t cpu)
{
	uintptr_t base = (uintptr_t)&tss[cpu];
	uint64_t limit = TSS_LIMIT;
	uint64_t low = (limit & 0xffff) | ((uint64_t)(base & 0xffffff) << 16) |
		       (0x89ull << 40) |	/* present, available TSS (64-bit or 32-bit) */
		       (((limit >> 16) & 0xf) << 48) | ((uint64_t)((base >> 24) & 0xff) << 56);
	uint32_t slot = GDT_FIXED + cpu * (TRAP_TSS_DESC_SIZE / 8);

	gdt[slot] = low;
#ifdef __x86_64__
	gdt[slot + 1] = (uint64_t)base >> 32;
#endif
}

static void build_tables(void)
{
	uint32_t cpu;
	int v;

	gdt[0] = 0;
	gdt[1] = DESC_KERNEL_CODE;
	gdt[2] = DESC_KERNEL_DATA;
	gdt[3] = DESC_USER_CODE;
	gdt[4] = DESC_USER_DATA;
	for (cpu = 0; cpu < TRAP_MAX_CPUS; cpu++)
		set_tss_descriptor(cpu);

	zero(idt, sizeof(idt));
	for (v = 0; v < TRAP_VECTORS; v++) {
		int ist = 0;
#ifdef __x86_64__
		if (v == 8)
			ist = IST_DF;
		else if (v == 2)
			ist = IST_NMI;
#endif
		set_gate(v, trap_stubs[v], v == 3 || v == 4 ? GATE_USER : GATE_INTERRUPT, ist);
	}
	tables_built = 1;
}

static void setup_tss(uint32_t cpu)
{
	struct trap_tss *t = &tss[cpu];
	uintptr_t top = (uintptr_t)(kstack[cpu] + KSTACK_SIZE);

	zero(t, sizeof(*t));
	t->io_end = 0xff;
	*(uint16_t *)&t->hw[0x66] = TSS_HW_SIZE;	/* I/O map base: right after the TSS */
#ifdef __x86_64__
	*(uint64_t *)&t->hw[4] = top;						/* RSP0 */
	*(uint64_t *)&t->hw[0x24 + 8 * (IST_DF - 1)] =
		(uintptr_t)(ist_stack[cpu][0] + KSTACK_SIZE);			/* IST1 */
	*(uint64_t *)&t->hw[0x24 + 8 * (IST_NMI - 1)] =
		(uintptr_t)(ist_stack[cpu][1] + KSTACK_SIZE);			/* IST2 */
	*(uint64_t *)&t->hw[0x24 + 8 * (IST_ANY - 1)] =
		(uintptr_t)(ist_stack[cpu][2] + KSTACK_SIZE);			/* IST3 */
#else
	*(uint32_t *)&t->hw[4] = (uint32_t)top;					/* ESP0 */
	*(uint32_t *)&t->hw[8] = TRAP_SEL_KERNEL_DATA;				/* SS0 */
#endif
}

static void load_tables(uint32_t cpu)
{
	struct pseudo_descriptor gdtr = { sizeof(gdt) - 1, (uintptr_t)gdt };
	struct pseudo_descriptor idtr = { sizeof(idt) - 1, (uintptr_t)idt };
	uint16_t tr = (uint16_t)TRAP_SEL_TSS(cpu);

	__asm__ volatile("lgdt %0" : : "m"(gdtr) : "memory");
#ifdef __x86_64__
	/* CS by a far return to the next instruction, then every data segment. */
	__asm__ volatile("pushq %[cs]\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\n\t"
			 "movl %[ds], %%eax\n\t"
			 "movl %%eax, %%ds\n\t"
			 "movl %%eax, %%es\n\t"
			 "movl %%eax, %%ss\n\t"
			 "movl %%eax, %%fs\n\t"
			 "movl %%eax, %%gs"
			 :
			 : [cs] "i"(TRAP_SEL_KERNEL_CODE), [ds] "i"(TRAP_SEL_KERNEL_DATA)
			 : "rax", "memory");
#else
	__asm__ volatile("ljmp %[cs], $1f\n"
			 "1:\n\t"
			 "movl %[ds], %%eax\n\t"
			 "movl %%eax, %%ds\n\t"
			 "movl %%eax, %%es\n\t"
			 "movl %%eax, %%ss\n\t"
			 "movl %%eax, %%fs\n\t"
			 "movl %%eax, %%gs"
			 :
			 : [cs] "i"(TRAP_SEL_KERNEL_CODE), [ds] "i"(TRAP_SEL_KERNEL_DATA)
			 : "eax", "memory");
#endif
	__asm__ volatile("ltr %0" : : "r"(tr) : "memory");
	__asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

static void wrmsr(uint32_t msr, uint64_t value)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)));
}

#ifdef __x86_64__
static uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}

#define MSR_EFER   0xc0000080
#define EFER_SCE   1
#else
#define MSR_SYSENTER_CS  0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#endif

__attribute__((noreturn)) static void give_up(uint32_t cpu, uint32_t vector, int code);

#ifndef __x86_64__
/* SYSENTER is not a way in (services use the ud2 at trap_service_insn). */
__attribute__((noreturn, used)) static void stray_sysenter(void)
{
	fmt_puts(trap_putc, "trap: stray sysenter\n");
	give_up(trap_cpu(), TRAP_NO_VECTOR, TRAP_EXIT_UNEXPECTED);
}
#endif

void trap_set_state(uint32_t cpu, struct trap_state *state)
{
	if (cpu < TRAP_MAX_CPUS)
		states[cpu] = state;
}

struct trap_state *trap_state_of(uint32_t cpu)
{
	if (cpu >= TRAP_MAX_CPUS)
		return NULL;
	return states[cpu] ? states[cpu] : &own_states[cpu];
}

void trap_init_cpu(uint32_t cpu)
{
	struct trap_state *s;

	if (cpu >= TRAP_MAX_CPUS)
		debug_exit(TRAP_EXIT_UNEXPECTED);
	if (!tables_built)
		build_tables();
	s = trap_state_of(cpu);
	states[cpu] = s;
	zero(s, sizeof(*s));
	s->last_vector = TRAP_NO_VECTOR;
	s->cpu = cpu;
	setup_tss(cpu);
	load_tables(cpu);
#ifdef __x86_64__
	/*
	 * No SYSCALL: on this host it jumps to LSTAR still at CPL 3 (README,
	 * "Returning from an exception"). With EFER.SCE clear a stray one is #UD.
	 */
	wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(uint64_t)EFER_SCE);
#else
	/*
	 * SYSEXIT to CPL 3 takes CS = this + 16 and SS = this + 24: the user
	 * selectors. A stray SYSENTER lands in stray_sysenter.
	 */
	wrmsr(MSR_SYSENTER_CS, TRAP_SEL_KERNEL_CODE);
	wrmsr(MSR_SYSENTER_ESP, (uintptr_t)(kstack[cpu] + KSTACK_SIZE));
	wrmsr(MSR_SYSENTER_EIP, (uintptr_t)stray_sysenter);
#endif
	s->magic = TRAP_STATE_MAGIC;
}

void trap_use_ist_everywhere(void)
{
#ifdef __x86_64__
	int v;

	if (!tables_built)
		build_tables();
	for (v = 0; v < TRAP_VECTORS; v++)
		if (idt[v].ist == 0)
			idt[v].ist = IST_ANY;
#endif
}

void trap_init(void)
{
	trap_init_cpu(0);
}

uint32_t trap_cpu(void)
{
	uint16_t tr;
	uint32_t cpu;

	__asm__ volatile("str %0" : "=r"(tr));
	if (tr < TRAP_SEL_TSS0)
		return 0;	/* not yet installed: the boot CPU's TSS, whatever it is */
	cpu = (uint32_t)(tr - TRAP_SEL_TSS0) / TRAP_TSS_DESC_SIZE;
	return cpu < TRAP_MAX_CPUS ? cpu : 0;
}

void trap_io_deny(uint32_t cpu, uint32_t first, uint32_t count)
{
	uint32_t port;

	if (cpu >= TRAP_MAX_CPUS)
		return;
	for (port = first; port < first + count && port < 65536; port++)
		tss[cpu].io_bitmap[port / 8] |= (uint8_t)(1u << (port % 8));
}

static void put_field(putc_fn putc, const char *name, uint64_t value)
{
	fmt_puts(putc, name);
	fmt_puts(putc, "=0x");
	fmt_hex(putc, value, 0);
}

void trap_print(putc_fn putc, uint32_t cpu)
{
	const struct trap_state *s = trap_state_of(cpu);
	int v;

	if (!s)
		return;
	fmt_puts(putc, "traps cpu=");
	fmt_dec(putc, cpu);
	fmt_puts(putc, " total=");
	fmt_dec(putc, s->total);
	for (v = 0; v < TRAP_VECTORS; v++) {
		if (s->count[v] == 0)
			continue;
		fmt_puts(putc, " v");
		fmt_dec(putc, (unsigned long)v);
		putc('=');
		fmt_dec(putc, s->count[v]);
	}
	fmt_puts(putc, "\ntrap-last cpu=");
	fmt_dec(putc, cpu);
	if (s->last_vector == TRAP_NO_VECTOR) {
		fmt_puts(putc, " none\n");
		return;
	}
	fmt_puts(putc, " vector=");
	fmt_dec(putc, s->last_vector);
	fmt_puts(putc, " cpl=");
	fmt_dec(putc, s->last_cpl);
	putc(' ');
	put_field(putc, "rip", s->last_rip);
	putc(' ');
	put_field(putc, "cs", s->last_cs);
	putc(' ');
	put_field(putc, "error", s->last_error);
	putc(' ');
	put_field(putc, "dr6", s->last_dr6);
	putc(' ');
	put_field(putc, "cr2", s->last_cr2);
	putc('\n');
}

static const struct trap_fixup *find_fixup(uintptr_t ip)
{
	const struct trap_fixup *e;

	for (e = __trap_fixup_start; e < __trap_fixup_end; e++)
		if (e->from == ip)
			return e;
	return NULL;
}

__attribute__((noreturn)) static void give_up(uint32_t cpu, uint32_t vector, int code)
{
	fmt_puts(trap_putc, vector == 8 ? "trap: double fault on cpu " : "trap: unexpected exception on cpu ");
	fmt_dec(trap_putc, cpu);
	fmt_puts(trap_putc, "\n");
	trap_print(trap_putc, cpu);
	debug_exit(code);
}

/*
 * The #UD at trap_service_insn from CPL 3: a kernel service, not counted as
 * an exception. Service in RAX/EAX, argument in RDI/ECX.
 */
static uintptr_t service(struct trap_frame *f, uint32_t cpu)
{
#ifdef __x86_64__
	uintptr_t arg = f->rdi;
#else
	uintptr_t arg = f->ecx;
#endif
	uintptr_t result = (uintptr_t)-1;

	switch (f->vector == 6 ? (uintptr_t)
#ifdef __x86_64__
		f->rax
#else
		f->eax
#endif
		: (uintptr_t)-1) {
	case TRAP_SYS_EXIT_USER:
		/* Resume in user_run's frame at CPL 0; the user context is dropped. */
		f->ip = (uintptr_t)trap_user_run_return;
		f->cs = TRAP_SEL_KERNEL_CODE;
		f->flags = 0x2;
		result = arg;
#ifdef __x86_64__
		f->ss = TRAP_SEL_KERNEL_DATA;
		f->sp = trap_user_ctx[cpu];
		f->rax = result;
		return f->sp;
#else
		f->ds = f->es = TRAP_SEL_KERNEL_DATA;
		f->eax = result;
		return trap_user_ctx[cpu];
#endif
	case TRAP_SYS_TRIPLE_FAULT:
		trap_triple_fault();
	default:
		break;
	}
	f->ip += 2;	/* past the ud2, to the ret */
#ifdef __x86_64__
	f->rax = result;
#else
	f->eax = result;
#endif
	return trap_frame_sp(f);
}

uintptr_t trap_dispatch(struct trap_frame *f)
{
	uint32_t cpu = trap_cpu();
	struct trap_state *s = trap_state_of(cpu);
	uint32_t vector = (uint32_t)f->vector;
	const struct trap_fixup *fix;
	uintptr_t value;

	if (vector == 6 && (f->cs & 3) == 3 && f->ip == (uintptr_t)trap_service_insn)
		return service(f, cpu);
	s->total++;
	if (vector < TRAP_VECTORS)
		s->count[vector]++;
	s->last_vector = vector;
	s->last_cpl = (uint32_t)(f->cs & 3);
	s->last_rip = f->ip;
	s->last_cs = f->cs;
	s->last_error = f->error;
	s->last_rflags = f->flags;
	s->last_rsp = trap_frame_sp(f);
	s->last_dr6 = 0;
	s->last_cr2 = 0;

	switch (vector) {
	case 1:		/* #DB */
		__asm__ volatile("mov %%dr6, %0" : "=r"(value));
		s->last_dr6 = value;
		value = DR6_RESET;
		__asm__ volatile("mov %0, %%dr6" : : "r"(value));
		f->flags = (f->flags & ~(uintptr_t)RFLAGS_TF) | RFLAGS_RF;
		/* fall through */
	case 2:		/* NMI */
	case 3:		/* #BP: a trap, RIP is past the int3 */
	case 4:		/* #OF: likewise */
		/* Resume where the CPU said, unless the hook moves the frame elsewhere. */
		if (trap_fixup_hook && trap_fixup_hook(f))
			s->recovered++;
		return trap_frame_sp(f);
	case 8:		/* #DF */
		give_up(cpu, vector, TRAP_EXIT_DOUBLE_FAULT);
	case 14:	/* #PF */
		__asm__ volatile("mov %%cr2, %0" : "=r"(value));
		s->last_cr2 = value;
		break;
	default:
		break;
	}

	fix = find_fixup(f->ip);
	if (fix) {
		f->ip = fix->to;
		s->recovered++;
		return trap_frame_sp(f);
	}
	if (trap_fixup_hook && trap_fixup_hook(f)) {
		s->recovered++;
		return trap_frame_sp(f);
	}
	give_up(cpu, vector, TRAP_EXIT_UNEXPECTED);
}
