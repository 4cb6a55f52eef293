/*
 * mb-rtc: reads the PC's CMOS (index port 0x70, data 0x71): the memory
 * size bytes a BIOS reads and the CPU count QEMU stores, then checks that
 * the clock's time and date registers hold valid BCD in range. The time
 * itself is not printed (it differs from run to run). Exits with 0x13.
 *
 * CMOS bytes, as QEMU's PC machine fills them:
 *   0x15/0x16  base memory in KiB (at most 640)
 *   0x17/0x18  memory from 1 MiB to 65 MiB in KiB (at most 65535)
 *   0x30/0x31  the same again
 *   0x34/0x35  memory from 16 MiB to 4 GiB in 64 KiB units
 *   0x5f       number of CPUs - 1
 */
#include "io.h"
#include "kernel.h"
#include "serial.h"

#define CMOS_INDEX  0x70
#define CMOS_DATA   0x71
#define CMOS_NMI_OFF 0x80	/* bit 7 of the index keeps NMIs off while we poke */

#define RTC_SECONDS  0x00
#define RTC_MINUTES  0x02
#define RTC_HOURS    0x04
#define RTC_WEEKDAY  0x06
#define RTC_DAY      0x07
#define RTC_MONTH    0x08
#define RTC_YEAR     0x09
#define RTC_STATUS_A 0x0a
#define RTC_STATUS_B 0x0b
#define RTC_CENTURY  0x32

#define RTC_A_UIP    0x80	/* update in progress: time registers may be mid-change */
#define RTC_B_24H    0x02
#define RTC_B_BINARY 0x04
#define RTC_HOUR_PM  0x80	/* 12-hour mode only */

static uint8_t cmos_read(uint8_t index)
{
	outb(CMOS_INDEX, CMOS_NMI_OFF | index);
	return inb(CMOS_DATA);
}

static unsigned cmos_read16(uint8_t low_index)
{
	return cmos_read(low_index) | (unsigned)cmos_read(low_index + 1) << 8;
}

static void print_pair(const char *name, unsigned value, const char *unit)
{
	serial_puts(name);
	serial_put_dec(value);
	serial_puts(unit);
}

/* A valid BCD byte whose value lies in [lo, hi]. */
static int bcd_in_range(uint8_t v, unsigned lo, unsigned hi)
{
	unsigned value;

	if ((v & 0xf) > 9 || (v >> 4) > 9)
		return 0;
	value = (v >> 4) * 10 + (v & 0xf);
	return value >= lo && value <= hi;
}

static int check_field(const char *name, uint8_t v, unsigned lo, unsigned hi)
{
	if (bcd_in_range(v, lo, hi))
		return 1;
	serial_puts("rtc ");
	serial_puts(name);
	serial_puts(" is not valid BCD: ");
	put_hex(v, 2);
	serial_putc('\n');
	return 0;
}

static int rtc_check(void)
{
	uint8_t b = cmos_read(RTC_STATUS_B);
	uint8_t sec, min, hour, wday, day, mon, year, century;
	int spins = 100000;
	int ok = 1;

	if (b & RTC_B_BINARY) {
		serial_puts("rtc is in binary mode, not BCD (status B ");
		put_hex(b, 2);
		serial_puts(")\n");
		return 0;
	}
	/* Read outside an update, so no field is caught mid-change. */
	while ((cmos_read(RTC_STATUS_A) & RTC_A_UIP) && --spins > 0)
		cpu_relax();
	sec = cmos_read(RTC_SECONDS);
	min = cmos_read(RTC_MINUTES);
	hour = cmos_read(RTC_HOURS);
	wday = cmos_read(RTC_WEEKDAY);
	day = cmos_read(RTC_DAY);
	mon = cmos_read(RTC_MONTH);
	year = cmos_read(RTC_YEAR);
	century = cmos_read(RTC_CENTURY);

	ok &= check_field("seconds", sec, 0, 59);
	ok &= check_field("minutes", min, 0, 59);
	if (b & RTC_B_24H)
		ok &= check_field("hours", hour, 0, 23);
	else
		ok &= check_field("hours", hour & (uint8_t)~RTC_HOUR_PM, 1, 12);
	ok &= check_field("weekday", wday, 1, 7);
	ok &= check_field("day", day, 1, 31);
	ok &= check_field("month", mon, 1, 12);
	ok &= check_field("year", year, 0, 99);
	ok &= check_field("century", century, 19, 21);
	return ok;
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	(void)info;
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;

	print_pair("cmos 0x15 base memory ", cmos_read16(0x15), " KiB\n");
	print_pair("cmos 0x17 extended memory ", cmos_read16(0x17), " KiB\n");
	print_pair("cmos 0x30 extended memory ", cmos_read16(0x30), " KiB\n");
	print_pair("cmos 0x34 memory above 16 MiB ", cmos_read16(0x34), " x 64 KiB\n");
	print_pair("cmos 0x5f cpus - 1 = ", cmos_read(0x5f), "\n");

	if (!rtc_check())
		return EXIT_FAILED;
	serial_puts("rtc ok\n");
	return 0x13;
}
