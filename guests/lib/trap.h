/*
 * The trap library: a guest's own GDT, TSS and IDT, and exception handlers
 * that count and record every exception, for flat 64-bit guests and for the
 * 32-bit multiboot kernels alike (one source per piece, built for each word
 * size).
 *
 * GDT (both word sizes; the selectors are those of machine.h and mb/kernel.h):
 *   0x08 kernel code (64-bit, or 32-bit flat)   0x10 kernel data (flat)
 *   0x1b user code (64-bit, or 32-bit flat)     0x23 user data (flat)
 *   TRAP_SEL_TSS(cpu): one TSS per CPU from 0x28 (16-byte descriptors in
 *   64-bit mode, 8-byte ones in 32-bit mode)
 * Each TSS has a ring-0 stack (RSP0/ESP0) of its own and an I/O permission
 * bitmap that allows every port (trap_io_deny() closes some); in 64-bit mode
 * IST1 is a stack for #DF and IST2 one for NMI.
 *
 * IDT: vectors 0-31 are interrupt gates, DPL 3 for #BP and #OF (so int3
 * and into work from CPL 3) and DPL 0 for the rest (a CPL-3 `int N` for
 * them would raise #GP; on this host it raises #UD, see TRAP_SYS_EXIT_USER) into stubs that build a struct trap_frame and call the
 * dispatcher, which records the exception in the CPU's struct trap_state and
 * then:
 *   #DB (1)        reads DR6 into the record, resets DR6, clears TF in the
 *                  saved flags (a single-step trap the guest did not ask for
 *                  would otherwise repeat after every instruction), resumes;
 *   #BP, #OF, NMI  resume (RIP already points after int3/into);
 *   #DF (8)        prints the report and ends the run with
 *                  debug_exit(TRAP_EXIT_DOUBLE_FAULT);
 *   anything else  resumes at the fixup address if the faulting instruction
 *                  is listed with TRAP_FIXUP (counted in `recovered`), else
 *                  asks trap_fixup_hook, else prints the report and ends the
 *                  run with debug_exit(TRAP_EXIT_UNEXPECTED).
 * Returning: 64-bit handlers always use iretq (it works at CPL 0 here, to
 * CPL 0 and to CPL 3); 32-bit ones cannot use iretl (KVM's emulator lacks it
 * in protected mode) and return with POPF + RET to CPL 0, or with SYSEXIT to
 * CPL 3 through a user-mode trampoline that restores ECX, EDX and EFLAGS.
 * See guests/README.md, "Returning from an exception".
 */
#ifndef GUEST_TRAP_H
#define GUEST_TRAP_H

#define TRAP_VECTORS          32
#define TRAP_MAX_CPUS         16
#define TRAP_STATE_MAGIC      0x50415254u	/* "TRAP" as a little-endian word */
#define TRAP_NO_VECTOR        0xffffffffu

/* debug_exit() codes: statuses (code << 1) | 1 = 247 and 245 */
#define TRAP_EXIT_DOUBLE_FAULT 0x7b
#define TRAP_EXIT_UNEXPECTED   0x7a

#define TRAP_SEL_KERNEL_CODE  0x08
#define TRAP_SEL_KERNEL_DATA  0x10
#define TRAP_SEL_USER_CODE    0x1b
#define TRAP_SEL_USER_DATA    0x23
#define TRAP_SEL_TSS0         0x28
#ifdef __x86_64__
#define TRAP_TSS_DESC_SIZE    16
#else
#define TRAP_TSS_DESC_SIZE    8
#endif
#define TRAP_SEL_TSS(cpu)     (TRAP_SEL_TSS0 + (cpu) * TRAP_TSS_DESC_SIZE)

/*
 * Kernel services for CPL-3 code (trap_sys()). The way in is a ud2 at a
 * known address (trap_service_insn), recognised by the #UD handler and not
 * counted as an exception, as kernels recognise their BUG() ud2s: this host
 * offers no other. `int $N` at CPL 3 raises #UD (KVM's emulator delivers
 * no software interrupt outside real mode), and SYSCALL jumps to LSTAR
 * without leaving CPL 3 (CS reads 0x33, the host's own user selector).
 */
#define TRAP_SYS_EXIT_USER    0	/* RDI/EBX = value: user_run() returns it at CPL 0 */
#define TRAP_SYS_TRIPLE_FAULT 1	/* load an IDT with limit 0 and execute ud2 */

