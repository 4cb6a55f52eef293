/*
 * mb-acpi: walks the ACPI tables, checks the PM timer, and suspends to S3
 * and resumes (or, with `-append s5`, powers off), as an OS does on a PC.
 * Under QEMU `-machine pc` (PIIX4 power management) it prints:
 *
 *   acpi: rsdp revision 0 oem "BOCHS " in the bios area
 *   acpi: rsdt entries FACP APIC HPET WAET
 *   acpi: fadt revision 1, sci 9, smi_cmd 0x0, acpi_enable 0x00
 *   acpi: pm1a_evt_blk 0x600 len 4, pm1a_cnt_blk 0x604 len 2, pm_tmr_blk 0x608 len 4, tmr_val_ext 0
 *   acpi: facs length 64 version 0 (no checksum: none defined)
 *   acpi: dsdt checksum ok
 *   acpi: _S3_ package of 4: SLP_TYPa 1, SLP_TYPb 1
 *   acpi: _S5_ package of 4: SLP_TYPa 0, SLP_TYPb 0
 *   acpi: pm timer ran 3 ticks per pit tick over 65535 pit ticks (3.579545 MHz within 25%)
 *   acpi: mode on (SCI_EN already set)
 *   s3: waking vector 0x60000, rtc alarm in 2 s, 0x10000 bytes of pattern at 0x200000
 *   s3: sleeping
 *   resumed from S3
 *   s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 1
 *
 * and exits with 0x19.
 * With `-append s5` it prints the same up to the mode line, then
 *   s5: SLP_TYPa 0, powering off
 * and the machine turns off: QEMU ends with status 0. With `-append
 * addresses` it also prints where the tables are (the firmware's choice,
 * so left out by default); with `-append image`, after resuming, whether
 * the kernel's own .data and .bss kept what it wrote there before sleeping
 * (QEMU writes them back from the file: see struct pm_state).
 *
 * With `-append smp` (and -smp 2 or more) it also starts the other CPUs
 * (ACPI MADT, INIT, SIPI, SIPI: smp.c) just before sleeping; each AP counts
 * its start and then counts loop turns at CPL 0. Waking from S3 resets
 * every CPU: the BSP comes back at the waking vector and the APs wait for
 * a start-up IPI, as on real hardware. After resuming, the kernel checks
 * that the APs' loop count stood still (they did not run on), starts them
 * again and waits for each. The extra lines, for -smp 2:
 *
 *   smp: 2 cpus, 1 ap started before sleeping
 *   (the s3 lines, up to the pattern line)
 *   smp: the aps stood still while asleep (loop count unchanged)
 *   smp: 1 ap started again after resuming
 *
 * before the exit with 0x19.
 *
 * With `-append sci` it does not sleep: after the mode line it sets
 * PWRBTN_EN, routes IRQ 9 (the FADT's SCI) through the 8259s to vector
 * 0x29 and waits in hlt; a press of the power button (QEMU's
 * `system_powerdown`) raises the SCI, and the kernel prints
 *
 *   sci: waiting for the power button (PWRBTN_EN set, irq 9 at vector 0x29)
 *   sci: vector 0x29, pm1 status: PWRBTN_STS 1, pm1 enable 0x0100
 *
 * and exits with 0x1a from the interrupt (nothing returns from one here).
 *
 * With `-append pwrbtn` it arms no alarm and leaves RTC_EN clear: only the
 * power button wakes it (QEMU's monitor command `system_wakeup`, which QEMU
 * reports as a power-button wake). The s3 lines then read
 *
 *   s3: waking vector 0x60000, no alarm (the power button wakes it), 0x10000 bytes of pattern at 0x200000
 *   s3: sleeping
 *   resumed from S3
 *   s3: pattern intact, pm1 status: WAK_STS 1, RTC_STS 0, PWRBTN_STS 1
 *
 * Steps, with what each relies on:
 * - RSDP: 16-byte boundaries in the EBDA's first KiB (segment at 0x40e),
 *   then 0xe0000-0xfffff; checksum over 20 bytes, and the extended one over
 *   `length` for revision 2+. Root table: XSDT if revision 2+ and its
 *   address is set, else RSDT; checksum. Every table it lists: checksum.
 * - FADT ("FACP"): checksum; FACS from X_FIRMWARE_CTRL (if the table is
 *   long enough and it is set) else FIRMWARE_CTRL; DSDT likewise from
 *   X_DSDT / DSDT. FACS: signature, length >= 64 (it has no checksum).
 *   DSDT: signature and checksum.
 * - _S3_ and _S5_ in the DSDT's AML: a byte search for the name, accepted
 *   only as DefName: NameOp (0x08), optionally a root prefix '\' (0x5c),
 *   the four name bytes, then PackageOp (0x12), PkgLength (1-4 bytes: the
 *   top two bits of the first byte count the bytes that follow), the element
 *   count, and elements that are integer constants: ZeroOp 0x00, OneOp
 *   0x01, OnesOp 0xff, BytePrefix 0x0a b, WordPrefix 0x0b w, DWordPrefix
 *   0x0c d. SLP_TYPa is the first element, SLP_TYPb the second.
 * - PM timer: PM_TMR_BLK read (32-bit IN) before and after PIT channel 2
 *   counts 65535 ticks of 1.193182 MHz in mode 0 (gate and OUT2 through
 *   port 0x61); 24 bits unless TMR_VAL_EXT. 3.579545 MHz is 3 PM ticks per
 *   PIT tick: the run passes if the ratio x 100 lies in 225-375.
 * - ACPI mode: if SCI_EN (PM1a_CNT bit 0) is clear, ACPI_ENABLE is written
 *   to SMI_CMD and SCI_EN polled.
 * - S3: the stub of acpi-resume.S is copied to 0x60000 (free RAM in the
 *   memory map) and its address written to the FACS firmware waking
 *   vector; a pattern fills 64 KiB at 2 MiB; the RTC alarm is set 2 s
 *   ahead (registers 1/3/5 written outside an update, UIP in register A;
 *   register C read to clear old flags; AIE set in register B); PM1a_STS
 *   cleared (WAK_STS, RTC_STS written as 1), RTC_EN set in PM1a_EN
 *   (PM1a_EVT_BLK + PM1_EVT_LEN / 2); caches written back (wbinvd); then
 *   PM1a_CNT = SCI_EN kept | SLP_TYPa << 10 | SLP_EN (bit 13), one 16-bit
 *   OUT. On wake the firmware enters the stub in real mode; resume_main()
 *   reloads the IDT, sets up COM1 again (the devices were reset), checks the
 *   pattern, prints PM1a_STS's WAK_STS and RTC_STS, clears them and the
 *   waking vector, and exits. What it needs from before (I/O ports, the
 *   FACS) it saved next to the stub: see struct pm_state.
 * - S5: the same OUT with _S5_'s SLP_TYPa.
 * Any failure prints what was wrong and exits with EXIT_MISSING (a table
 * or object is not there) or EXIT_FAILED.
 */
