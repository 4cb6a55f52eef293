/*
 * spp-stores: a store interpreter for sub-page protection tests. The host
 * picks each store (instruction, address, data) and the guest performs it
 * with exactly that instruction, so a test can see how every kind of write
 * reaches a protected 128-byte sub-page.
 *
 * Protocol (mailbox layout and op table in README.md):
 *   1. SYNC stage 0: args[1] = physical address of the mailbox, args[2] =
 *      address of a 256-byte never-executed area inside the code page
 *      (a harmless target for stores into a page that is being executed).
 *      The host fills mailbox.cpl (0 or 3) and the first batch.
 *   2. The guest stays at CPL 0 or drops to CPL 3 for good, then repeats:
 *      nops == 0 -> ucall DONE; otherwise run ops[0..nops) in order, set
 *      result, SYNC stage 1 (value 0), and read the refilled batch.
 *   result: 0 = every op ran; i + 1 = op i was refused (unknown op, bad
 *   alignment, count too large, privileged at CPL 3) and it and the rest of
 *   the batch were skipped; 0xffffffff = nops above 128, nothing ran.
 *
 * Before anything else the guest installs its own GDT, TSS and IDT (the
 * trap library): every exception is counted in mailbox.traps (page 3 of the
 * mailbox, README.md), #DB and #BP resume after the instruction, the UD2 op
 * and the AVX ops resume through exception-table fixups, and any other
 * exception ends the run with status 245 (247 for a double fault) after a
 * report on the debug console. At CPL 0 it also tries to enable AVX
 * (CR4.OSXSAVE, XSETBV) and records what it found; at CPL 3 it records
 * CPUID and XGETBV as the CPU reports them there.
 *
 * What the guest writes besides the ops' targets: the mailbox (result, the
 * value2 of reading ops, page 3), the library's ucall struct, its own
 * tables and kernel stacks, the boot stack below 1 MiB and, at CPL 3, a
 * user stack on a page of its own. The mailbox fills whole pages, so none of
 * these shares a page with it, and the image stays below 0x200000 (checked
 * at start-up), leaving 0x200000-0x3fffff to the host.
 */
#include <stddef.h>
#include <stdint.h>

#include "trap.h"
#include "ucall.h"

#define SPP_MAX_OPS     128
#define SPP_SRC_SIZE    4096
#define HOST_AREA_START 0x200000u	/* the host protects pages from here to 0x3fffff */

enum spp_opcode {
	OP_STORE8 = 1,
	OP_STORE16 = 2,
	OP_STORE32 = 3,
	OP_STORE64 = 4,
	OP_REP_STOSB = 5,
	OP_REP_MOVSB = 6,
	OP_XCHG64 = 7,
	OP_LOCK_CMPXCHG64 = 8,
	OP_PUSH64 = 9,
	OP_MOVDQU = 10,
	OP_MOVQ_XMM = 11,
	OP_MOVSS = 12,
	OP_MOVSD = 13,
	OP_MOVHPS = 14,
	OP_MOVLPS = 15,
	OP_FSTP = 16,
	OP_FISTP = 17,
	OP_CMPXCHG16B = 18,
	OP_FXSAVE = 19,
	OP_STMXCSR = 20,
	OP_SGDT = 21,
	OP_SIDT = 22,
	OP_MOVD_XMM = 23,
	OP_STORE8_LOOP = 24,
	OP_READ64 = 25,
	OP_EXEC_PAGE_STORE = 26,
	OP_LOAD_SEGMENT_FROM_GDT_AT = 27,
	OP_TRIPLE_FAULT = 28,
	OP_INT3 = 29,
	OP_UD2 = 30,
	OP_VMOVDQU256 = 31,
	OP_VMOVQ = 32,
	OP_LOCK_ADD32_LOOP = 33,
	OP_LOCK_XADD_LOOP = 34,
	OP_LOCK_CMPXCHG_LOOP = 35,
	OP_SPINLOCK_COUNTER_LOOP = 36,
	OP_FAR_CALL_FAULT_NO_IDT = 37,
};

