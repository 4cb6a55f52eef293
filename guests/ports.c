/*
 * ports: one use of each guest-interface port, in this order:
 *   UART          "uart ok\n"
 *   debug console "debugcon ok\n"
 *   ucall SYNC    stage 1, value 42
 *   ucall PRINT   "print ok"
 *   ucall DONE    ends the run, status 0
 */
#include "debugcon.h"
#include "serial.h"
#include "ucall.h"

int main(void)
{
	serial_init();
	serial_puts("uart ok\n");
	debugcon_puts("debugcon ok\n");
	ucall_sync(1, 42);
	ucall_print("print ok");
	ucall_done();
}
