/*
 * port-hammer: a hostile guest for a monitor's exit handlers. From a seed,
 * it makes ITERATIONS pseudo-random accesses, each one or a few exits:
 *
 *   60 %  port I/O: a random port, size 1, 2 or 4, IN or OUT of a random value
 *   10 %  string I/O (rep ins/outs, size 1, 2 or 4): into or from a RAM buffer
 *         (count 1-64); or with a huge count (2^32 + r) and RDI/RSI at
 *         32 GiB, beyond the page tables, which faults on the first element;
 *         or with RDI/RSI in the MMIO hole (count 1-16)
 *   10 %  MMIO: a read or write of 1, 2, 4 or 8 bytes in 0xd0000000-0xefffffff
 *   10 %  ucall misuse: the struct outside RAM or straddling RAM's end, bad
 *         magic, an unknown command, PRINT with msg and file outside RAM,
 *         8- and 16-bit OUTs to the ucall port, an IN from it, a write to 0x1001
 *   10 %  SPP requests with garbage: PROTECT (then RELEASE, same arguments)
 *         with a page above the guest or outside RAM, unaligned, 0, huge or
 *         wrapping page counts and random masks; QUERY of random addresses
 *
 * Ports that would end the run or print are left alone (debug-exit 0xf4-0xf7,
 * writes to 0xe9 and to the UART 0x3f8-0x3fe, pc-testdev's 0xe4-0xe7 and
 * 0x2000-0x2017, 0x64, 0x92, 0xcf9; the ucall port only as listed): a
 * random choice of one of them becomes an access to the UART's scratch
 * register 0x3ff instead. Faults (the string I/O ones, and whatever the
 * monitor injects) are counted by the trap library and resumed after
 * (exception-table fixups).
 *
 * Configuration: struct hammer_config below, found in the flat image by
 * its magic "PHAMMER1" (a host may patch the file) and announced with ucall
 * SYNC stage 0, args[1] = its address (a host may change it then): seed
 * (default 1), cpl (0 or 3, default 3), iterations (default 50000),
 * ram_size (default 128 MiB, pyvmm's and QEMU's default: where "RAM's end" is). At the end, on the
 * debug console:
 *
 *   port-hammer: seed 1 cpl 3 iterations 50000
 *   port-hammer: port 60xxx string 10xxx mmio 10xxx ucall 10xxx spp 10xxx
 *   traps cpu=0 total=T v14=...
 *   trap-last cpu=0 ...
 *   port-hammer: done
 *
 * then ucall DONE (status 0). The counts of each kind depend only on the
 * seed. A robust monitor survives every access (no crash, no hang, no
 * exception of its own), rejects what it cannot serve, and ends with the
 * guest's DONE; at CPL 3 the default run makes over 10^5 exits.
 */
#include <stdint.h>

#include "debugcon.h"
#include "io.h"
#include "machine.h"
#include "trap.h"
#include "ucall.h"

#define HOLE_BASE      0xd0000000ul
#define HOLE_SIZE      0x20000000ul
#define UNMAPPED       0x800000000ul	/* 32 GiB: beyond the 4 GiB the boot page tables map */
#define ABOVE_GUEST    0x400000ul	/* the guest's own pages all lie below */
#define UART_SCRATCH   0x3ff

struct hammer_config {
	char magic[8];		/*  0: "PHAMMER1" */
	uint64_t seed;		/*  8 */
	uint32_t cpl;		/* 16: 0 or 3 */
	uint32_t iterations;	/* 20 */
	uint64_t ram_size;	/* 24 */
};

_Static_assert(sizeof(struct hammer_config) == 32, "hammer_config is 32 bytes");

/* In .data, so the flat file carries it and a host can patch it there. */
volatile struct hammer_config hammer_config __attribute__((aligned(64))) = {
	{ 'P', 'H', 'A', 'M', 'M', 'E', 'R', '1' }, 1, 3, 50000, 128u << 20,
};

static uint64_t rng;
static uint32_t n_port, n_string, n_mmio, n_ucall, n_spp;

static uint8_t io_buffer[4096] __attribute__((aligned(4096)));
static uint8_t user_stack[4096] __attribute__((aligned(4096)));
static struct pyvmm_ucall bad_call __attribute__((aligned(64)));

