/*
 * The `pyvmm` and `pyvmm-system-x86_64` commands as `make setup` installs them: block SIGINT,
 * then exec the interpreter on the launcher script (vmm/cli/launcher.py writes both). A Ctrl-C
 * from here on stays pending across the exec and through the interpreter's start-up, where
 * Python code of no one's could only report it as a KeyboardInterrupt traceback; the script
 * installs pyvmm's handler and then unblocks SIGINT, and a pending one is delivered to it.
 *
 * Built with -DPYTHON="\"/path/to/venv/bin/python3\"" -DSCRIPT="\"/path/to/script.py\"".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	sigset_t interrupt;
	char *args[argc + 3];
	int i;

	sigemptyset(&interrupt);
	sigaddset(&interrupt, SIGINT);
	sigprocmask(SIG_BLOCK, &interrupt, NULL);

	args[0] = PYTHON;
	args[1] = "-S";		/* the script runs site.main() itself, once SIGINT is handled */
	args[2] = SCRIPT;
	for (i = 1; i < argc; i++)
		args[i + 2] = argv[i];
	args[argc + 2] = NULL;
	execv(PYTHON, args);
	fprintf(stderr, "pyvmm: cannot run %s: %s\n", PYTHON, strerror(errno));
	return 126;
}