#include <stddef.h>

#include "acpi.h"
#include "exit.h"
#include "io.h"
#include "kernel.h"
#include "serial.h"
#include "fatal-trap.h"
#include "smp.h"

#define RESUME_STUB_ADDR  0x60000u
#define PATTERN_ADDR      0x200000u
#define PATTERN_SIZE      0x10000u
#define ALARM_SECONDS     2
#define SPINS             2000000	/* seconds of emulated CPL-0 polling */
#define STILL_SPINS       20000	/* how long the aps' loop count must stand still */

/* FADT offsets (ACPI 1.0 fields, then the ACPI 2.0 extended addresses) */
#define FADT_FIRMWARE_CTRL  36
#define FADT_DSDT           40
#define FADT_SCI_INT        46
#define FADT_SMI_CMD        48
#define FADT_ACPI_ENABLE    52
#define FADT_PM1A_EVT_BLK   56
#define FADT_PM1A_CNT_BLK   64
#define FADT_PM_TMR_BLK     76
#define FADT_PM1_EVT_LEN    88
#define FADT_PM1_CNT_LEN    89
#define FADT_PM_TMR_LEN     91
#define FADT_FLAGS          112
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT         140
#define FADT_FLAG_TMR_VAL_EXT (1u << 8)

/* FACS offsets */
#define FACS_LENGTH         4
#define FACS_WAKING_VECTOR  12
#define FACS_X_WAKING_VECTOR 24
#define FACS_VERSION        32

/* PM1 registers */
#define PM1_STS_PWRBTN      (1u << 8)
#define PM1_EN_PWRBTN       (1u << 8)
#define PIC1_CMD            0x20
#define PIC1_DATA           0x21
#define PIC2_CMD            0xa0
#define PIC2_DATA           0xa1
#define PIC1_VECTOR         0x20
#define PIC2_VECTOR         0x28
#define SCI_VECTOR          (PIC2_VECTOR + 1)	/* IRQ 9 */
#define PM1_STS_RTC         (1u << 10)
#define PM1_STS_WAK         (1u << 15)
#define PM1_EN_RTC          (1u << 10)
#define PM1_CNT_SCI_EN      (1u << 0)
#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP_MASK (7u << 10)
#define PM1_CNT_SLP_EN      (1u << 13)

/* PIT channel 2 and its gate */
#define PIT_CH2             0x42
#define PIT_MODE            0x43
#define PIT_CH2_ONESHOT     0xb0	/* channel 2, low then high byte, mode 0, binary */
#define PORT_61             0x61
#define PORT_61_GATE2       0x01
#define PORT_61_SPEAKER     0x02
#define PORT_61_OUT2        0x20

/* RTC */
#define CMOS_INDEX          0x70
#define CMOS_DATA           0x71
#define CMOS_NMI_OFF        0x80
#define RTC_SECONDS         0x00
#define RTC_SECONDS_ALARM   0x01
#define RTC_MINUTES         0x02
#define RTC_MINUTES_ALARM   0x03
#define RTC_HOURS           0x04
#define RTC_HOURS_ALARM     0x05
#define RTC_REG_A           0x0a
#define RTC_REG_B           0x0b
#define RTC_REG_C           0x0c
#define RTC_A_UIP           0x80
#define RTC_B_AIE           0x20
#define RTC_B_BINARY        0x04
#define RTC_B_24H           0x02

