/*
 * mb-fwcfg: reads QEMU's firmware configuration device through its I/O
 * ports (selector 0x510, data 0x511): the signature, the RAM size and the
 * CPU counts. The file directory is left alone: its contents are the
 * machine's business and differ between monitors. Exits with 0x12.
 */
#include "io.h"
#include "kernel.h"
#include "serial.h"

#define FW_CFG_PORT_SEL   0x510
#define FW_CFG_PORT_DATA  0x511

#define FW_CFG_SIGNATURE  0x00	/* "QEMU" */
#define FW_CFG_RAM_SIZE   0x03	/* 64-bit little-endian, bytes */
#define FW_CFG_NB_CPUS    0x05	/* 16-bit little-endian: CPUs at boot */
#define FW_CFG_MAX_CPUS   0x0f	/* 16-bit little-endian */

/*
 * Selecting a key rewinds its data offset to 0; each read of the data port
 * returns the next byte. Numbers are stored little-endian.
 */
static uint64_t fw_cfg_read_le(uint16_t key, int bytes)
{
	uint64_t v = 0;
	int i;

	outw(FW_CFG_PORT_SEL, key);
	for (i = 0; i < bytes; i++)
		v |= (uint64_t)inb(FW_CFG_PORT_DATA) << (8 * i);
	return v;
}

int kmain(uint32_t magic, const struct mb_info *info)
{
	char sig[5];
	int i;

	(void)info;
	if (!kernel_init(magic))
		return EXIT_BAD_MAGIC;

	outw(FW_CFG_PORT_SEL, FW_CFG_SIGNATURE);
	for (i = 0; i < 4; i++) {
		uint8_t c = inb(FW_CFG_PORT_DATA);

		/* A missing device reads 0xff: keep the line printable. */
		sig[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	sig[4] = '\0';
	serial_puts("fw_cfg signature \"");
	serial_puts(sig);
	serial_puts("\"\n");
	if (sig[0] != 'Q' || sig[1] != 'E' || sig[2] != 'M' || sig[3] != 'U')
		return EXIT_MISSING;

	serial_puts("ram size ");
	put_hex(fw_cfg_read_le(FW_CFG_RAM_SIZE, 8), 16);
	serial_puts("\ncpus ");
	serial_put_dec((unsigned long)fw_cfg_read_le(FW_CFG_NB_CPUS, 2));
	serial_puts(", max cpus ");
	serial_put_dec((unsigned long)fw_cfg_read_le(FW_CFG_MAX_CPUS, 2));
	serial_putc('\n');
	return 0x12;
}
