/*
 * hello-protected: 32-bit protected mode, paging off. Prints a greeting on
 * the UART and ends with halt() (status 0) rather than returning, which
 * would go through debug_exit(0) and give status 1: the hello guests all
 * end with status 0.
 */
#include "exit.h"
#include "serial.h"

int main(void)
{
	serial_init();
	serial_puts("Hello from 32-bit protected mode\n");
	halt();
}
