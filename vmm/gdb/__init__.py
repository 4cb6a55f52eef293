"""A gdb remote stub: the protocol's framing (`packets`) and the stub on the runner's hooks (`stub`)."""
