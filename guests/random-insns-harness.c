/*
 * random-insns-harness: the kernel under random_insns.py's images. The
 * script copies this image and fills in its configuration and its block of
 * random instruction bytes (struct rnd_config, found by its magic
 * "RNDINSN1"); built as is, the block holds nothing but chunk trailers and
 * every chunk completes.
 *
 * The harness sets up its own page tables (4 GiB identity-mapped with
 * 2 MiB pages, all supervisor-only except 0x200000-0x3fffff, the user
 * region), copies the block to 0x200000 and, if use_idt is set, installs
 * the trap library (every exception vector on an IST stack, so CPL-0 code
 * with a garbage RSP still reaches a handler; EFER.SCE clear, so SYSCALL
 * is #UD; the debug-exit ports closed to CPL 3). It then runs the chunks in
 * order, each at CPL 0 or CPL 3 (cpl) with every general register pointing
 * into the user region's scratch half (0x300000-0x3fffff) and RSP at its
 * top. A chunk is chunk_size random bytes followed by a trailer of 15 nops
 * and a ud2: running into the trailer completes the chunk; any fault
 * (#GP, #UD, #PF, ...) ends it and the next one starts; #DB and #BP resume
 * where they were raised, as in any kernel, unless one repeats at the same
 * address 64 times in a row (then it ends the chunk). Without use_idt the
 * first exception is a triple fault, on purpose.
 *
 * Output (debug console), if every chunk ends one way or the other:
 *
 *   random-insns: seed S cpl C idt yes chunks N size Z
 *   random-insns: completed X faulted Y
 *   traps cpu=0 total=... (the trap library's counts)
 *   trap-last cpu=0 ...
 *
 * then ucall DONE (status 0). Random code may also stop the run itself: an
 * endless loop (only the monitor's timeout ends it), hlt at CPL 0 (status
 * 0, "guest halted"), an instruction KVM cannot emulate at CPL 0 (internal
 * error), a write to the ucall or other ports, a triple fault after
 * wrecking the tables at CPL 0. A fuzzer runs each seed with --timeout and
 * judges the monitor, not the guest: no crash, no hang past the timeout.
 */
#include <stddef.h>
#include <stdint.h>

#include "debugcon.h"
#include "exit.h"
#include "trap.h"
#include "ucall.h"

#define RND_MAX_BLOCK   (64 * 1024)
#define RND_TRAILER     17		/* 15 nops, ud2 */
#define USER_REGION     0x200000ul
#define USER_SCRATCH    0x300000ul
#define USER_TOP        0x3ff000ul
#define PAGE_SIZE       4096

/* Patched by random_insns.py (field offsets are its interface). */
struct rnd_config {
	char magic[8];		/*  0: "RNDINSN1" */
	uint64_t seed;		/*  8: informational */
	uint32_t cpl;		/* 16: 0 or 3 */
	uint32_t use_idt;	/* 20: 1 = trap library installed */
	uint32_t nchunks;	/* 24 */
	uint32_t chunk_size;	/* 28: random bytes per chunk, before the trailer */
	uint32_t block_at;	/* 32: where block[] starts, in bytes from the magic */
	uint32_t block_capacity;	/* 36: RND_MAX_BLOCK */
};

_Static_assert(sizeof(struct rnd_config) == 40, "rnd_config is 40 bytes");

struct rnd_image {
	struct rnd_config config;
	uint8_t block[RND_MAX_BLOCK] __attribute__((aligned(16)));
};

/*
 * In .data so the flat file carries it. The default: 16 chunks of 16 nops,
 * each with its trailer (the script overwrites all of it).
 */
#define NOPS16 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, \
	       0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90
#define TRAILER 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, \
		0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x0f, 0x0b
#define CHUNK NOPS16, TRAILER
struct rnd_image rnd_image __attribute__((aligned(64))) = {
	{ { 'R', 'N', 'D', 'I', 'N', 'S', 'N', '1' }, 0, 3, 1, 16, 16,
	  offsetof(struct rnd_image, block), RND_MAX_BLOCK },
	{ CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK,
	  CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, CHUNK },
};

