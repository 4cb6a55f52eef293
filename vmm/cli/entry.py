"""Where a command line goes: a plain `pyvmm run` straight to the launcher, read from the option
table (`vmm.cli.run_args`); everything else (help, the other commands, and every line that reader
declines) through click (`vmm.cli.commands`)."""

from __future__ import annotations


def run_command_line(args: list[str], *, qemu_command: bool = False) -> int:
    """`args` without the program name. `qemu_command`: called as pyvmm-system-x86_64, which takes
    no positional disk image."""
    from vmm.cli.run_args import read_run_line

    line = read_run_line(args)
    if line is None:
        from vmm.cli.commands import main

        return main(args, qemu_command=qemu_command)
    from vmm.cli.launch import start_run
    from vmm.cli.outcome import reported

    image, values = line
    return reported(lambda: start_run(image, values, qemu_command=qemu_command))
