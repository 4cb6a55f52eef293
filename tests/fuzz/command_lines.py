"""Hypothesis strategies for whole `pyvmm` command lines: every option, with values of every kind
(numbers that overflow, are negative, NaN or garbage; paths to nothing, directories, FIFOs,
devices, huge sparse files; QEMU's option syntax with random properties).

Files a run may write (--trace, -serial file:, --snapshot-to, -chardev path=, -gdb unix:) only
ever name paths inside the corpus directory, /dev/null or /dev/full: the fuzzer runs as whoever
runs the suite, root included. Every generated run has a --timeout (a garbage one, or a valid one
of at most MAX_RUN seconds), so none can run unbounded; -S and -s (wait for a debugger) are never
generated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from tests.fuzz.judge import ROOT
from vmm.numbers import parse_seconds

GUESTS = ROOT / "guests" / "build"
MAX_RUN = 2.0  # the longest valid --timeout a generated run gets
SPARSE_SIZE = 3 << 30


@dataclass(frozen=True)
class Corpus:
    """Files made once per session for the strategies to name."""

    inputs: tuple[str, ...]  # images, modules, SPP files, handler and policy files, snapshots
    outputs: tuple[str, ...]  # where a run may write
    images: tuple[str, ...]  # real guests that end by themselves


def make_corpus(where: Path) -> Corpus:
    where.mkdir(parents=True, exist_ok=True)
    d = where / "a-directory"
    d.mkdir(exist_ok=True)
    fifo = where / "a-fifo"
    if not fifo.exists():
        os.mkfifo(fifo)
    empty = where / "empty"
    empty.write_bytes(b"")
    sparse = where / "sparse-3g"
    if not sparse.exists():
        with open(sparse, "wb") as f:
            f.truncate(SPARSE_SIZE)
    garbage = where / "garbage"
    garbage.write_bytes(bytes(range(256)) * 4)
    loop = where / "link-loop"
    if not loop.is_symlink():
        loop.symlink_to(loop.name)
    unreadable = where / "unreadable"
    if not unreadable.exists():
        unreadable.write_bytes(b"\x90" * 16)
        unreadable.chmod(0)
    handlers = {
        "syntax.py": "def setup(m:\n",
        "raises.py": "def setup(m):\n    raise RuntimeError('boom')\n",
        "exits.py": "import sys\nsys.exit(3)\n",
        "no-setup.py": "x = 1\n",
        "returns.py": "def setup(m):\n    return 'not a verdict'\n",
    }
    for name, text in handlers.items():
        (where / name).write_text(text)
    spp = where / "spp-garbage"
    spp.write_text("0x200000:0xzz\n# comment\n0-0xffffffffffffffff\n-1\n\n0x1000:0x100000000\n")
    snapshot = where / "not-a-snapshot"
    snapshot.write_bytes(b"PYVMSNAP" + b"\xff" * 56)
    inputs = (
        str(where / "missing"), "", ".", "/", str(d), str(fifo), "/dev/zero", "/dev/null", "/dev/urandom",
        str(empty), str(sparse), str(garbage), str(loop), str(unreadable), str(spp), str(snapshot),
        *(str(where / n) for n in handlers), "a" * 5000, "new\nline", "-", "--", "/proc/self/status",
    )  # fmt: skip
    out_dir = where / "out"
    out_dir.mkdir(exist_ok=True)
    outputs = (
        str(out_dir / "file"), str(out_dir / "missing-dir" / "file"), str(out_dir), str(fifo), "/dev/null",
        "/dev/full", str(out_dir / ("b" * 300)),
    )  # fmt: skip
    images = tuple(str(GUESTS / f"{n}.bin") for n in ("hello-long", "exit-code", "ports", "ucall-edges", "hello-real"))
    return Corpus(inputs, outputs, images)


def _safe_text(max_size: int = 24) -> st.SearchStrategy[str]:
    # argv cannot hold NUL, and a lone surrogate cannot be encoded into it
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=max_size)


NASTY_NUMBERS = [
    "", "0", "-0", "-1", "1", "4096", "0x", "0x0", "0xg", "0b101", "0o777", "1e3", "1e400", "-1e400", "nan",
    "NaN", "inf", "-inf", "+inf", "1_000", "１２", "٣", "9" * 70, "0x" + "f" * 70, "18446744073709551616",
    "-9223372036854775809", "16M", "16m", "1G", "1T", "1P", "-1K", "0x10M", "1.5M", "1e-300", "5e-324",
    " 1", "1 ", "1,2", "cpus=2", "cpus=0", "cpus=-1", "2,sockets=2", "0x1000:0x100000000", "1:2:3",
]  # fmt: skip


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY_NUMBERS),
        st.integers(-(2**70), 2**70).map(str),
        st.integers(-(2**70), 2**70).map(lambda n: hex(n)),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.tuples(st.integers(-(2**40), 2**40), st.sampled_from(["K", "M", "G", "T", "k", "X", ""])).map(
            lambda t: f"{t[0]}{t[1]}"
        ),
        _safe_text(),
    )


def timeouts() -> st.SearchStrategy[str]:
    """A --timeout value: garbage, or valid and short; a valid long one is cut to MAX_RUN."""

    def bounded(text: str) -> str:
        try:
            seconds = parse_seconds(text)
        except ValueError:
            return text
        return text if seconds <= MAX_RUN else repr(MAX_RUN)

    return st.one_of(numbers().map(bounded), st.floats(0.001, MAX_RUN).map(repr))


def effective_timeout(argv: list[str]) -> float | None:
    """The --timeout the run obeys (click keeps the last one), if it is a valid one."""
    value = None
    for i, arg in enumerate(argv[:-1]):
        if arg == "--timeout":
            value = argv[i + 1]
    if value is None:
        return None
    try:
        return parse_seconds(value)
    except ValueError:
        return None


QEMU_DEVICES = ["isa-debug-exit", "pc-testdev", "pci-testdev", "e1000", "help", "?", "", ","]
DEVICE_PROPS = ["iobase", "iosize", "id", "bus", "addr", ""]
CPU_MODELS = ["host", "max", "qemu64", "kvm64", "qemu32", "kvm32", "pentium", "help", ""]
CPU_FEATURES = ["x2apic", "la57", "svm", "vmx", "xsave", "avx512f", "tsc-deadline", "bogus", ""]
CPU_PROPS = ["vendor", "phys-bits", "host-phys-bits", "level", "xlevel", "model-id", "family"]


def _props(names: list[str], values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    prop = st.tuples(st.sampled_from(names), values).map(lambda kv: f"{kv[0]}={kv[1]}" if kv[0] else kv[1])
    return st.lists(prop, max_size=4).map(",".join)


def qemu_device() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(QEMU_DEVICES), _props(DEVICE_PROPS, numbers())).map(
        lambda t: f"{t[0]},{t[1]}" if t[1] else t[0]
    )


def qemu_cpu() -> st.SearchStrategy[str]:
    feature = st.tuples(st.sampled_from(["+", "-", ""]), st.sampled_from(CPU_FEATURES)).map("".join)
    prop = st.one_of(feature, _props(CPU_PROPS, st.one_of(numbers(), st.sampled_from(["on", "off", "GenuineIntel"]))))
    return st.tuples(st.sampled_from(CPU_MODELS), st.lists(prop, max_size=4)).map(lambda t: ",".join([t[0], *t[1]]))


def qemu_machine() -> st.SearchStrategy[str]:
    names = ["accel", "pit", "kernel-irqchip", "type", "usb", ""]
    values = st.sampled_from(["kvm", "tcg", "on", "off", "split", "yes", "", "1"])
    return st.tuples(st.sampled_from(["pc", "q35", "", "none", "help"]), _props(names, values)).map(
        lambda t: ",".join(x for x in t if x) or ""
    )


def option_pairs(c: Corpus) -> st.SearchStrategy[list[str]]:
    """One option and its value(s), as argv items."""
    inp, out = st.sampled_from(c.inputs), st.sampled_from(c.outputs)
    gdb = st.sampled_from(["tcp::0", "tcp::99999", "tcp:bogus", "tcp::-1", "garbage", "unix:", "stdio"]) | out.map(
        lambda p: f"unix:{p}"
    )
    serial = st.one_of(
        st.sampled_from(["stdio", "null", "none", "vc", "pty", "chardev:c0", "chardev:", "file:", "mon:stdio"]),
        out.map(lambda p: f"file:{p}"),
    )
    chardev = st.one_of(
        st.sampled_from(["stdio,id=c0", "null,id=c0", "socket,id=c0", "file,id=c0", "stdio", "file,path=x"]),
        out.map(lambda p: f"file,id=c0,path={p}"),
    )
    spp = st.one_of(
        numbers(),
        st.tuples(numbers(), numbers()).map(lambda t: f"{t[0]}:{t[1]}"),
        st.tuples(numbers(), numbers()).map(lambda t: f"{t[0]}-{t[1]}"),
    )
    choices = {
        "--mode": st.sampled_from(["real", "protected", "long", "LONG", "", "x"]),
        "--spp-backend": st.sampled_from(["auto", "software", "kernel", "bogus"]),
        "--spp-abi": st.sampled_from(["rfc-v1", "v12", "v0", ""]),
        "--policy": st.one_of(st.sampled_from(["log-and-deny", "allow-rip-range", "count-and-stop", "nope"]), inp),
        "--snapshot-at": st.one_of(st.tuples(st.sampled_from(["sync", "exits", "spp", "x"]), numbers()).map(":".join),
                                   _safe_text()),
        "-rtc": st.sampled_from(["base=utc", "base=localtime", "base=2006-06-17", "clock=vm", "driftfix=slew", ""]),
        "-global": st.sampled_from(["kvm-pit.lost_tick_policy=delay", "kvm-pit.lost_tick_policy=x", "a.b=c", "x"]),
        "-accel": st.sampled_from(["kvm", "tcg", "kvm,thread=multi", ""]),
        "-display": st.sampled_from(["none", "gtk", ""]),
        "-monitor": st.sampled_from(["none", "stdio", ""]),
        "-append": _safe_text(64),
        "-name": _safe_text(),
    }  # fmt: skip
    valued = {
        **{k: numbers() for k in ("--load", "--entry", "--mem", "-m", "-smp", "--debug-exit", "--msr-exit")},
        "--timeout": timeouts(),
        "--spp": spp,
        **{k: inp for k in ("-kernel", "--module", "--spp-file", "--handlers")},
        "-initrd": st.lists(st.tuples(inp, _safe_text(8)).map(" ".join), min_size=1, max_size=3).map(",".join),
        **{k: out for k in ("--trace", "--snapshot-to")},
        "-serial": serial, "-chardev": chardev, "-gdb": gdb,
        "-device": qemu_device(), "-cpu": qemu_cpu(), "-machine": qemu_machine(), "-M": qemu_machine(),
        **choices,
    }  # fmt: skip
    flags = [
        "--stats", "--strict", "-q", "--irqchip", "--no-irqchip", "--testdev", "-no-reboot", "-nodefaults",
        "-enable-kvm", "-nographic", "--snapshot-and-continue", "-no-hpet", "--bogus", "-xyz", "-", "--",
    ]  # fmt: skip
    with_value = st.sampled_from(sorted(valued)).flatmap(lambda k: valued[k].map(lambda v: [k, v]))
    return st.one_of(with_value, st.sampled_from(flags).map(lambda f: [f]))


@st.composite
def command_lines(draw: st.DrawFn, c: Corpus) -> list[str]:
    """`run IMAGE OPTIONS --timeout T`, now and then `restore`, `info` or a bare garbage verb."""
    verb = draw(st.sampled_from(["run"] * 8 + ["restore", "info", "bogus"]))
    argv = [verb]
    if verb in ("run", "restore"):
        argv.append(draw(st.one_of(st.sampled_from(c.images), st.sampled_from(c.inputs))))
        # the run's own bound comes first, so a generated --timeout (valid ones are short) overrides it
        argv += ["--timeout", repr(MAX_RUN)]
        for pair in draw(st.lists(option_pairs(c), max_size=6)):
            argv += pair
    return argv