/* mailbox.avx: what the guest found out about AVX (README, "spp-stores") */
#define AVX_CPUID_XSAVE    (1u << 0)	/* CPUID.1:ECX.XSAVE at CPL 0 (KVM's table) */
#define AVX_CPUID_AVX      (1u << 1)	/* CPUID.1:ECX.AVX at CPL 0 */
#define AVX_OSXSAVE_SET    (1u << 2)	/* mov to CR4 with OSXSAVE did not fault */
#define AVX_XSETBV_OK      (1u << 3)	/* xsetbv(0, x87 | SSE | AVX) did not fault */
#define AVX_ENABLED        (1u << 4)	/* all four: the AVX ops run */
#define AVX_CPL3_XGETBV_OK (1u << 5)	/* xgetbv at CPL 3 did not fault (xcr0_cpl3 valid) */

#define CPUID1_ECX_XSAVE   (1u << 26)
#define CPUID1_ECX_AVX     (1u << 28)
#define CR4_OSXSAVE        (1ul << 18)
#define XCR0_X87_SSE_AVX   0x7u

struct spp_op {
	uint32_t op;		/*  0 */
	uint32_t count;		/*  4 */
	uint64_t addr;		/*  8 */
	uint64_t value;		/* 16: value and value2 are adjacent, so SSE */
	uint64_t value2;	/* 24: ops load them as one 16-byte operand */
};

struct spp_mailbox {
	uint32_t nops;		/*    0 */
	uint32_t cpl;		/*    4 */
	uint32_t result;	/*    8 */
	uint32_t pad;		/*   12 */
	struct spp_op ops[SPP_MAX_OPS];	/*   16 */
	uint8_t src[SPP_SRC_SIZE] __attribute__((aligned(4096)));	/* 8192 */
	/* Page 3, written by the guest only: */
	struct trap_state traps __attribute__((aligned(4096)));	/* 12288: the exception record */
	uint32_t cpuid1_ecx;	/* 12544: CPUID.1:ECX at CPL 0 (KVM's table) */
	uint32_t cpuid1_ecx_cpl3;	/* 12548: the same at CPL 3 (not intercepted: the host's) */
	uint32_t avx;		/* 12552: AVX_* bits */
	uint32_t pad2;		/* 12556 */
	uint64_t xcr0;		/* 12560: XCR0 the guest set (0 if it could not) */
	uint64_t xcr0_cpl3;	/* 12568: XCR0 read by xgetbv at CPL 3 */
	uint8_t gdtr[16];	/* 12576: what sgdt stores: u16 limit, u64 base (the guest's own GDT) */
	uint8_t idtr[16];	/* 12592: what sidt stores (the guest's own IDT) */
};

_Static_assert(sizeof(struct spp_op) == 32, "spp_op must be 32 bytes");
_Static_assert(offsetof(struct spp_mailbox, ops) == 16, "ops offset");
_Static_assert(offsetof(struct spp_mailbox, src) == 8192, "src offset");
_Static_assert(offsetof(struct spp_mailbox, traps) == 12288, "traps offset");
_Static_assert(offsetof(struct spp_mailbox, cpuid1_ecx) == 12544, "cpuid offset");
_Static_assert(offsetof(struct spp_mailbox, xcr0_cpl3) == 12568, "xcr0_cpl3 offset");
_Static_assert(offsetof(struct spp_mailbox, idtr) == 12592, "idtr offset");
_Static_assert(sizeof(struct spp_mailbox) == 16384, "mailbox is four pages");
/* Whole pages only: then no other object can share a page with the mailbox. */
_Static_assert(sizeof(struct spp_mailbox) % 4096 == 0, "mailbox must fill whole pages");

static struct spp_mailbox mailbox __attribute__((aligned(4096)));

