/* hello-long: 64-bit long mode. Prints a greeting on the UART, halts (status 0). */
#include "exit.h"
#include "serial.h"

int main(void)
{
	serial_init();
	serial_puts("Hello from 64-bit long mode\n");
	halt();
}