/* xorshift64*: a full-period generator; only the seed decides the sequence. */
static uint64_t next(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static int port_forbidden(uint32_t port, int write)
{
	return (port >= 0xf4 && port <= 0xf7) || (port >= 0xe4 && port <= 0xe7) ||
	       (port >= 0x2000 && port <= 0x2017) || (port >= 0x1000 && port <= 0x1003) ||
	       port == 0x64 || port == 0x92 || port == 0xcf9 ||
	       (write && (port == 0xe9 || (port >= 0x3f8 && port <= 0x3fe)));
}

/* A port that an access of `size` bytes may touch; 0x3ff instead of a forbidden or wrapping one. */
static uint16_t pick_port(uint32_t size, int write)
{
	uint32_t port = (uint32_t)(next() & 0xffff), i;

	/* An access past port 0xffff is refused by the I/O bitmap's end (#GP at CPL 3). */
	if (port + size > 0x10000)
		return UART_SCRATCH;
	for (i = 0; i < size; i++)
		if (port_forbidden((port + i) & 0xffff, write))
			return UART_SCRATCH;
	return (uint16_t)port;
}

static void port_io(void)
{
	uint64_t r = next();
	uint32_t size = 1u << (r % 3), write = (r >> 2) & 1;
	uint16_t port = pick_port(size, (int)write);
	uint32_t value = (uint32_t)(r >> 32);

	n_port++;
	if (write) {
		if (size == 1)
			outb(port, (uint8_t)value);
		else if (size == 2)
			outw(port, (uint16_t)value);
		else
			outl(port, value);
	} else {
		if (size == 1)
			(void)inb(port);
		else if (size == 2)
			(void)inw(port);
		else
			(void)inl(port);
	}
}

/* One string-I/O instruction with a fixup for the faults it may raise. */
#define STRING_IO(insn, reg)						\
	__asm__ volatile("1: rep " insn "\n"				\
			 "2:\n\t"					\
			 TRAP_FIXUP_ASM(1b, 2b)				\
			 : "+c"(count), reg(ptr)			\
			 : "d"(port)					\
			 : "memory")

static void string_io(void)
{
	uint64_t r = next(), count;
	uint32_t size = 1u << (r % 3), in = (r >> 2) & 1, where = (uint32_t)((r >> 3) % 8);
	uint16_t port = pick_port(size, !in);
	uintptr_t ptr;

	n_string++;
	if (where < 5) {		/* RAM buffer */
		count = 1 + (r >> 8) % 64;
		ptr = (uintptr_t)io_buffer;
	} else if (where < 7) {		/* unmapped, huge count: #PF on the first element */
		count = (1ull << 32) + ((r >> 8) & 0xffff);
		ptr = UNMAPPED + ((r >> 24) & 0xfff);
	} else {			/* the MMIO hole */
		count = 1 + (r >> 8) % 16;
		ptr = HOLE_BASE + ((r >> 16) & (HOLE_SIZE - 1) & ~0xffful);
	}
	if (in) {
		if (size == 1)
			STRING_IO("insb", "+D");
		else if (size == 2)
			STRING_IO("insw", "+D");
		else
			STRING_IO("insl", "+D");
	} else {
		if (size == 1)
			STRING_IO("outsb", "+S");
		else if (size == 2)
			STRING_IO("outsw", "+S");
		else
			STRING_IO("outsl", "+S");
	}
}

static void mmio(void)
{
	uint64_t r = next(), value = next();
	uint32_t size = 1u << (r % 4), write = (r >> 2) & 1;
	uintptr_t a = (HOLE_BASE + ((r >> 8) % HOLE_SIZE)) & ~(uintptr_t)(size - 1);

	n_mmio++;
	if (write) {
		switch (size) {
		case 1: *(volatile uint8_t *)a = (uint8_t)value; break;
		case 2: *(volatile uint16_t *)a = (uint16_t)value; break;
		case 4: *(volatile uint32_t *)a = (uint32_t)value; break;
		default: *(volatile uint64_t *)a = value; break;
		}
	} else {
		switch (size) {
		case 1: (void)*(volatile uint8_t *)a; break;
		case 2: (void)*(volatile uint16_t *)a; break;
		case 4: (void)*(volatile uint32_t *)a; break;
		default: (void)*(volatile uint64_t *)a; break;
		}
	}
}

static void fill_bad_call(uint32_t magic, uint32_t cmd)
{
	bad_call.magic = magic;
	bad_call.cmd = cmd;
	bad_call.args[0] = next();
	bad_call.args[1] = next();
	bad_call.args[2] = next();
	bad_call.args[3] = next();
	bad_call.file = 0;
	bad_call.msg = 0;
	bad_call.line = (uint32_t)next();
	bad_call.result = 0;
}

static void ucall_misuse(void)
{
	uint64_t r = next();
	uint32_t ram = (uint32_t)hammer_config.ram_size;
	uint32_t self = (uint32_t)(uintptr_t)&bad_call;

	n_ucall++;
	switch (r % 10) {
	case 0:		/* outside RAM */
		ucall_raw(ram + (uint32_t)((r >> 8) % (0xf0000000u - ram)));
		break;
	case 1:		/* straddling RAM's end */
		ucall_raw(ram - 1 - (uint32_t)((r >> 8) % 63));
		break;
	case 2:
		fill_bad_call((uint32_t)(r >> 32), UCALL_SYNC);
		if (bad_call.magic == UCALL_MAGIC)
			bad_call.magic ^= 1;
		ucall_raw(self);
		break;
	case 3:		/* an unknown command (not SYNC..PRINT nor SPP's) */
		fill_bad_call(UCALL_MAGIC, 100 + (uint32_t)((r >> 8) % 1000));
		ucall_raw(self);
		break;
	case 4:		/* PRINT, msg and file outside RAM */
		fill_bad_call(UCALL_MAGIC, UCALL_PRINT);
		bad_call.msg = ram + ((r >> 8) & 0xffffff);
		bad_call.file = r | (1ull << 63);
		ucall_raw(self);
		break;
	case 5:
		outb(UCALL_PORT, (uint8_t)self);
		break;
	case 6:
		outw(UCALL_PORT, (uint16_t)self);
		break;
	case 7:
		(void)inl(UCALL_PORT);
		break;
	case 8:
		outb(UCALL_PORT + 1, (uint8_t)(r >> 8));
		break;
	default:	/* a SYNC whose args are garbage: well-formed, served */
		fill_bad_call(UCALL_MAGIC, UCALL_SYNC);
		bad_call.args[0] = 2;
		ucall_raw(self);
		break;
	}
}

static uint64_t garbage_gpa(uint64_t r)
{
	uint64_t ram = hammer_config.ram_size;

	switch (r % 5) {
	case 0:
		return ABOVE_GUEST + (((r >> 8) % (ram - ABOVE_GUEST)) & ~0xfffull);
	case 1:
		return ram + ((r >> 8) & 0xffff000);
	case 2:
		return ABOVE_GUEST + ((r >> 8) & 0xfff) + 1;	/* unaligned */
	case 3:
		return next();					/* anything */
	default:
		return ~0xfffull;				/* the last page of the address space */
	}
}

static uint64_t garbage_npages(uint64_t r, uint64_t gpa)
{
	switch (r % 5) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return 1ull << (r >> 8) % 64;
	case 3:
		return (0 - gpa) / 4096 + 2;	/* wraps past 2^64 into page 0 */
	default:
		return ~0ull;
	}
}

