/*
 * Structured calls from guest to host: the guest fills one struct in its own
 * memory and writes the struct's guest-physical address to UCALL_PORT with a
 * 32-bit OUT. Guests run identity-mapped (or with paging off), so the address
 * of a static object is its physical address.
 */
#ifndef GUEST_UCALL_H
#define GUEST_UCALL_H

#include <stddef.h>
#include <stdint.h>

#define UCALL_MAGIC        0x4c414355u	/* "UCAL" read as a little-endian word */

#define UCALL_SYNC         1	/* args[0] = stage, args[1] = value; guest resumes */
#define UCALL_DONE         2	/* ends the run with status 0 */
#define UCALL_ASSERT_FAIL  3	/* file, line, msg, args[0] = wanted, args[1] = got */
#define UCALL_PRINT        4	/* msg is printed by the host */
#define UCALL_SPP_PROTECT  16	/* args: gpa, npages, 32-bit write mask; result 0 or -errno */
#define UCALL_SPP_RELEASE  17	/* args: gpa, npages */
#define UCALL_SPP_QUERY    18	/* args[0] = gpa; host writes the mask to args[2] */

/*
 * The layout is fixed (64 bytes, offsets in the comments) and identical for
 * 32-bit and 64-bit guests: every field sits at its natural offset, so the
 * i386 ABI's 4-byte alignment of uint64_t inserts no padding either.
 */
struct pyvmm_ucall {
	uint32_t magic;		/*  0 */
	uint32_t cmd;		/*  4 */
	uint64_t args[4];	/*  8 */
	uint64_t file;		/* 40: physical address of a NUL-terminated string, or 0 */
	uint64_t msg;		/* 48: same */
	uint32_t line;		/* 56 */
	int32_t result;		/* 60: written by the host before the guest resumes */
};

_Static_assert(sizeof(struct pyvmm_ucall) == 64, "ucall struct must be 64 bytes");
_Static_assert(offsetof(struct pyvmm_ucall, file) == 40, "ucall file offset");
_Static_assert(offsetof(struct pyvmm_ucall, line) == 56, "ucall line offset");
_Static_assert(offsetof(struct pyvmm_ucall, result) == 60, "ucall result offset");

/*
 * Send one ucall through the library's static struct and return the host's
 * result field. file and msg may be NULL.
 */
int32_t ucall(uint32_t cmd, uint64_t arg0, uint64_t arg1, uint64_t arg2,
	      uint64_t arg3, const char *file, const char *msg, uint32_t line);

/*
 * Send a caller-built struct as is, without filling anything in: for guests
 * that need a struct elsewhere (on an SPP-protected page, at a chosen
 * address) or deliberately malformed. addr is the physical address.
 */
void ucall_raw(uint32_t addr);

void ucall_sync(uint64_t stage, uint64_t value);
void ucall_print(const char *msg);
__attribute__((noreturn)) void ucall_done(void);
__attribute__((noreturn)) void ucall_assert_fail(const char *file, uint32_t line,
						 const char *expr,
						 uint64_t wanted, uint64_t got);

int32_t ucall_spp_protect(uint64_t gpa, uint64_t npages, uint32_t mask);
int32_t ucall_spp_release(uint64_t gpa, uint64_t npages);
/* Returns the host's result; on success *mask holds the page's write mask. */
int32_t ucall_spp_query(uint64_t gpa, uint32_t *mask);

/*
 * The host wants a file name, not the build's path to it. GCC 12 and later
 * provide the basename directly.
 */
#ifdef __FILE_NAME__
#define UCALL_FILE __FILE_NAME__
#else
#define UCALL_FILE __FILE__
#endif

/* Failure reports wanted = 1 (true) and got = 0; msg is the condition's text. */
#define GUEST_ASSERT(cond)						\
	do {								\
		if (!(cond))						\
			ucall_assert_fail(UCALL_FILE, __LINE__, #cond, 1, 0); \
	} while (0)

/*
 * Each operand is evaluated once; both are compared as uint64_t, so mix
 * signed values with care. msg is the text of the got expression.
 */
#define GUEST_ASSERT_EQ(wanted, got)					\
	do {								\
		uint64_t wanted_ = (uint64_t)(wanted);			\
		uint64_t got_ = (uint64_t)(got);			\
		if (wanted_ != got_)					\
			ucall_assert_fail(UCALL_FILE, __LINE__, #got,	\
					  wanted_, got_);		\
	} while (0)

#endif