/* The harness's own page tables. */
static uint64_t pml4[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t pdpt[512] __attribute__((aligned(PAGE_SIZE)));
static uint64_t pd[4][512] __attribute__((aligned(PAGE_SIZE)));

#define PTE_P  1ull
#define PTE_RW 2ull
#define PTE_US 4ull
#define PTE_PS 0x80ull

static volatile uint32_t current = 0xffffffffu;	/* the chunk running, or none */
static volatile uint32_t completed, faulted;

/* chunk_run(entry, cpl): in asm below; returns 0 if the chunk completed, vector + 1 if not. */
uintptr_t chunk_run(uintptr_t entry, uintptr_t cpl);

/*
 * Saves the callee-saved registers and RSP in trap_user_ctx[0] (where
 * trap_user_run_return resumes), sets every general register to a scratch
 * address and enters the chunk at CPL 0 (jmp) or CPL 3 (iretq).
 */
__asm__(".pushsection .text\n"
	".globl chunk_run\n"
	"chunk_run:\n\t"
	"pushq %rbx\n\t"
	"pushq %rbp\n\t"
	"pushq %r12\n\t"
	"pushq %r13\n\t"
	"pushq %r14\n\t"
	"pushq %r15\n\t"
	"movq %rsp, trap_user_ctx(%rip)\n\t"
	"movq %rdi, %r15\n\t"
	"cmpq $3, %rsi\n\t"
	"jne 1f\n\t"
	"pushq $0x23\n\t"
	"pushq $0x3ff000\n\t"
	"pushq $0x2\n\t"
	"pushq $0x1b\n\t"
	"pushq %rdi\n\t"
	"call chunk_regs\n\t"
	"iretq\n"
	"1:\n\t"
	"movq $0x3ff000, %rsp\n\t"
	"call chunk_regs\n\t"
	"jmp *%r15\n"
	/* All general registers but RSP to addresses in the scratch half. */
	"chunk_regs:\n\t"
	"movl $0x300000, %eax\n\t"
	"movl $0x301000, %ebx\n\t"
	"movl $0x302000, %ecx\n\t"
	"movl $0x303000, %edx\n\t"
	"movl $0x304000, %esi\n\t"
	"movl $0x305000, %edi\n\t"
	"movl $0x306000, %ebp\n\t"
	"movl $0x307000, %r8d\n\t"
	"movl $0x308000, %r9d\n\t"
	"movl $0x309000, %r10d\n\t"
	"movl $0x30a000, %r11d\n\t"
	"movl $0x30b000, %r12d\n\t"
	"movl $0x30c000, %r13d\n\t"
	"movl $0x30d000, %r14d\n\t"
	"ret\n"	/* R15 keeps the entry until the jump */
	".popsection");

static uint32_t chunk_stride(void)
{
	return rnd_image.config.chunk_size + RND_TRAILER;
}

/*
 * A trap (#DB, #BP, #OF, NMI) raised at the same address this many times in
 * a row ends the chunk too: on this host icebp (f1) at CPL 3 raises #DB
 * with RIP at the icebp itself (hardware reports it as a trap, RIP past
 * it), so resuming would repeat it forever.
 */
#define TRAP_REPEAT_LIMIT 64

static uintptr_t last_trap_ip;
static uint32_t trap_repeats;

/* Any fault inside a chunk ends it: back into chunk_run's frame, at CPL 0. */
static int end_chunk(struct trap_frame *f)
{
	uintptr_t block = USER_REGION, ip = f->ip, stride = chunk_stride();
	uintptr_t outcome = f->vector + 1;

	if (current == 0xffffffffu)
		return 0;	/* in the harness itself: resume a trap, report a fault */
	if (f->vector == 1 || f->vector == 2 || f->vector == 3 || f->vector == 4) {
		trap_repeats = ip == last_trap_ip ? trap_repeats + 1 : 0;
		last_trap_ip = ip;
		if (trap_repeats < TRAP_REPEAT_LIMIT)
			return 0;
		trap_repeats = 0;
	}
	/* The ud2 at the end of a chunk's trailer: it ran to its end. */
	if (ip >= block && ip < block + rnd_image.config.nchunks * stride &&
	    (ip - block) % stride == stride - 2 && f->vector == 6)
		outcome = 0;
	f->ip = (uintptr_t)trap_user_run_return;
	f->cs = TRAP_SEL_KERNEL_CODE;
	f->ss = TRAP_SEL_KERNEL_DATA;
	f->sp = trap_user_ctx[0];
	f->flags = 0x2;
	f->rax = outcome;
	return 1;
}

static void build_page_tables(void)
{
	uint32_t i, j;

	pml4[0] = (uintptr_t)pdpt | PTE_P | PTE_RW | PTE_US;
	for (i = 0; i < 4; i++) {
		pdpt[i] = (uintptr_t)pd[i] | PTE_P | PTE_RW | PTE_US;
		for (j = 0; j < 512; j++) {
			uint64_t base = ((uint64_t)i << 30) | ((uint64_t)j << 21);

			pd[i][j] = base | PTE_P | PTE_RW | PTE_PS |
				   (base == USER_REGION ? PTE_US : 0);
		}
	}
	__asm__ volatile("movq %0, %%cr3" : : "r"((uintptr_t)pml4) : "memory");
}

static void copy_block(void)
{
	uint64_t n = RND_MAX_BLOCK / 8;
	const void *src = rnd_image.block;
	void *dst = (void *)USER_REGION;

	__asm__ volatile("rep movsq" : "+S"(src), "+D"(dst), "+c"(n) : : "memory");
}

static void clear_efer_sce(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080u));
	lo &= ~1u;
	__asm__ volatile("wrmsr" : : "a"(lo), "d"(hi), "c"(0xc0000080u));
}

int main(void)
{
	const struct rnd_config *c = &rnd_image.config;
	uint32_t i, n = c->nchunks;

	if (c->use_idt) {
		trap_init();
		trap_use_ist_everywhere();
		trap_io_deny(0, 0xf4, 4);
		trap_fixup_hook = end_chunk;
	}
	clear_efer_sce();
	build_page_tables();
	copy_block();
	if ((uint64_t)n * chunk_stride() > RND_MAX_BLOCK)
		n = RND_MAX_BLOCK / chunk_stride();

	debugcon_puts("random-insns: seed ");
	debugcon_put_dec(c->seed);
	debugcon_puts(" cpl ");
	debugcon_put_dec(c->cpl == 3 ? 3 : 0);
	debugcon_puts(c->use_idt ? " idt yes" : " idt no");
	debugcon_puts(" chunks ");
	debugcon_put_dec(n);
	debugcon_puts(" size ");
	debugcon_put_dec(c->chunk_size);
	debugcon_putc('\n');

	for (i = 0; i < n; i++) {
		uintptr_t outcome;

		current = i;
		outcome = chunk_run(USER_REGION + i * chunk_stride(), c->cpl == 3 ? 3 : 0);
		current = 0xffffffffu;
		if (outcome == 0)
			completed++;
		else
			faulted++;
	}

	debugcon_puts("random-insns: completed ");
	debugcon_put_dec(completed);
	debugcon_puts(" faulted ");
	debugcon_put_dec(faulted);
	debugcon_putc('\n');
	trap_print(debugcon_putc, 0);
	ucall_done();
}
