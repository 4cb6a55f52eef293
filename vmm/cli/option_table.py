"""Every option of `pyvmm run` and `pyvmm restore`, as data.

One table feeds two readers: `vmm.cli.commands` builds click's options from it (help, error
messages, and every command line out of the ordinary), and `vmm.cli.run_args` reads a plain run's
command line from it without importing click, which costs a run more start-up than everything else
pyvmm imports together (bench group 11). Keeping a single table is what keeps the two readers
agreeing; tests/unit/test_run_args.py checks that they do.

Each option with a QEMU spelling takes one dash or two, as QEMU does.
"""

from __future__ import annotations

from vmm.cpu.modes import CpuMode
from vmm.record import TupleRecord

# How an option is given.
VALUE = "value"  # -opt VALUE; given twice, the last one counts
FLAG = "flag"  # -opt alone: True
MULTIPLE = "multiple"  # -opt VALUE, repeatable: every value, in order
SWITCH = "switch"  # --opt / --no-opt: True or False, None when absent

# How a value is read.
TEXT = "text"
PATH = "path"  # a file name, taken as written (click checks only that an existing one is readable)
NUMBER = "number"  # vmm.numbers.parse_int: decimal, 0x hex, K/M/G suffixes
SECONDS = "seconds"  # vmm.numbers.parse_seconds
CHOICE = "choice"


class Opt(TupleRecord):
    decls: tuple[str, ...]  # the spellings; a SWITCH's one entry is "--opt/--no-opt"
    dest: str  # the name its value is passed under
    kind: str = VALUE
    value: str = TEXT
    default: object = None  # for VALUE only; a FLAG defaults to False, a MULTIPLE to ()
    what: str = ""  # a NUMBER's name in an error message ("load address")
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    help: str | None = None
    hidden: bool = False
    show_default: bool = False


def qemu(name: str) -> tuple[str, str]:
    """`-name` and `--name`: QEMU takes either for every option."""
    return (f"-{name}", f"--{name}")


CPU_MODES = tuple(m.value for m in CpuMode)

SNAPSHOT_OPTIONS = [
    Opt(("--snapshot-at",), "snapshot_at", metavar="sync:N|exits:N|spp:N",
        help="Stop at the Nth ucall SYNC, exit or SPP event and write a snapshot (with --snapshot-to)."),
    Opt(("--snapshot-to",), "snapshot_to", value=PATH, metavar="FILE",
        help="Where --snapshot-at writes the snapshot; the run then ends with status 0."),
    Opt(("--snapshot-and-continue",), "snapshot_continue", FLAG,
        help="After writing the snapshot, run on to the end."),
]  # fmt: skip

# The QEMU machine options a kernel test runner passes (read by vmm.cli.qemu_options); the older
# QEMU spellings (-kernel, -m, -smp, ...) are in RUN_OPTIONS with the rest.
QEMU_MACHINE_OPTIONS = [
    Opt(qemu("nodefaults"), "nodefaults", FLAG,
        help="QEMU: no default devices. Without -serial, there is then no COM1."),
    Opt(qemu("global"), "globals_", MULTIPLE, metavar="DRIVER.PROP=VALUE",
        help="QEMU device property defaults: kvm-pit.lost_tick_policy=delay|discard."),
    Opt(("-machine", "--machine", "-M"), "machine", MULTIPLE, metavar="[TYPE][,PROP=VALUE...]",
        help="QEMU machine: type pc; accel=kvm, pit=on|off, kernel-irqchip=on|off."),
    Opt(qemu("name"), "vm_name", metavar="NAME", help="QEMU: the VM's name (a label only)."),
    Opt(qemu("chardev"), "chardevs", MULTIPLE, metavar="BACKEND,id=ID[,path=FILE]",
        help="QEMU character device: stdio, file (path=) or null, used by -serial chardev:ID."),
    Opt(qemu("vga"), "vga", metavar="none", help="QEMU: only 'none' (there is no display)."),
    Opt(qemu("nic"), "nic", metavar="none", help="QEMU: only 'none' (there is no network)."),
    Opt(qemu("net"), "net", metavar="none", help="QEMU: only 'none'."),
    Opt(qemu("no-user-config"), "no_user_config", FLAG, help="QEMU: read no user configuration (there is none)."),
    Opt(qemu("no-hpet"), "no_hpet", FLAG, help="QEMU: no HPET (pyvmm never has one)."),
    Opt(qemu("rtc"), "rtc", metavar="base=utc|localtime", help="QEMU: the RTC's time base [utc]."),
    Opt(qemu("cpu"), "cpu", metavar="MODEL[,+FEAT][,-FEAT][,FEAT=on|off][,vendor=V]...",
        help="QEMU CPU model: host, max, qemu64, kvm64, qemu32, kvm32 [host]; 'help' lists them."),
]  # fmt: skip

