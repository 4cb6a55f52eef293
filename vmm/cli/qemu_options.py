"""QEMU's machine options as a kernel test runner passes them: each accepted with one dash or two,
as QEMU accepts them, and translated into what they mean here, or refused by name.

Every option either changes what the guest sees the way QEMU's does, or is accepted because it
changes nothing a guest can see here (`-name`, `-display none`, `-no-user-config`), or is refused
with one line naming it. None is silently ignored where QEMU would give the guest something else.
"""

from __future__ import annotations

from vmm.cpu.models import CpuRequest, parse_cpu
from vmm.errors import ConfigError
from vmm.numbers import parse_on_off
from vmm.record import TupleRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# The options themselves are declared in vmm.cli.option_table (QEMU_MACHINE_OPTIONS).


class QemuMachine(TupleRecord):
    """What the QEMU machine options ask of the machine."""

    irqchip: bool | None = None  # -machine kernel-irqchip=on|off; None: pyvmm's default
    pit: bool = True  # -machine pit=off: no in-kernel 8254
    pit_reinject: bool = True  # kvm-pit.lost_tick_policy: delay (QEMU's default) re-injects lost ticks
    serial: str | None = None  # None: COM1 on stdio; "none": no COM1; "null"; "file:PATH"
    rtc_localtime: bool = False
    cpu: CpuRequest = CpuRequest()  # immutable, so one default is shared


# -global DRIVER.PROP values pyvmm gives a meaning to, by (driver, property).
_LOST_TICK_POLICIES = {"delay": True, "discard": False}


def parse_global(text: str) -> tuple[str, str, str]:
    """'DRIVER.PROP=VALUE' -> (driver, prop, value)."""
    target, eq, value = text.partition("=")
    driver, dot, prop = target.rpartition(".")
    if not eq or not dot or not driver or not prop:
        raise ConfigError(f"-global {text!r} is not DRIVER.PROP=VALUE")
    return driver, prop, value


def split_commas(text: str) -> list[str]:
    """QEMU's comma-separated lists, where ',,' stands for a literal comma."""
    return [part.replace("\0", ",") for part in text.replace(",,", "\0").split(",")]


def parse_props(text: str, what: str, *, leading_type: bool = False) -> tuple[str | None, list[tuple[str, str]]]:
    """QEMU's 'TYPE,key=value,...' (the type only where `leading_type`); ',,' is a literal comma."""
    parts = split_commas(text)
    kind: str | None = None
    if leading_type and parts and "=" not in parts[0]:
        kind = parts.pop(0)
    props = []
    for p in parts:
        key, eq, value = p.partition("=")
        if not eq or not key:
            raise ConfigError(f"{what} {text!r}: {p!r} is not KEY=VALUE")
        props.append((key, value))
    return kind, props


def _on_off(value: str, what: str) -> bool:
    return parse_on_off(value, f"{what}={value} is neither on nor off")


# Machine types that are the PC pyvmm models. q35, microvm and isapc differ in what a guest sees.
PC_MACHINES = ("pc", "pc-i440fx-7.2")