/* Offsets in struct trap_state (for assembly and for hosts reading it) */
#define TRAP_ST_MAGIC       0
#define TRAP_ST_TOTAL       4
#define TRAP_ST_COUNT       8	/* u32 count[32] */
#define TRAP_ST_LAST_VECTOR 136
#define TRAP_ST_LAST_CPL    140
#define TRAP_ST_LAST_RIP    144
#define TRAP_ST_LAST_CS     152
#define TRAP_ST_LAST_ERROR  160
#define TRAP_ST_LAST_DR6    168
#define TRAP_ST_LAST_CR2    176
#define TRAP_ST_LAST_RFLAGS 184
#define TRAP_ST_LAST_RSP    192
#define TRAP_ST_RECOVERED   200
#define TRAP_ST_CPU         204
#define TRAP_STATE_SIZE     256

#ifdef __ASSEMBLER__

#ifdef __x86_64__
#define TRAP_FIXUP(from, to)	.pushsection .trap_fixup, "a"; .balign 8; .quad from, to; .popsection
#else
#define TRAP_FIXUP(from, to)	.pushsection .trap_fixup, "a"; .balign 4; .long from, to; .popsection
#endif

#else /* C */

#include <stddef.h>
#include <stdint.h>

#include "format.h"

/*
 * What a CPU's handlers record. Identical for 32-bit and 64-bit guests
 * (64-bit fields hold zero-extended 32-bit values there). The last_* fields
 * describe the most recent exception: CPL is that of the interrupted code,
 * RIP/EIP the address the CPU pushed (the faulting instruction for a fault,
 * the next one for a trap), CS the pushed selector, error the error code (0
 * for vectors without one), DR6 the debug status read at CPL 0 (for #DB
 * only; 0 otherwise), CR2 the fault address (for #PF only).
 */
struct trap_state {
	uint32_t magic;		/*   0: TRAP_STATE_MAGIC once installed */
	uint32_t total;		/*   4: exceptions handled */
	uint32_t count[TRAP_VECTORS];	/*   8: per vector */
	uint32_t last_vector;	/* 136: TRAP_NO_VECTOR until the first one */
	uint32_t last_cpl;	/* 140 */
	uint64_t last_rip;	/* 144 */
	uint64_t last_cs;	/* 152 */
	uint64_t last_error;	/* 160 */
	uint64_t last_dr6;	/* 168 */
	uint64_t last_cr2;	/* 176 */
	uint64_t last_rflags;	/* 184 */
	uint64_t last_rsp;	/* 192: the interrupted code's stack pointer */
	uint32_t recovered;	/* 200: faults resumed at a TRAP_FIXUP address or by the hook */
	uint32_t cpu;		/* 204: the CPU these handlers ran on */
	uint8_t reserved[TRAP_STATE_SIZE - 208];
};

_Static_assert(sizeof(struct trap_state) == TRAP_STATE_SIZE, "trap_state size");
_Static_assert(offsetof(struct trap_state, last_vector) == TRAP_ST_LAST_VECTOR, "last_vector");
_Static_assert(offsetof(struct trap_state, last_rip) == TRAP_ST_LAST_RIP, "last_rip");
_Static_assert(offsetof(struct trap_state, last_dr6) == TRAP_ST_LAST_DR6, "last_dr6");
_Static_assert(offsetof(struct trap_state, recovered) == TRAP_ST_RECOVERED, "recovered");
_Static_assert(offsetof(struct trap_state, cpu) == TRAP_ST_CPU, "cpu");

/*
 * The registers as the entry stubs leave them, lowest address first. The
 * dispatcher may change any field; the stub restores them all. In 32-bit
 * mode `sp` and `ss` exist only for exceptions from CPL 3 (use
 * trap_frame_sp()); `pushed_sp` is PUSHAL's copy, ignored on the way out.
 */
#ifdef __x86_64__
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t ip, cs, flags, sp, ss;		/* pushed by the CPU */
};
#else
struct trap_frame {
	uint32_t es, ds;
	uint32_t edi, esi, ebp, pushed_sp, ebx, edx, ecx, eax;
	uint32_t vector, error;
	uint32_t ip, cs, flags;			/* pushed by the CPU */
	uint32_t sp, ss;			/* only from CPL 3 */
};
#endif

/*
 * Builds the GDT and IDT (once, on the boot CPU) and installs them on the
 * calling CPU as `cpu`: lgdt, reload of every segment register, ltr of its
 * TSS, lidt; in 32-bit mode also the SYSENTER MSRs. Records go to the
 * library's own table unless trap_set_state() named another place first.
 * Every CPU, the boot CPU included, calls trap_init_cpu() once, at CPL 0.
 * trap_init() is trap_init_cpu(0).
 */
void trap_init(void);
void trap_init_cpu(uint32_t cpu);