/*
 * What the walk found and the resume path needs. The kernel's own .data and
 * .bss cannot carry it across S3: QEMU writes the kernel's ELF segments back
 * as they are in the file on the reset that wakes the machine (its loader
 * registers them as ROM blobs, which every system reset restores), so a
 * copy goes to the stub's page, outside the image, before the kernel sleeps.
 */
struct pm_state {
	uint32_t magic;
	const uint8_t *facs;
	uint16_t pm1a_sts, pm1a_en, pm1a_cnt, pm_tmr;
	int tmr_val_ext;
	uint8_t s3_typ, s5_typ;
	int print_image;	/* `-append image` */
	int smp;		/* `-append smp` */
	int pwrbtn;		/* `-append pwrbtn` */
};

#define PM_STATE_MAGIC  0x33536d70u	/* "pmS3" */
#define PM_STATE_ADDR   (RESUME_STUB_ADDR + 0x800)

static struct pm_state pm;

/*
 * `-append smp`: how often an AP started, and its loop turns, kept next to
 * the stub for the same reason as struct pm_state.
 */
#define AP_STARTS  ((volatile uint32_t *)(RESUME_STUB_ADDR + 0xc00))
#define AP_TURNS   ((volatile uint32_t *)(RESUME_STUB_ADDR + 0xc04))

/*
 * Changed just before the kernel sleeps; `-append image` prints them after
 * resuming, which shows whether the kernel's image kept its state over S3
 * (0x22222222, 0x33333333: as on real hardware) or was written back from
 * the file (0x11111111, 0: as QEMU does).
 */
static volatile uint32_t data_marker = 0x11111111u;
static volatile uint32_t bss_marker;

extern const uint8_t resume_stub_start[], resume_stub_end[];
__attribute__((noreturn)) void resume_main(void);