def machine_from_options(kw: dict[str, Any]) -> QemuMachine:
    """Pop the options of QEMU_MACHINE_OPTIONS (and -serial) out of click's values; refuse what
    pyvmm cannot give."""
    irqchip: bool | None = None
    pit = True
    reinject = True
    for text in kw.pop("globals_"):
        driver, prop, value = parse_global(text)
        if (driver, prop) == ("kvm-pit", "lost_tick_policy"):
            if value not in _LOST_TICK_POLICIES:
                raise ConfigError(f"-global kvm-pit.lost_tick_policy={value}: the policy is delay or discard")
            reinject = _LOST_TICK_POLICIES[value]
        else:
            raise ConfigError(f"-global {driver}.{prop} is not supported (kvm-pit.lost_tick_policy is)")
    for text in kw.pop("machine"):
        kind, props = parse_props(text, "-machine", leading_type=True)
        if kind is not None and kind not in PC_MACHINES:
            raise ConfigError(f"-machine {kind} is not supported: pyvmm models QEMU's pc (i440FX) machine")
        for key, value in props:
            if key == "type":
                if value not in PC_MACHINES:
                    raise ConfigError(f"-machine type={value} is not supported: pyvmm models QEMU's pc machine")
            elif key == "accel":
                if value != "kvm":
                    raise ConfigError(f"-machine accel={value} is not supported (pyvmm always runs on KVM)")
            elif key == "pit":
                pit = _on_off(value, "-machine pit")
            elif key == "kernel-irqchip":
                if value == "split":
                    raise ConfigError(
                        "-machine kernel-irqchip=split is not supported: pyvmm has no userspace PIC or IOAPIC"
                    )
                irqchip = _on_off(value, "-machine kernel-irqchip")
            else:
                raise ConfigError(f"-machine property {key!r} is not supported (accel, pit, kernel-irqchip are)")
    kw.pop("vm_name")  # a label for the host's process and windows; the guest never sees it
    for name in ("vga", "nic", "net"):
        value = kw.pop(name)
        if value is not None and value != "none":
            raise ConfigError(f"-{name} {value} is not supported (only -{name} none: pyvmm has no such device)")
    kw.pop("no_user_config")  # pyvmm reads no configuration files
    kw.pop("no_hpet")  # pyvmm never offers an HPET, so the guest sees what -no-hpet gives under QEMU
    rtc_localtime = parse_rtc(kw.pop("rtc"))
    serial = serial_target(kw.pop("serial"), kw.pop("chardevs"), nodefaults=kw.pop("nodefaults"))
    cpu_text = kw.pop("cpu")
    cpu = parse_cpu(cpu_text) if cpu_text is not None else CpuRequest()
    return QemuMachine(irqchip, pit, reinject, serial, rtc_localtime, cpu)


def parse_rtc(text: str | None) -> bool:
    """-rtc: True for base=localtime. clock=host and driftfix=none are what pyvmm's RTC does."""
    if text is None:
        return False
    _, props = parse_props(text, "-rtc")
    localtime = False
    for key, value in props:
        if key == "base" and value in ("utc", "localtime"):
            localtime = value == "localtime"
        elif (key, value) in (("clock", "host"), ("driftfix", "none")):
            pass
        else:
            raise ConfigError(f"-rtc {key}={value} is not supported (base=utc|localtime, clock=host, driftfix=none)")
    return localtime


def _chardev_targets(specs: Sequence[str]) -> dict[str, str]:
    targets: dict[str, str] = {}
    for spec in specs:
        backend, props = parse_props(spec, "-chardev", leading_type=True)
        values = dict(props)
        ident = values.pop("id", None)
        if ident is None:
            raise ConfigError(f"-chardev {spec!r} has no id=")
        if backend == "stdio":
            values.pop("signal", None)
            target = "stdio"
        elif backend == "file":
            path = values.pop("path", None)
            if not path:
                raise ConfigError(f"-chardev {spec!r}: a file backend needs path=")
            target = f"file:{path}"
        elif backend == "null":
            target = "null"
        else:
            raise ConfigError(f"-chardev {backend} is not supported (stdio, file and null are)")
        if values:
            raise ConfigError(f"-chardev {backend} property {sorted(values)[0]!r} is not supported")
        if ident in targets:
            raise ConfigError(f"-chardev id {ident!r} is given twice")
        targets[ident] = target
    return targets


def serial_target(serials: Sequence[str], chardevs: Sequence[str], *, nodefaults: bool) -> str | None:
    """Where COM1 writes: "stdio", "null", "file:PATH", or "none" (no COM1 at all, as QEMU has
    with -serial none, or with -nodefaults and no -serial). None means the default: stdio."""
    targets = _chardev_targets(chardevs)
    if len(serials) > 1:
        raise ConfigError(f"-serial is given {len(serials)} times: pyvmm has only COM1")
    if not serials:
        return "none" if nodefaults else None
    text = serials[0]
    if text.startswith("chardev:"):
        ident = text.removeprefix("chardev:")
        if ident not in targets:
            raise ConfigError(f"-serial {text}: no -chardev with id {ident!r}")
        return targets[ident]
    if text in ("stdio", "mon:stdio"):
        return "stdio"
    if text in ("null", "none"):
        return text
    if text.startswith("file:") and len(text) > len("file:"):
        return text
    raise ConfigError(f"-serial {text} is not supported (stdio, file:PATH, null, none or chardev:ID)")