RUN_OPTIONS = [*SNAPSHOT_OPTIONS,
    Opt(("--mode",), "mode", value=CHOICE, choices=CPU_MODES,
        help="CPU mode a flat binary starts in [long]; ELF and multiboot images carry their own."),
    Opt(("--load",), "load", value=NUMBER, what="load address",
        help="Guest-physical load address of a flat binary [real: 0x7c00, else 0x100000]."),
    Opt(("--entry",), "entry", value=NUMBER, what="entry point",
        help="Entry point of a flat binary [the load address]."),
    Opt(("--mem",), "mem", value=NUMBER, what="memory size",
        help="Guest RAM in bytes; K/M/G suffixes [128M, as QEMU]."),
    Opt(("-m", "--m"), "qemu_mem", metavar="SIZE",
        help="QEMU spelling of --mem: a number without a suffix is MiB, as in QEMU."),
    Opt(qemu("smp"), "smp", default="1", metavar="N", help="Number of vCPUs (QEMU's 'cpus=N' too)."),
    Opt(qemu("append"), "append", default="", help="Kernel command line (multiboot)."),
    Opt(qemu("initrd"), "initrd", MULTIPLE, metavar="'FILE ARGS,FILE2 ...'",
        help="Multiboot modules, QEMU syntax: comma-separated 'file args' (',,' is a comma); repeatable."),
    Opt(("--module",), "modules", MULTIPLE, metavar="FILE[,ARGS]", help="One multiboot module (repeatable)."),
    Opt(qemu("kernel"), "kernel", metavar="IMAGE", help="QEMU spelling of the IMAGE argument."),
    Opt(("--irqchip/--no-irqchip",), "irqchip", SWITCH,
        help="In-kernel PIC/IOAPIC/LAPIC and PIT [on for ELF, multiboot and SMP; off for flat binaries]."),
    Opt(("--debug-exit",), "debug_exit", metavar="BASE[:SIZE]", help="Where the isa-debug-exit port is [0xf4:4]."),
    Opt(("--testdev",), "testdev", FLAG, help="Add QEMU's pc-testdev."),
    Opt(qemu("device"), "qemu_devices", MULTIPLE, metavar="DEV[,PROPS]",
        help="QEMU spelling: isa-debug-exit,iobase=N,iosize=N or pc-testdev."),
    Opt(qemu("serial"), "serial", MULTIPLE, metavar="stdio|file:PATH|null|none|chardev:ID",
        help="QEMU: where COM1 writes [stdio]; none: no COM1."),
    Opt(qemu("no-reboot"), "no_reboot", FLAG, help="QEMU: a reset or triple fault ends the run with status 0."),
    Opt(qemu("accel"), "accel", hidden=True),
    Opt(qemu("enable-kvm"), "enable_kvm", FLAG, hidden=True),
    Opt(qemu("nographic"), "nographic", FLAG, hidden=True),
    Opt(qemu("display"), "display", hidden=True),
    Opt(qemu("monitor"), "monitor", metavar="stdio|unix:PATH,server,nowait|none",
        help="A small monitor (info registers, x/xp, info spp, stop, cont, quit), as QEMU's."),
    *QEMU_MACHINE_OPTIONS,
    Opt(("--handlers",), "handler_files", MULTIPLE, value=PATH,
        help="Python file whose setup(machine) registers exit handlers (repeatable)."),
    Opt(qemu("gdb"), "gdb", metavar="tcp::PORT|unix:PATH",
        help="Wait for a gdb connection there (QEMU's spelling); the guest stops when gdb connects."),
    Opt(("-s",), "gdb_default", FLAG, help="QEMU's shorthand for -gdb tcp::1234."),
    Opt(("-S",), "gdb_wait", FLAG, help="Stop before the first instruction until the debugger continues."),
    Opt(("--msr-exit",), "msr_exits", MULTIPLE, metavar="INDEX[-LAST][:r|w|rw]",
        help="Send the guest's RDMSR/WRMSR of this MSR to Python (traced, counted, and seen by --handlers "
             "that call on_msr); every other MSR stays in the kernel (repeatable) [rw]."),
    Opt(("--timeout",), "timeout", value=SECONDS, help="Stop the guest after this many seconds."),
    Opt(("--stats",), "stats", FLAG,
        help="Print exits per reason and per vCPU, and SPP events per verdict, at the end."),
    Opt(("--stats-json",), "stats_json", value=PATH, metavar="FILE",
        help="Write the --stats figures to FILE as JSON at the end."),
    Opt(("--trace",), "trace_path", value=PATH,
        help="Write one JSON line per exit (and per unhandled port or MMIO access)."),
    Opt(("--timeline",), "timeline_path", value=PATH, metavar="FILE",
        help="Write the run as a Trace Event Format timeline (Perfetto UI, chrome://tracing)."),
    Opt(("--strict",), "strict", FLAG, help="Unhandled ports/MMIO and bad guest requests stop the run."),
    Opt(("-q", "--quiet"), "quiet", FLAG, help="No summary line on stderr."),
    Opt(("--spp",), "spp_regions", MULTIPLE, metavar="GPA[:MASK]|START-END",
        help="Write-protect a page with a 32-bit sub-page mask (default 0), or a byte range (repeatable)."),
    Opt(("--spp-file",), "spp_files", MULTIPLE, value=PATH, help="File of --spp regions."),
    Opt(("--policy",), "policies", MULTIPLE, metavar="FILE|NAME",
        help="SPP policy: a Python file or a built-in (log-and-deny, allow-rip-range, count-and-stop)."),
    Opt(("--spp-backend",), "spp_backend", value=CHOICE, choices=("auto", "software", "kernel"), default="auto",
        show_default=True, help="Who enforces SPP: the software engine, or a patched kernel (explicit only)."),
    Opt(("--spp-abi",), "spp_abi", value=CHOICE, choices=("rfc-v1", "v12"),
        help="The patched kernel's SPP ABI (with --spp-backend kernel)."),
]  # fmt: skip

