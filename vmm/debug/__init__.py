"""Guest debugging: breakpoints, watchpoints and single steps on KVM's guest-debug support."""
