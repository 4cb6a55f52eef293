/*
 * The machine pyvmm presents to a flat image: ports and boot GDT selectors.
 *
 * These values are the guest interface and must agree with vmm/layout.py.
 * The header is usable from C and from assembly (only #defines outside the
 * C-only block), so asm guests and C guests name the same numbers.
 */
#ifndef GUEST_MACHINE_H
#define GUEST_MACHINE_H

/* Ports */
#define COM1_PORT        0x3f8   /* 16550 UART base */
#define UART_THR         0       /* transmit holding register (write) */
#define UART_IER         1       /* interrupt enable */
#define UART_FCR         2       /* FIFO control (write) */
#define UART_LCR         3       /* line control */
#define UART_MCR         4       /* modem control */
#define UART_LSR         5       /* line status (read) */
#define UART_SCR         7       /* scratch register: a side-effect-free port */
#define UART_LSR_THRE    0x20    /* transmit holding register empty */

#define DEBUGCON_PORT    0xe9    /* every byte written is printed */
#define DEBUG_EXIT_PORT  0xf4    /* writing v ends the run with (v << 1) | 1 */
#define UCALL_PORT       0x1000  /* 32-bit OUT of a struct pyvmm_ucall's physical address */

/* Boot GDT selectors (protected and long mode) */
#define SEL_KERNEL_CODE  0x08
#define SEL_KERNEL_DATA  0x10
#define SEL_USER_CODE    0x1b    /* 0x18 | RPL 3 */
#define SEL_USER_DATA    0x23    /* 0x20 | RPL 3 */
#define SEL_TSS          0x28

/* Where the monitor loads flat images */
#define REAL_MODE_LOAD   0x7c00
#define DEFAULT_LOAD     0x100000

#endif