/*
 * A page to itself, so a store the host aims at a neighbour never hits it.
 * In .bss, inside the loaded file, not in .noinit: with the boot page
 * tables' PDPT or PD page protected, the first CPL-3 write to a page beyond
 * the loaded file stalls inside KVM_RUN with no exit on this host (until the
 * monitor's watchdog single-steps it); a page the loader wrote does not.
 */
static uint8_t user_stack[4096] __attribute__((aligned(4096)));

/* From the linker script: the first byte after everything the image uses. */
extern char __image_end[];

/*
 * 256 bytes of int3 in .text, next to the interpreter's own code and never
 * executed: a store target inside a page the CPU is fetching from that
 * cannot corrupt an instruction the guest needs.
 */
extern uint8_t spp_code_scratch[];
__asm__(".pushsection .text.spp_scratch, \"ax\", @progbits\n\t"
	".balign 128\n\t"
	".globl spp_code_scratch\n"
	"spp_code_scratch:\n\t"
	".fill 256, 1, 0xcc\n\t"
	".popsection");

static int cpl3;

static volatile struct spp_mailbox *mb(void)
{
	return (volatile struct spp_mailbox *)&mailbox;
}

static int avx_usable(uint32_t count)
{
	/* count == 1 forces the op (its #UD, if any, is caught: the op is then refused). */
	return count == 1 || (mb()->avx & AVX_ENABLED);
}

static void cpuid1(uint32_t *ecx)
{
	uint32_t a = 1, b, c = 0, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	*ecx = c;
}

/*
 * At CPL 0, before the first batch: AVX is usable only if KVM's CPUID says
 * XSAVE and AVX, CR4.OSXSAVE can be set and XSETBV accepts x87 | SSE | AVX.
 * Each step is tried (with a fixup) and recorded, even if CPUID said no.
 */
static void avx_enable(void)
{
	uint32_t ecx, bits = 0, faulted;
	uint64_t cr4;

	cpuid1(&ecx);
	mb()->cpuid1_ecx = ecx;
	if (ecx & CPUID1_ECX_XSAVE)
		bits |= AVX_CPUID_XSAVE;
	if (ecx & CPUID1_ECX_AVX)
		bits |= AVX_CPUID_AVX;

	__asm__ volatile("movq %%cr4, %0" : "=r"(cr4));
	cr4 |= CR4_OSXSAVE;
	__asm__ volatile("1: movq %[cr4], %%cr4\n\t"
			 "xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(1b, 2b)
			 : [f] "=r"(faulted) : [cr4] "r"(cr4) : "memory");
	if (!faulted) {
		bits |= AVX_OSXSAVE_SET;
		__asm__ volatile("1: xsetbv\n\t"
				 "xorl %[f], %[f]\n\t"
				 "jmp 3f\n"
				 "2: movl $1, %[f]\n"
				 "3:\n\t"
				 TRAP_FIXUP_ASM(1b, 2b)
				 : [f] "=r"(faulted)
				 : "c"(0), "a"(XCR0_X87_SSE_AVX), "d"(0)
				 : "memory");
		if (!faulted) {
			bits |= AVX_XSETBV_OK;
			mb()->xcr0 = XCR0_X87_SSE_AVX;
		}
	}
	if ((bits & 0xf) == 0xf)
		bits |= AVX_ENABLED;
	mb()->avx = bits;
}

/* At CPL 3: what the CPU itself reports there (cpuid and xgetbv are not intercepted). */
static void avx_look_at_cpl3(void)
{
	uint32_t ecx, lo = 0, hi = 0, faulted;

	cpuid1(&ecx);
	mb()->cpuid1_ecx_cpl3 = ecx;
	__asm__ volatile("1: xgetbv\n\t"
			 "xorl %[f], %[f]\n\t"
			 "jmp 3f\n"
			 "2: movl $1, %[f]\n"
			 "3:\n\t"
			 TRAP_FIXUP_ASM(1b, 2b)
			 : [f] "=r"(faulted), "+a"(lo), "+d"(hi)
			 : "c"(0)
			 : "memory");
	if (!faulted) {
		mb()->xcr0_cpl3 = (uint64_t)hi << 32 | lo;
		mb()->avx |= AVX_CPL3_XGETBV_OK;
	}
}