static uint32_t rd32(const void *base, uint32_t off)
{
	const uint8_t *p = (const uint8_t *)base + off;

	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_sig(const char *s, int n)
{
	while (n-- > 0)
		serial_putc(*s++);
}

static void put_addr(const char *what, const void *p)
{
	serial_puts("acpi: ");
	serial_puts(what);
	serial_puts(" at ");
	put_hex((uint32_t)(uintptr_t)p, 8);
	serial_putc('\n');
}

/* --- tables --------------------------------------------------------------------------- */

static const struct acpi_header *walk_root(int addresses, int *entry_size)
{
	enum acpi_rsdp_place place;
	const struct acpi_rsdp *rsdp = acpi_find_rsdp(&place);
	const struct acpi_header *root;
	uint32_t i, n;

	if (!rsdp) {
		serial_puts("acpi: no RSDP in the EBDA or 0xe0000-0xfffff\n");
		return NULL;
	}
	serial_puts("acpi: rsdp revision ");
	serial_put_dec(rsdp->revision);
	serial_puts(" oem \"");
	put_sig(rsdp->oem_id, 6);
	serial_puts(place == ACPI_RSDP_EBDA ? "\" in the ebda\n" : "\" in the bios area\n");
	if (addresses)
		put_addr("rsdp", rsdp);
	root = acpi_root(rsdp, entry_size);
	if (!root) {
		serial_puts("acpi: the root table's signature or checksum is wrong\n");
		return NULL;
	}
	if (addresses)
		put_addr(*entry_size == 8 ? "xsdt" : "rsdt", root);
	serial_puts(*entry_size == 8 ? "acpi: xsdt entries" : "acpi: rsdt entries");
	n = acpi_root_count(root, *entry_size);
	for (i = 0; i < n; i++) {
		uint64_t a = acpi_root_entry(root, *entry_size, i);
		const struct acpi_header *t = (const struct acpi_header *)(uintptr_t)a;

		if (a >> 32 || !acpi_checksum_ok(t, t->length)) {
			serial_puts("\nacpi: entry ");
			serial_put_dec(i);
			serial_puts(" is above 4 GiB or its checksum is wrong\n");
			return NULL;
		}
		serial_putc(' ');
		put_sig(t->signature, 4);
	}
	serial_putc('\n');
	return root;
}

static const uint8_t *fadt_pointer(const uint8_t *fadt, uint32_t off32, uint32_t off64)
{
	uint32_t len = ((const struct acpi_header *)fadt)->length;

	if (len >= off64 + 8 && (rd32(fadt, off64) || rd32(fadt, off64 + 4))) {
		if (rd32(fadt, off64 + 4))
			return NULL;	/* above 4 GiB: out of reach */
		return (const uint8_t *)(uintptr_t)rd32(fadt, off64);
	}
	return (const uint8_t *)(uintptr_t)rd32(fadt, off32);
}

static int read_fadt(const uint8_t *fadt, const uint8_t **dsdt)
{
	const struct acpi_header *h = (const struct acpi_header *)fadt;
	uint8_t evt_len = fadt[FADT_PM1_EVT_LEN], cnt_len = fadt[FADT_PM1_CNT_LEN];
	uint8_t tmr_len = fadt[FADT_PM_TMR_LEN];
	uint32_t evt = rd32(fadt, FADT_PM1A_EVT_BLK), cnt = rd32(fadt, FADT_PM1A_CNT_BLK);
	uint32_t tmr = rd32(fadt, FADT_PM_TMR_BLK);

	if (h->length < FADT_FLAGS + 4) {
		serial_puts("acpi: fadt too short\n");
		return 0;
	}
	pm.tmr_val_ext = !!(rd32(fadt, FADT_FLAGS) & FADT_FLAG_TMR_VAL_EXT);
	serial_puts("acpi: fadt revision ");
	serial_put_dec(h->revision);
	serial_puts(", sci ");
	serial_put_dec(fadt[FADT_SCI_INT] | (uint32_t)fadt[FADT_SCI_INT + 1] << 8);
	serial_puts(", smi_cmd ");
	put_hex(rd32(fadt, FADT_SMI_CMD), 0);
	serial_puts(", acpi_enable ");
	put_hex(fadt[FADT_ACPI_ENABLE], 2);
	serial_puts("\nacpi: pm1a_evt_blk ");
	put_hex(evt, 0);
	serial_puts(" len ");
	serial_put_dec(evt_len);
	serial_puts(", pm1a_cnt_blk ");
	put_hex(cnt, 0);
	serial_puts(" len ");
	serial_put_dec(cnt_len);
	serial_puts(", pm_tmr_blk ");
	put_hex(tmr, 0);
	serial_puts(" len ");
	serial_put_dec(tmr_len);
	serial_puts(", tmr_val_ext ");
	serial_put_dec((unsigned long)pm.tmr_val_ext);
	serial_putc('\n');
	if (!evt || evt > 0xffff || evt_len < 4 || !cnt || cnt > 0xffff || cnt_len < 2 ||
	    !tmr || tmr > 0xffff || tmr_len != 4) {
		serial_puts("acpi: the pm1a or pm timer blocks are missing or not in I/O space\n");
		return 0;
	}
	pm.pm1a_sts = (uint16_t)evt;
	pm.pm1a_en = (uint16_t)(evt + evt_len / 2);
	pm.pm1a_cnt = (uint16_t)cnt;
	pm.pm_tmr = (uint16_t)tmr;

	pm.facs = fadt_pointer(fadt, FADT_FIRMWARE_CTRL, FADT_X_FIRMWARE_CTRL);
	*dsdt = fadt_pointer(fadt, FADT_DSDT, FADT_X_DSDT);
	return 1;
}

static int check_facs(int addresses)
{
	const uint8_t *f = pm.facs;
	uint32_t len;

	if (!f || rd32(f, 0) != 0x53434146u /* "FACS" */) {
		serial_puts("acpi: no FACS where the fadt says\n");
		return 0;
	}
	len = rd32(f, FACS_LENGTH);
	if (len < 64 || ((uintptr_t)f & 63)) {
		serial_puts("acpi: facs shorter than 64 bytes or not 64-byte aligned\n");
		return 0;
	}
	if (addresses)
		put_addr("facs", f);
	serial_puts("acpi: facs length ");
	serial_put_dec(len);
	serial_puts(" version ");
	serial_put_dec(f[FACS_VERSION]);
	serial_puts(" (no checksum: none defined)\n");
	return 1;
}

/* --- AML ------------------------------------------------------------------------------ */

/* One integer constant at p; its size, or 0 if it is not one. */
static int aml_integer(const uint8_t *p, const uint8_t *end, uint32_t *value)
{
	switch (p[0]) {
	case 0x00: *value = 0; return 1;
	case 0x01: *value = 1; return 1;
	case 0xff: *value = 0xffffffffu; return 1;
	case 0x0a:
		if (p + 2 > end)
			return 0;
		*value = p[1];
		return 2;
	case 0x0b:
		if (p + 3 > end)
			return 0;
		*value = p[1] | (uint32_t)p[2] << 8;
		return 3;
	case 0x0c:
		if (p + 5 > end)
			return 0;
		*value = rd32(p, 1);
		return 5;
	default:
		return 0;
	}
}

/*
 * The first two elements of the package named `name` (4 bytes), e.g. _S3_.
 * Returns the element count, or 0 if there is no such DefName.
 */
static int find_sleep_package(const struct acpi_header *dsdt, const char *name, uint32_t *typ_a,
			      uint32_t *typ_b)
{
	const uint8_t *aml = (const uint8_t *)(dsdt + 1);
	const uint8_t *end = (const uint8_t *)dsdt + dsdt->length;
	const uint8_t *p;

	for (p = aml + 1; p + 4 <= end; p++) {
		const uint8_t *q, *pkg_end;
		uint32_t pkglen, nbytes, i, count, v[2] = { 0, 0 };

		if (p[0] != name[0] || p[1] != name[1] || p[2] != name[2] || p[3] != name[3])
			continue;
		if (!(p[-1] == 0x08 || (p[-1] == 0x5c && p - 2 >= aml && p[-2] == 0x08)))
			continue;
		q = p + 4;
		if (q + 2 > end || q[0] != 0x12)
			continue;
		q++;
		nbytes = q[0] >> 6;
		if (q + 1 + nbytes > end)
			continue;
		pkglen = nbytes ? (q[0] & 0x0f) : (q[0] & 0x3f);
		for (i = 0; i < nbytes; i++)
			pkglen |= (uint32_t)q[1 + i] << (4 + 8 * i);
		pkg_end = q + pkglen;	/* PkgLength counts itself */
		q += 1 + nbytes;
		if (pkg_end > end || q >= pkg_end)
			continue;
		count = *q++;
		for (i = 0; i < count && i < 2; i++) {
			int n = aml_integer(q, pkg_end, &v[i]);

			if (!n)
				break;
			q += n;
		}
		if (count < 1 || i < (count < 2 ? count : 2))
			continue;
		*typ_a = v[0];
		*typ_b = v[1];
		return (int)count;
	}
	return 0;
}

static int read_sleep_type(const struct acpi_header *dsdt, const char *name, uint8_t *typ)
{
	uint32_t a, b;
	int count = find_sleep_package(dsdt, name, &a, &b);

	serial_puts("acpi: ");
	serial_puts(name);
	if (!count) {
		serial_puts(" not found as a package of integers in the dsdt\n");
		return 0;
	}
	serial_puts(" package of ");
	serial_put_dec((unsigned long)count);
	serial_puts(": SLP_TYPa ");
	serial_put_dec(a);
	serial_puts(", SLP_TYPb ");
	serial_put_dec(b);
	serial_putc('\n');
	if (a > 7) {
		serial_puts("acpi: SLP_TYPa does not fit the 3-bit field\n");
		return 0;
	}
	*typ = (uint8_t)a;
	return 1;
}

/* --- PM timer ------------------------------------------------------------------------- */

static uint32_t pm_timer(void)
{
	return inl(pm.pm_tmr) & (pm.tmr_val_ext ? 0xffffffffu : 0xffffffu);
}

/*
 * One PM-timer interval over 65535 ticks of PIT channel 2 (mode 0: OUT2 rises at 0), in PM ticks.
 * The poll has no pause: a PAUSE can be a pause-loop exit, and the host may then run something
 * else for milliseconds, which the interval would count.
 */
static int pm_ticks_over_pit(uint32_t *ticks)
{
	uint32_t t0, t1;
	uint8_t p61 = inb(PORT_61);
	int spins = SPINS;

	/* Gate on, speaker off; writing the count starts mode 0; OUT2 rises at 0. */
	outb(PORT_61, (uint8_t)((p61 & ~PORT_61_SPEAKER) | PORT_61_GATE2));
	outb(PIT_MODE, PIT_CH2_ONESHOT);
	outb(PIT_CH2, 0xff);
	outb(PIT_CH2, 0xff);
	t0 = pm_timer();
	while (!(inb(PORT_61) & PORT_61_OUT2) && --spins > 0)
		;
	t1 = pm_timer();
	outb(PORT_61, p61);
	*ticks = (t1 - t0) & (pm.tmr_val_ext ? 0xffffffffu : 0xffffffu);
	return spins > 0;
}

static int check_pm_timer(void)
{
	uint32_t ticks = 0, ratio100 = 0;
	int attempt;

	/* A vCPU the host did not run for a while sees OUT2 late, so an interval can only come out
	 * too long: the shortest of a few is the measurement. */
	for (attempt = 0; attempt < 5; attempt++) {
		uint32_t t;

		if (!pm_ticks_over_pit(&t)) {
			serial_puts("acpi: pit channel 2 never reached 0 (OUT2 in port 0x61)\n");
			return 0;
		}
		if (attempt == 0 || t < ticks)
			ticks = t;
		ratio100 = (uint32_t)((uint64_t)ticks * 100 / 65535);
		if (ratio100 >= 225 && ratio100 <= 375)
			break;
	}
	if (ratio100 < 225 || ratio100 > 375) {
		serial_puts("acpi: pm timer ran ");
		serial_put_dec(ticks);
		serial_puts(" ticks over 65535 pit ticks, not about 3 per pit tick (3.579545 MHz)\n");
		return 0;
	}
	serial_puts("acpi: pm timer ran 3 ticks per pit tick over 65535 pit ticks "
		    "(3.579545 MHz within 25%)\n");
	return 1;
}

/* --- ACPI mode ------------------------------------------------------------------------ */

static int enable_acpi_mode(const uint8_t *fadt)
{
	uint32_t smi_cmd = rd32(fadt, FADT_SMI_CMD);
	uint8_t enable = fadt[FADT_ACPI_ENABLE];
	int spins = SPINS;

	if (inw(pm.pm1a_cnt) & PM1_CNT_SCI_EN) {
		serial_puts("acpi: mode on (SCI_EN already set)\n");
		return 1;
	}
	if (!smi_cmd || !enable) {
		serial_puts("acpi: SCI_EN clear and no SMI_CMD to set it\n");
		return 0;
	}
	outb((uint16_t)smi_cmd, enable);
	while (!(inw(pm.pm1a_cnt) & PM1_CNT_SCI_EN) && --spins > 0)
		cpu_relax();
	if (!spins) {
		serial_puts("acpi: SCI_EN still clear after ACPI_ENABLE\n");
		return 0;
	}
	serial_puts("acpi: mode on (SCI_EN set after ACPI_ENABLE to SMI_CMD)\n");
	return 1;
}

/* --- RTC ------------------------------------------------------------------------------ */

static uint8_t cmos_read(uint8_t index)
{
	outb(CMOS_INDEX, CMOS_NMI_OFF | index);
	return inb(CMOS_DATA);
}

static void cmos_write(uint8_t index, uint8_t value)
{
	outb(CMOS_INDEX, CMOS_NMI_OFF | index);
	outb(CMOS_DATA, value);
}

static unsigned from_rtc(uint8_t v, int binary)
{
	return binary ? v : (unsigned)(v >> 4) * 10 + (v & 0xf);
}

static uint8_t to_rtc(unsigned v, int binary)
{
	return (uint8_t)(binary ? v : (v / 10) << 4 | v % 10);
}

static int arm_rtc_alarm(unsigned seconds)
{
	uint8_t b = cmos_read(RTC_REG_B);
	int binary = !!(b & RTC_B_BINARY), spins = SPINS;
	unsigned s, m, h;

	if (!(b & RTC_B_24H)) {
		serial_puts("s3: the rtc is in 12-hour mode\n");
		return 0;
	}
	/* Read and write the time registers outside an update cycle (244 us after UIP clears). */
	while ((cmos_read(RTC_REG_A) & RTC_A_UIP) && --spins > 0)
		cpu_relax();
	s = from_rtc(cmos_read(RTC_SECONDS), binary) + seconds;
	m = from_rtc(cmos_read(RTC_MINUTES), binary);
	h = from_rtc(cmos_read(RTC_HOURS), binary);
	m += s / 60;
	s %= 60;
	h += m / 60;
	m %= 60;
	h %= 24;
	cmos_write(RTC_SECONDS_ALARM, to_rtc(s, binary));
	cmos_write(RTC_MINUTES_ALARM, to_rtc(m, binary));
	cmos_write(RTC_HOURS_ALARM, to_rtc(h, binary));
	(void)cmos_read(RTC_REG_C);	/* clears AF and the other flags */
	cmos_write(RTC_REG_B, b | RTC_B_AIE);
	return 1;
}

/* --- S3 and S5 ------------------------------------------------------------------------ */

static uint32_t pattern(uint32_t addr)
{
	return (addr >> 2) * 2654435761u ^ 0x53335f21u;
}

static void fill_pattern(void)
{
	volatile uint32_t *p = (volatile uint32_t *)PATTERN_ADDR;
	uint32_t a;

	for (a = PATTERN_ADDR; a < PATTERN_ADDR + PATTERN_SIZE; a += 4)
		*p++ = pattern(a);
}

static uint32_t pattern_mismatch(void)
{
	const volatile uint32_t *p = (const volatile uint32_t *)PATTERN_ADDR;
	uint32_t a;

	for (a = PATTERN_ADDR; a < PATTERN_ADDR + PATTERN_SIZE; a += 4)
		if (*p++ != pattern(a))
			return a;
	return 0;
}

static int ram_free(const struct mb_info *info, uint32_t start, uint32_t len)
{
	uint32_t addr = info->mmap_addr, end = info->mmap_addr + info->mmap_length;

	if (!(info->flags & MB_INFO_MMAP))
		return 0;
	while (addr < end) {
		const struct mb_mmap_entry *e = (const struct mb_mmap_entry *)(uintptr_t)addr;

		if (e->type == 1 && e->base <= start && e->base + e->length >= (uint64_t)start + len)
			return 1;
		addr += e->size + sizeof(e->size);
	}
	return 0;
}

/* Writes SLP_TYP | SLP_EN; returns only if the machine did not go to sleep. */
static void enter_sleep_state(uint8_t typ)
{
	uint16_t cnt = inw(pm.pm1a_cnt);
	int spins = SPINS;

	cnt = (uint16_t)((cnt & ~(PM1_CNT_SLP_TYP_MASK | PM1_CNT_SLP_EN)) |
			 (uint32_t)typ << PM1_CNT_SLP_TYP_SHIFT);
	__asm__ volatile("wbinvd" : : : "memory");
	outw(pm.pm1a_cnt, (uint16_t)(cnt | PM1_CNT_SLP_EN));
	while (--spins > 0)
		cpu_relax();
}

/* --- the SCI (`-append sci`) ----------------------------------------------------------- */

void trap_expected(const struct trap_frame *f)
{
	uint16_t sts, en;

	if (f->vector != SCI_VECTOR)
		return;
	sts = inw(pm.pm1a_sts);
	en = inw(pm.pm1a_en);
	serial_puts("sci: vector ");
	put_hex(f->vector, 2);
	serial_puts(", pm1 status: PWRBTN_STS ");
	serial_put_dec(!!(sts & PM1_STS_PWRBTN));
	serial_puts(", pm1 enable ");
	put_hex(en, 4);
	serial_putc('\n');
	debug_exit(0x1a);
}

/* Edge-triggered, cascaded on IRQ 2, vectors 0x20 and 0x28; only IRQ 9 (and the cascade) open. */
static void route_sci(void)
{
	outb(PIC1_CMD, 0x11);
	outb(PIC2_CMD, 0x11);
	outb(PIC1_DATA, PIC1_VECTOR);
	outb(PIC2_DATA, PIC2_VECTOR);
	outb(PIC1_DATA, 1 << 2);
	outb(PIC2_DATA, 2);
	outb(PIC1_DATA, 0x01);
	outb(PIC2_DATA, 0x01);
	outb(PIC1_DATA, (uint8_t)~(1u << 2));
	outb(PIC2_DATA, (uint8_t)~(1u << 1));
}

static int wait_for_sci(void)
{
	route_sci();
	outw(pm.pm1a_sts, PM1_STS_PWRBTN);
	outw(pm.pm1a_en, (uint16_t)(inw(pm.pm1a_en) | PM1_EN_PWRBTN));
	serial_puts("sci: waiting for the power button (PWRBTN_EN set, irq 9 at vector 0x29)\n");
	for (;;)
		__asm__ volatile("sti; hlt; cli" : : : "memory");
	return EXIT_FAILED;
}

/* --- the other CPUs (`-append smp`) --------------------------------------------------- */

void ap_main(void)
{
	fatal_trap_load();
	__atomic_fetch_add(AP_STARTS, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		__atomic_fetch_add(AP_TURNS, 1, __ATOMIC_RELAXED);
		cpu_relax();
	}
}

/* Starts every AP and waits until `total` starts have been counted; 0 if they were not. */
static int start_aps(uint32_t total)
{
	int spins = SPINS;

	smp_start_aps(smp_apic_id());
	while (*AP_STARTS != total && --spins > 0)
		cpu_relax();
	if (spins == 0) {
		serial_puts("smp: only ");
		serial_put_dec(*AP_STARTS);
		serial_puts(" ap starts of ");
		serial_put_dec(total);
		serial_putc('\n');
		return 0;
	}
	return 1;
}

static int find_cpus(void)
{
	if (smp_find_cpus() != SMP_FOUND || smp_ncpus < 2) {
		serial_puts("smp: no ACPI MADT with two or more cpus\n");
		return 0;
	}
	return 1;
}

static int start_aps_before_sleeping(void)
{
	*AP_STARTS = 0;
	*AP_TURNS = 0;
	if (!find_cpus() || !start_aps(smp_ncpus - 1))
		return 0;
	serial_puts("smp: ");
	serial_put_dec(smp_ncpus);
	serial_puts(" cpus, ");
	serial_put_dec(smp_ncpus - 1);
	serial_puts(smp_ncpus == 2 ? " ap started before sleeping\n" : " aps started before sleeping\n");
	return 1;
}

static int restart_aps_after_resuming(void)
{
	uint32_t turns = *AP_TURNS;
	int spins = STILL_SPINS;

	while (--spins > 0)
		cpu_relax();
	if (*AP_TURNS != turns) {
		serial_puts("smp: an ap kept running while asleep\n");
		return 0;
	}
	serial_puts("smp: the aps stood still while asleep (loop count unchanged)\n");
	/* smp.c's variables are in .bss, which QEMU has cleared: the MADT is read again. */
	if (!find_cpus() || !start_aps(2 * (smp_ncpus - 1)))
		return 0;
	serial_puts("smp: ");
	serial_put_dec(smp_ncpus - 1);
	serial_puts(smp_ncpus == 2 ? " ap started again after resuming\n" : " aps started again after resuming\n");
	return 1;
}

static int suspend(const struct mb_info *info)
{
	volatile uint32_t *vector = (volatile uint32_t *)(pm.facs + FACS_WAKING_VECTOR);
	volatile uint32_t *x_vector = (volatile uint32_t *)(pm.facs + FACS_X_WAKING_VECTOR);
	const uint8_t *src;
	uint8_t *dst = (uint8_t *)RESUME_STUB_ADDR;

	if (!ram_free(info, RESUME_STUB_ADDR, 0x1000) || !ram_free(info, PATTERN_ADDR, PATTERN_SIZE)) {
		serial_puts("s3: the memory map does not show the stub page or the pattern as RAM\n");
		return EXIT_MISSING;
	}
	for (src = resume_stub_start; src < resume_stub_end;)
		*dst++ = *src++;
	*vector = RESUME_STUB_ADDR;
	/* A 64-bit vector, when set, takes precedence: this kernel wants the real-mode one. */
	if (rd32(pm.facs, FACS_LENGTH) >= 32) {
		x_vector[0] = 0;
		x_vector[1] = 0;
	}
	pm.magic = PM_STATE_MAGIC;
	pm.print_image = cmdline_has(info, "image");
	pm.smp = cmdline_has(info, "smp");
	pm.pwrbtn = cmdline_has(info, "pwrbtn");
	if (pm.smp && !start_aps_before_sleeping())
		return EXIT_FAILED;
	*(struct pm_state *)PM_STATE_ADDR = pm;
	data_marker = 0x22222222u;
	bss_marker = 0x33333333u;
	fill_pattern();
	if (!pm.pwrbtn && !arm_rtc_alarm(ALARM_SECONDS))
		return EXIT_FAILED;
	outw(pm.pm1a_sts, PM1_STS_WAK | PM1_STS_RTC | PM1_STS_PWRBTN);
	if (!pm.pwrbtn)
		outw(pm.pm1a_en, (uint16_t)(inw(pm.pm1a_en) | PM1_EN_RTC));

	serial_puts("s3: waking vector ");
	put_hex(RESUME_STUB_ADDR, 0);
	if (pm.pwrbtn) {
		serial_puts(", no alarm (the power button wakes it), ");
	} else {
		serial_puts(", rtc alarm in ");
		serial_put_dec(ALARM_SECONDS);
		serial_puts(" s, ");
	}
	put_hex(PATTERN_SIZE, 0);
	serial_puts(" bytes of pattern at ");
	put_hex(PATTERN_ADDR, 0);
	serial_puts("\ns3: sleeping\n");
	enter_sleep_state(pm.s3_typ);
	serial_puts("s3: still running after SLP_EN\n");
	return EXIT_FAILED;
}

void resume_main(void)
{
	uint16_t sts;
	uint32_t bad;

	/* The IDT is in .bss, which QEMU has cleared (see struct pm_state): filled again. */
	fatal_trap_init();
	serial_init();
	serial_puts("resumed from S3\n");
	pm = *(const struct pm_state *)PM_STATE_ADDR;
	if (pm.magic != PM_STATE_MAGIC) {
		serial_puts("s3: the state saved next to the stub is gone\n");
		debug_exit(EXIT_FAILED);
	}
	bad = pattern_mismatch();
	if (bad) {
		serial_puts("s3: pattern lost at ");
		put_hex(bad, 8);
		serial_putc('\n');
		debug_exit(EXIT_FAILED);
	}
	if (pm.print_image) {
		serial_puts("s3: kernel image after resume: .data marker ");
		put_hex(data_marker, 8);
		serial_puts(", .bss marker ");
		put_hex(bss_marker, 8);
		serial_puts(data_marker == 0x11111111u ? " (written back from the file)\n"
						      : " (as left before sleeping)\n");
	}
	sts = inw(pm.pm1a_sts);
	serial_puts("s3: pattern intact, pm1 status: WAK_STS ");
	serial_put_dec(!!(sts & PM1_STS_WAK));
	serial_puts(", RTC_STS ");
	serial_put_dec(!!(sts & PM1_STS_RTC));
	if (pm.pwrbtn) {
		serial_puts(", PWRBTN_STS ");
		serial_put_dec(!!(sts & PM1_STS_PWRBTN));
	}
	serial_putc('\n');
	outw(pm.pm1a_sts, PM1_STS_WAK | PM1_STS_RTC | PM1_STS_PWRBTN);
	*(volatile uint32_t *)(pm.facs + FACS_WAKING_VECTOR) = 0;
	if (pm.smp && !restart_aps_after_resuming())
		debug_exit(EXIT_FAILED);
	debug_exit((sts & PM1_STS_WAK) ? 0x19 : EXIT_FAILED);
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	const struct acpi_header *root, *fadt, *dsdt;
	const uint8_t *dsdt_p;
	int entry_size, addresses;

	fatal_trap_init();
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;
	addresses = cmdline_has(info, "addresses");

	root = walk_root(addresses, &entry_size);
	if (!root)
		return EXIT_MISSING;
	fadt = acpi_find_table(root, entry_size, "FACP");
	if (!fadt) {
		serial_puts("acpi: no fadt (FACP)\n");
		return EXIT_MISSING;
	}
	if (addresses)
		put_addr("fadt", fadt);
	if (!read_fadt((const uint8_t *)fadt, &dsdt_p) || !check_facs(addresses))
		return EXIT_MISSING;
	dsdt = (const struct acpi_header *)dsdt_p;
	if (!acpi_table_ok(dsdt, "DSDT")) {
		serial_puts("acpi: no dsdt with a valid checksum where the fadt says\n");
		return EXIT_MISSING;
	}
	if (addresses)
		put_addr("dsdt", dsdt);
	serial_puts("acpi: dsdt checksum ok\n");
	if (!read_sleep_type(dsdt, "_S3_", &pm.s3_typ) || !read_sleep_type(dsdt, "_S5_", &pm.s5_typ))
		return EXIT_MISSING;
	if (!check_pm_timer() || !enable_acpi_mode((const uint8_t *)fadt))
		return EXIT_FAILED;

	if (cmdline_has(info, "sci"))
		return wait_for_sci();
	if (cmdline_has(info, "s5")) {
		serial_puts("s5: SLP_TYPa ");
		serial_put_dec(pm.s5_typ);
		serial_puts(", powering off\n");
		enter_sleep_state(pm.s5_typ);
		serial_puts("s5: still running after SLP_EN\n");
		return EXIT_FAILED;
	}
	return suspend(info);
}
