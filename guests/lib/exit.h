/* Ending a run. */
#ifndef GUEST_EXIT_H
#define GUEST_EXIT_H

/*
 * Write v to the isa-debug-exit port: the run ends with status (v << 1) | 1.
 * If the monitor resumes the guest anyway (no exit device), fall into halt().
 */
__attribute__((noreturn)) void debug_exit(int v);

/*
 * cli; hlt forever. At CPL 0 the monitor ends the run with status 0 (halted
 * with interrupts off). At CPL 3 both instructions raise #GP, which with the
 * boot IDT (limit 0) is a triple fault: the run still ends, as a shutdown.
 */
__attribute__((noreturn)) void halt(void);

#endif