RESTORE_OPTIONS = [*SNAPSHOT_OPTIONS,
    Opt(("--mem",), "mem", value=NUMBER, what="memory size", help="Guest RAM; must match the snapshot's."),
    Opt(("-m",), "qemu_mem", metavar="SIZE", help="QEMU spelling of --mem."),
    Opt(qemu("smp"), "smp", metavar="N", help="vCPUs; must match the snapshot's."),
    Opt(("-serial",), "serial", default="stdio", help="stdio (the default), null or none."),
    Opt(("--handlers",), "handler_files", MULTIPLE, value=PATH,
        help="Python file whose setup(machine) registers exit handlers (repeatable)."),
    Opt(("--policy",), "policies", MULTIPLE, metavar="FILE|NAME", help="SPP policy, as for run."),
    Opt(("--timeout",), "timeout", value=SECONDS, help="Stop the guest after this many seconds."),
    Opt(("--stats",), "stats", FLAG,
        help="Print exits per reason and per vCPU, and SPP events per verdict, at the end."),
    Opt(("--stats-json",), "stats_json", value=PATH, metavar="FILE",
        help="Write the --stats figures to FILE as JSON at the end."),
    Opt(("--trace",), "trace_path", value=PATH, help="Write one JSON line per exit."),
    Opt(("--timeline",), "timeline_path", value=PATH, metavar="FILE",
        help="Write the run as a Trace Event Format timeline (Perfetto UI, chrome://tracing)."),
    Opt(("--strict",), "strict", FLAG, help="Unhandled ports/MMIO and bad guest requests stop the run."),
    Opt(("-q", "--quiet"), "quiet", FLAG, help="No summary line on stderr."),
]  # fmt: skip
