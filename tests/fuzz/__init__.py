"""Fuzzing pyvmm from outside: command lines and hostile guests through the real `pyvmm` command,
judged by what the README promises. The suite runs a CI-sized set (tests/kvm/test_fuzz_*.py);
`make fuzz` (`python -m tests.fuzz`) runs new seeds and examples for as long as it is asked."""
