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
 * What the guest writes besides the ops' targets: the mailbox (result and the
 * value2 of reading ops), the library's ucall struct, the boot stack below
 * 1 MiB and, at CPL 3, a user stack on a page of its own. The mailbox fills
 * whole pages, so none of these shares a page with it, and the image stays
 * below 0x200000 (checked at start-up), leaving 0x200000-0x3fffff to the host.
 */
#include <stddef.h>
#include <stdint.h>

#include "ucall.h"
#include "user.h"

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
};

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
};

_Static_assert(sizeof(struct spp_op) == 32, "spp_op must be 32 bytes");
_Static_assert(offsetof(struct spp_mailbox, ops) == 16, "ops offset");
_Static_assert(offsetof(struct spp_mailbox, src) == 8192, "src offset");
/* Whole pages only: then no other object can share a page with the mailbox. */
_Static_assert(sizeof(struct spp_mailbox) % 4096 == 0, "mailbox must fill whole pages");

static struct spp_mailbox mailbox __attribute__((aligned(4096)));

/* A page to itself, so a store the host aims at a neighbour never hits it. */
static uint8_t user_stack[4096] __attribute__((aligned(4096), section(".noinit")));

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

int main(void)
{
	uint32_t cpl;

	GUEST_ASSERT((uintptr_t)__image_end <= HOST_AREA_START);

	ucall(UCALL_SYNC, 0, (uint64_t)(uintptr_t)&mailbox,
	      (uint64_t)(uintptr_t)spp_code_scratch, 0, NULL, NULL, 0);

	cpl = ((volatile struct spp_mailbox *)&mailbox)->cpl;
	GUEST_ASSERT(cpl == 0 || cpl == 3);
	if (cpl == 3) {
		cpl3 = 1;
		enter_user(interpreter, user_stack + sizeof(user_stack));
	}
	interpreter();
	return 0;
}
