/* exit-code: ends at once through the debug-exit port with 21: status 43. */
#include "exit.h"

int main(void)
{
	debug_exit(21);
}