/*
 * Each store is one instruction with a register-indirect destination, in
 * asm so the compiler can neither split, merge nor drop it. SSE and x87
 * operands are loaded from the op's own value field in the mailbox (a read),
 * since the compiler may not touch those registers (-mgeneral-regs-only).
 * For the same reason xmm0 and the x87 stack hold nothing of the compiler's,
 * and need no clobber (GCC refuses one under -mgeneral-regs-only anyway).
 * Every xmm0 load is a movdqu, which KVM's emulator implements, so at CPL 0
 * an emulation failure points at the store under test, not at its set-up.
 * Returns 0, or 1 when the op is refused without running.
 */
static int run_op(volatile struct spp_op *op)
{
	uint32_t code = op->op;
	uint32_t count = op->count;
	uint64_t addr = op->addr;
	uint64_t value = op->value;
	uint64_t value2 = op->value2;
	/* The 16-byte pair value:value2, source of every SSE and x87 load. */
	const void *data = (const void *)&op->value;

	switch (code) {
	case OP_STORE8:
		__asm__ volatile("movb %b[v], (%[a])" : : [a] "r"(addr), [v] "q"(value) : "memory");
		break;
	case OP_STORE16:
		__asm__ volatile("movw %w[v], (%[a])" : : [a] "r"(addr), [v] "r"(value) : "memory");
		break;
	case OP_STORE32:
		__asm__ volatile("movl %k[v], (%[a])" : : [a] "r"(addr), [v] "r"(value) : "memory");
		break;
	case OP_STORE64:
	case OP_EXEC_PAGE_STORE:
		__asm__ volatile("movq %[v], (%[a])" : : [a] "r"(addr), [v] "r"(value) : "memory");
		break;
	case OP_REP_STOSB: {
		uint64_t n = count;

		/* DF is clear: crt64 executes cld and nothing sets it again. */
		__asm__ volatile("rep stosb"
				 : "+D"(addr), "+c"(n)
				 : "a"(value)
				 : "memory");
		break;
	}
	case OP_REP_MOVSB: {
		uint64_t n = count;
		const uint8_t *src = mailbox.src;

		if (count > SPP_SRC_SIZE)
			return 1;
		__asm__ volatile("rep movsb"
				 : "+S"(src), "+D"(addr), "+c"(n)
				 :
				 : "memory");
		break;
	}
	case OP_XCHG64:
		__asm__ volatile("xchgq %[v], (%[a])"
				 : [v] "+r"(value)
				 : [a] "r"(addr)
				 : "memory");
		op->value2 = value;	/* what memory held before */
		break;
	case OP_LOCK_CMPXCHG64:
		/* RAX ends up holding memory's old value whether or not it matched. */
		__asm__ volatile("lock cmpxchgq %[new], (%[a])"
				 : "+a"(value2)
				 : [a] "r"(addr), [new] "r"(value)
				 : "memory", "cc");
		op->value2 = value2;
		break;
	case OP_PUSH64:
		/*
		 * Nothing can interrupt (IF = 0, no NMI source), so borrowing RSP
		 * is safe; R11 keeps the real one and the operands are registers,
		 * so no access is RSP-relative meanwhile.
		 */
		__asm__ volatile("movq %%rsp, %%r11\n\t"
				 "leaq 8(%[a]), %%rsp\n\t"
				 "pushq %[v]\n\t"
				 "movq %%r11, %%rsp"
				 :
				 : [a] "r"(addr), [v] "r"(value)
				 : "r11", "memory");
		break;
	case OP_MOVDQU:
		__asm__ volatile("movdqu (%[d]), %%xmm0\n\t"
				 "movdqu %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_MOVQ_XMM:
		__asm__ volatile("movdqu (%[d]), %%xmm0\n\t"
				 "movq %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_MOVSS:
		__asm__ volatile("movdqu (%[d]), %%xmm0\n\t"
				 "movss %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_MOVSD:
		__asm__ volatile("movdqu (%[d]), %%xmm0\n\t"
				 "movsd %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_MOVHPS:
		/* movhps stores the high half: load addr:value so that is value. */
		__asm__ volatile("movdqu -8(%[d]), %%xmm0\n\t"
				 "movhps %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_MOVLPS:
		__asm__ volatile("movdqu (%[d]), %%xmm0\n\t"
				 "movlps %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_FSTP:
		/* value as a signed integer, stored as a double (exact below 2^53). */
		__asm__ volatile("fildq (%[d])\n\t"
				 "fstpl (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_FISTP:
		/* Round trip through the x87 stack: value comes back unchanged. */
		__asm__ volatile("fildq (%[d])\n\t"
				 "fistpll (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_CMPXCHG16B: {
		/* Expect what memory holds now (reads are never blocked), so it swaps. */
		uint64_t lo, hi;

		if (addr & 15)
			return 1;	/* misaligned: #GP, a triple fault here */
		lo = ((volatile uint64_t *)addr)[0];
		hi = ((volatile uint64_t *)addr)[1];
		__asm__ volatile("lock cmpxchg16b (%[a])"
				 : "+a"(lo), "+d"(hi)
				 : [a] "r"(addr), "b"(value), "c"(value2)
				 : "memory", "cc");
		break;
	}
	case OP_FXSAVE:
		if (addr & 15)
			return 1;
		__asm__ volatile("fxsave (%[a])" : : [a] "r"(addr) : "memory");
		break;
	case OP_STMXCSR:
		__asm__ volatile("stmxcsr (%[a])" : : [a] "r"(addr) : "memory");
		break;
	case OP_SGDT:
		__asm__ volatile("sgdt (%[a])" : : [a] "r"(addr) : "memory");
		break;
	case OP_SIDT:
		__asm__ volatile("sidt (%[a])" : : [a] "r"(addr) : "memory");
		break;
	case OP_MOVD_XMM:
		__asm__ volatile("movdqu (%[d]), %%xmm0\n\t"
				 "movd %%xmm0, (%[a])"
				 : : [a] "r"(addr), [d] "r"(data) : "memory");
		break;
	case OP_STORE8_LOOP:
		if (count == 0)
			break;
		__asm__ volatile("1:\n\t"
				 "movb %b[v], (%[a])\n\t"
				 "decl %[n]\n\t"
				 "jnz 1b"
				 : [n] "+r"(count)
				 : [a] "r"(addr), [v] "q"(value)
				 : "memory", "cc");
		break;
	case OP_READ64: {
		uint64_t got;

		__asm__ volatile("movq (%[a]), %[g]" : [g] "=r"(got) : [a] "r"(addr) : "memory");
		op->value2 = got;
		break;
	}
	case OP_LOAD_SEGMENT_FROM_GDT_AT: {
		struct {
			uint16_t limit;
			uint64_t base;
		} __attribute__((packed)) saved, table = { 3 * 8 - 1, addr };
		uint32_t old_ds;

		if (cpl3)
			return 1;	/* lgdt is privileged */
		/*
		 * count == 1: the host already put the table at addr (it may be
		 * on a page the guest cannot write); otherwise build it here:
		 * null, 64-bit kernel code (accessed, CS is never reloaded from
		 * it), kernel data with the accessed bit clear, so loading DS
		 * makes the CPU write that bit (byte addr + 21, bit 0).
		 */
		if (count != 1) {
			volatile uint64_t *gdt = (volatile uint64_t *)addr;

			gdt[0] = 0;
			gdt[1] = 0x00af9b000000ffffull;
			gdt[2] = 0x00cf92000000ffffull;
		}
		__asm__ volatile("sgdt %[saved]\n\t"
				 "movl %%ds, %[ds]\n\t"
				 "lgdt %[table]\n\t"
				 "movl %[sel], %%ds\n\t"
				 "lgdt %[saved]\n\t"
				 "movl %[ds], %%ds"
				 : [saved] "=m"(saved), [ds] "=&r"(old_ds)
				 : [table] "m"(table), [sel] "r"(0x10u)
				 : "memory");
		break;
	}
	case OP_TRIPLE_FAULT:
		if (cpl3)
			trap_sys(TRAP_SYS_TRIPLE_FAULT, 0);
		else
			trap_triple_fault();
		return 1;	/* not reached */
	case OP_INT3:
		/* #BP is a trap: the guest's handler counts it and resumes after. */
		__asm__ volatile("int3" : : : "memory");
		break;
	case OP_UD2:
		__asm__ volatile("1: ud2\n"
				 "2:\n\t"
				 TRAP_FIXUP_ASM(1b, 2b)
				 : : : "memory");
		break;
	case OP_VMOVDQU256: {
		uint32_t faulted;

		if (!avx_usable(count))
			return 1;
		/* ymm0 = value:value2 in both halves, so the store is value, value2, value, value2. */
		__asm__ volatile("1: vmovdqu (%[d]), %%xmm0\n\t"
				 "vinsertf128 $1, %%xmm0, %%ymm0, %%ymm0\n\t"
				 "vmovdqu %%ymm0, (%[a])\n\t"
				 "xorl %[f], %[f]\n\t"
				 "jmp 3f\n"
				 "2: movl $1, %[f]\n"
				 "3:\n\t"
				 TRAP_FIXUP_ASM(1b, 2b)
				 : [f] "=r"(faulted)
				 : [a] "r"(addr), [d] "r"(data)
				 : "memory");
		return (int)faulted;
	}
	case OP_VMOVQ: {
		uint32_t faulted;

		if (!avx_usable(count))
			return 1;
		__asm__ volatile("1: vmovdqu (%[d]), %%xmm0\n\t"
				 "vmovq %%xmm0, (%[a])\n\t"
				 "xorl %[f], %[f]\n\t"
				 "jmp 3f\n"
				 "2: movl $1, %[f]\n"
				 "3:\n\t"
				 TRAP_FIXUP_ASM(1b, 2b)
				 : [f] "=r"(faulted)
				 : [a] "r"(addr), [d] "r"(data)
				 : "memory");
		return (int)faulted;
	}
	case OP_LOCK_ADD32_LOOP:
		for (uint32_t i = 0; i < count; i++)
			__asm__ volatile("lock addl %k[v], (%[a])" : : [a] "r"(addr), [v] "r"(value) : "memory", "cc");
		break;
	case OP_LOCK_XADD_LOOP: {
		uint32_t old = 0;

		for (uint32_t i = 0; i < count; i++) {
			old = (uint32_t)value;
			__asm__ volatile("lock xaddl %[o], (%[a])" : [o] "+r"(old) : [a] "r"(addr) : "memory", "cc");
		}
		op->value2 = old;	/* memory before the last addition */
		break;
	}
	case OP_LOCK_CMPXCHG_LOOP: {
		uint64_t retries = 0;

		for (uint32_t i = 0; i < count; i++) {
			uint32_t expected = *(volatile uint32_t *)addr;

			for (;;) {
				uint32_t seen = expected;

				__asm__ volatile("lock cmpxchgl %[new], (%[a])"
						 : "+a"(seen)
						 : [a] "r"(addr), [new] "r"(expected + (uint32_t)value)
						 : "memory", "cc");
				if (seen == expected)
					break;
				expected = seen;
				retries++;
			}
		}
		op->value2 = retries;
		break;
	}
	case OP_SPINLOCK_COUNTER_LOOP: {
		/* The lock is the dword at addr, the counter the dword at addr + 4. */
		volatile uint32_t *lock = (volatile uint32_t *)addr;
		volatile uint32_t *counter = lock + 1;
		uint64_t spins = 0;

		for (uint32_t i = 0; i < count; i++) {
			uint32_t taken = 1;

			for (;;) {
				__asm__ volatile("xchgl %[t], (%[l])" : [t] "+r"(taken) : [l] "r"(lock) : "memory");
				if (taken == 0)
					break;
				while (*lock != 0) {
					__asm__ volatile("pause");
					spins++;
				}
				taken = 1;
			}
			*counter = *counter + (uint32_t)value;	/* plain load and store, under the lock */
			__asm__ volatile("" : : : "memory");
			*lock = 0;
		}
		op->value2 = spins;
		break;
	}
	case OP_FAR_CALL_FAULT_NO_IDT: {
		/*
		 * A real triple fault in an instruction that must first write a
		 * protected GDT: the IDT gets limit 0, the GDT at addr holds a
		 * 64-bit code descriptor with its accessed bit clear, and a far
		 * call through it to a non-canonical offset loads CS (the CPU
		 * sets the accessed bit), then raises #GP, which with no IDT is
		 * a triple fault. Never returns.
		 */
		struct {
			uint16_t limit;
			uint64_t base;
		} __attribute__((packed)) table = { 2 * 8 - 1, addr }, no_idt = { 0, 0 };
		struct {
			uint64_t offset;
			uint16_t selector;
		} __attribute__((packed)) target = { 0x8000000000000000ull, 0x08 };
		volatile uint64_t *gdt = (volatile uint64_t *)addr;

		if (cpl3)
			return 1;	/* lgdt and lidt are privileged */
		gdt[0] = 0;
		gdt[1] = 0x00af9a000000ffffull;	/* 64-bit code, accessed bit clear */
		__asm__ volatile("lidt %[i]\n\t"
				 "lgdt %[t]\n\t"
				 "rex.W lcall *%[p]"
				 : : [i] "m"(no_idt), [t] "m"(table), [p] "m"(target) : "memory");
		return 1;	/* not reached */
	}
	default:
		return 1;
	}
	return 0;
}

/* One batch; the ucall afterwards orders every store before the exit. */
static void run_batch(uint32_t nops)
{
	uint32_t result = 0;

	if (nops > SPP_MAX_OPS) {
		result = 0xffffffffu;
	} else {
		for (uint32_t i = 0; i < nops; i++) {
			if (run_op(&((volatile struct spp_mailbox *)&mailbox)->ops[i])) {
				result = i + 1;
				break;
			}
		}
	}
	((volatile struct spp_mailbox *)&mailbox)->result = result;
}

/* The host rewrites the mailbox during each ucall: always re-read it. */
static uint32_t batch_size(void)
{
	return ((volatile struct spp_mailbox *)&mailbox)->nops;
}

static void interpreter(void)
{
	uint32_t nops;

	while ((nops = batch_size()) != 0) {
		run_batch(nops);
		ucall_sync(1, 0);
	}
	ucall_done();
}

static uintptr_t user_interpreter(uintptr_t unused)
{
	(void)unused;
	avx_look_at_cpl3();
	interpreter();
	return 0;
}

int main(void)
{
	uint32_t cpl;

	/* Its own GDT, TSS and IDT first; exceptions are recorded in the mailbox. */
	trap_set_state(0, (struct trap_state *)&mailbox.traps);
	trap_init();
	__asm__ volatile("sgdt %0\n\tsidt %1" : "=m"(mailbox.gdtr), "=m"(mailbox.idtr));
	GUEST_ASSERT((uintptr_t)__image_end <= HOST_AREA_START);
	avx_enable();

	ucall(UCALL_SYNC, 0, (uint64_t)(uintptr_t)&mailbox,
	      (uint64_t)(uintptr_t)spp_code_scratch, 0, NULL, NULL, 0);

	cpl = ((volatile struct spp_mailbox *)&mailbox)->cpl;
	GUEST_ASSERT(cpl == 0 || cpl == 3);
	if (cpl == 3) {
		cpl3 = 1;
		user_run(user_interpreter, 0, user_stack + sizeof(user_stack));
	}
	interpreter();
	return 0;
}