static void spp_garbage(void)
{
	uint64_t r = next(), gpa = garbage_gpa(r >> 4), npages = garbage_npages(r >> 12, gpa);
	uint32_t mask;

	n_spp++;
	if (r % 3 == 0) {
		ucall_spp_query(gpa, &mask);
		return;
	}
	ucall_spp_protect(gpa, npages, (uint32_t)(r >> 32));
	ucall_spp_release(gpa, npages);
}

static void hammer(void)
{
	uint32_t i, n = hammer_config.iterations;

	for (i = 0; i < n; i++) {
		uint32_t kind = (uint32_t)(next() % 100);

		if (kind < 60)
			port_io();
		else if (kind < 70)
			string_io();
		else if (kind < 80)
			mmio();
		else if (kind < 90)
			ucall_misuse();
		else
			spp_garbage();
	}
}

static uintptr_t user_hammer(uintptr_t unused)
{
	(void)unused;
	hammer();
	return 0;
}

static void put_count(const char *name, uint32_t n)
{
	debugcon_putc(' ');
	debugcon_puts(name);
	debugcon_putc(' ');
	debugcon_put_dec(n);
}

int main(void)
{
	trap_init();
	ucall_sync(0, (uint64_t)(uintptr_t)&hammer_config);
	rng = hammer_config.seed ? hammer_config.seed : 1;

	debugcon_puts("port-hammer: seed ");
	debugcon_put_dec(hammer_config.seed);
	debugcon_puts(" cpl ");
	debugcon_put_dec(hammer_config.cpl == 3 ? 3 : 0);
	debugcon_puts(" iterations ");
	debugcon_put_dec(hammer_config.iterations);
	debugcon_putc('\n');

	if (hammer_config.cpl == 3)
		user_run(user_hammer, 0, user_stack + sizeof(user_stack));
	else
		hammer();

	debugcon_puts("port-hammer:");
	put_count("port", n_port);
	put_count("string", n_string);
	put_count("mmio", n_mmio);
	put_count("ucall", n_ucall);
	put_count("spp", n_spp);
	debugcon_putc('\n');
	trap_print(debugcon_putc, 0);
	debugcon_puts("port-hammer: done\n");
	ucall_done();
}