/*
 * 64-bit: every vector without an IST stack gets one (IST3, per CPU), so an
 * exception at CPL 0 is handled even when the interrupted code's RSP is
 * garbage (code under test that may do anything). An exception raised by
 * a handler itself would then start again at the top of the same stack and
 * overwrite the first frame; the library's handlers raise none. No effect
 * in 32-bit mode.
 */
void trap_use_ist_everywhere(void);

/* Where cpu's handlers record (call before trap_init_cpu(cpu)). */
void trap_set_state(uint32_t cpu, struct trap_state *state);
struct trap_state *trap_state_of(uint32_t cpu);

/* The calling CPU's number, from its task register (CPL 0 only). */
uint32_t trap_cpu(void);

/* Closes ports [first, first + count) to CPL 3 on cpu (after trap_init_cpu). */
void trap_io_deny(uint32_t cpu, uint32_t first, uint32_t count);

/* Where the report of an unexpected exception goes; debugcon_putc by default. */
extern putc_fn trap_putc;

/*
 * Called for a fault no TRAP_FIXUP entry covers, before giving up: return 1
 * after changing the frame so that resuming makes sense (e.g. RIP past the
 * instruction), 0 to let the run end with TRAP_EXIT_UNEXPECTED. Also called
 * for #DB, NMI, #BP and #OF just before they resume (after the library's
 * own handling): return 1 if the frame was moved, 0 to resume as usual.
 * Never for #DF.
 */
extern int (*trap_fixup_hook)(struct trap_frame *frame);

/*
 * Prints cpu's counts and last exception in this fixed format, two lines:
 *   traps cpu=N total=T[ vV=C ...]            (non-zero counts, ascending V)
 *   trap-last cpu=N vector=V cpl=C rip=0xR cs=0xS error=0xE dr6=0xD cr2=0xA
 * or "trap-last cpu=N none" before the first exception. V, C, T decimal;
 * the hex fields lowercase without leading zeros.
 */
void trap_print(putc_fn putc, uint32_t cpu);

/* The stack pointer the interrupted code had (both word sizes, any CPL). */
static inline uintptr_t trap_frame_sp(const struct trap_frame *f)
{
#ifdef __x86_64__
	return (uintptr_t)f->sp;
#else
	return (f->cs & 3) ? f->sp : (uintptr_t)&f->sp;
#endif
}

/*
 * Exception-table entries, as real kernels write them: a fault at address
 * `from` (a label on the faulting instruction) resumes at `to`. For inline
 * asm: "1: ud2\n\t" TRAP_FIXUP_ASM(1b, 2f) ... "2:".
 */
#define TRAP_STR_(x) #x
#define TRAP_STR(x) TRAP_STR_(x)
#ifdef __x86_64__
#define TRAP_FIXUP_ASM(from, to) \
	".pushsection .trap_fixup, \"a\"\n\t.balign 8\n\t.quad " TRAP_STR(from) ", " TRAP_STR(to) "\n\t.popsection\n\t"
#else
#define TRAP_FIXUP_ASM(from, to) \
	".pushsection .trap_fixup, \"a\"\n\t.balign 4\n\t.long " TRAP_STR(from) ", " TRAP_STR(to) "\n\t.popsection\n\t"
#endif

struct trap_fixup {
	uintptr_t from, to;
};

/* The dispatcher, called by the entry stubs. Returns the stack pointer to resume on. */
uintptr_t trap_dispatch(struct trap_frame *frame);

/* In trap-entry.S: one stub per vector, in vector order, and the service entries. */
extern const uintptr_t trap_stubs[TRAP_VECTORS];
extern const uint8_t trap_service_insn[];	/* the service ud2 */
void trap_user_run_return(void);
__attribute__((noreturn)) void trap_triple_fault(void);	/* lidt of limit 0, then ud2 */
extern uintptr_t trap_user_ctx[TRAP_MAX_CPUS];		/* user_run's stack pointer, per CPU */

/*
 * Runs fn(arg) at CPL 3 on the stack whose top is user_stack (rounded down
 * to 16 bytes), with interrupts off and IOPL 0 (ports through the TSS
 * bitmap), and returns at CPL 0 what fn returned (or passed to
 * user_exit()). Entered with iretq in 64-bit mode and SYSEXIT in 32-bit
 * mode; the way back is the service ud2 (TRAP_SYS_EXIT_USER). Call
 * at CPL 0 after trap_init_cpu(); one level per CPU.
 */
uintptr_t user_run(uintptr_t (*fn)(uintptr_t), uintptr_t arg, void *user_stack);

/* From CPL 3: the kernel service `service` with one argument; returns its result. */
uintptr_t trap_sys(uintptr_t service, uintptr_t arg);
__attribute__((noreturn)) void user_exit(uintptr_t value);

#endif /* C */

#endif
