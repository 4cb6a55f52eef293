/*
 * mb-exitcodes: exits with the code given on the command line as "code=N"
 * (decimal or 0x hex), so one image checks several exit statuses: the run
 * ends with status (N << 1) | 1. Without a code= word it exits with
 * EXIT_MISSING.
 */
#include "kernel.h"
#include "serial.h"

#define MAX_CMDLINE 1024

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

static int digit_value(char c, unsigned base)
{
	unsigned d;

	if (c >= '0' && c <= '9')
		d = (unsigned)(c - '0');
	else if (c >= 'a' && c <= 'f')
		d = (unsigned)(c - 'a' + 10);
	else if (c >= 'A' && c <= 'F')
		d = (unsigned)(c - 'A' + 10);
	else
		return -1;
	return d < base ? (int)d : -1;
}

/*
 * Finds a word "code=N" (a word starts the line or follows a space; the
 * first word is the image path) and parses N. Returns 0 if there is none
 * or N is not a number.
 */
static int find_code(const char *s, unsigned *code)
{
	const char *end = s + MAX_CMDLINE;
	int at_word_start = 1;

	for (; s < end && *s; s++) {
		if (at_word_start && s[0] == 'c' && s[1] == 'o' && s[2] == 'd' &&
		    s[3] == 'e' && s[4] == '=') {
			const char *p = s + 5;
			unsigned base = 10, v = 0;
			int d, digits = 0;

			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
				base = 16;
				p += 2;
			}
			while ((d = digit_value(*p, base)) >= 0) {
				v = v * base + (unsigned)d;
				p++;
				digits++;
			}
			if (digits > 0 && (*p == '\0' || is_space(*p))) {
				*code = v;
				return 1;
			}
		}
		at_word_start = is_space(*s);
	}
	return 0;
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	unsigned code;

	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	if (!(info->flags & MB_INFO_CMDLINE) ||
	    !find_code((const char *)(uintptr_t)info->cmdline, &code)) {
		serial_puts("no code=N on the command line\n");
		return EXIT_MISSING;
	}
	serial_puts("exit code ");
	put_hex(code, 0);
	serial_putc('\n');
	return (int)code;
}
