"""Benchmarks of the exit path: pyvmm's full path next to a C monitor (and QEMU where installed)."""
