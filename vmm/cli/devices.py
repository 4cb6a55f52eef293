"""The devices `-device` can add, listed the way `qemu-system-x86_64 -device help` lists them, so a
runner that greps QEMU's list for a device finds the same line here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    bus: str
    desc: str | None  # QEMU prints no desc for some devices; the line is then as QEMU's

    def line(self) -> str:
        text = f'name "{self.name}", bus {self.bus}'
        return text + (f', desc "{self.desc}"' if self.desc else "")


# QEMU's category and its lines, for the devices pyvmm emulates.
DEVICES: dict[str, list[DeviceInfo]] = {
    "Misc devices": [
        DeviceInfo("isa-debug-exit", "ISA", None),
        DeviceInfo("pc-testdev", "ISA", None),
        DeviceInfo("pci-testdev", "PCI", "PCI Test Device"),
    ],
}


def machine_help() -> str:
    """`-machine help`, in QEMU's shape, for the one machine pyvmm models."""
    return (
        "Supported machines are:\n"
        f"{'pc':<21}Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\n"
        f"{'pc-i440fx-7.2':<21}Standard PC (i440FX + PIIX, 1996) (default)\n"
    )


def cpu_help() -> str:
    """`-cpu help`, in QEMU's shape: the models in QEMU's order (each unversioned name an alias of
    its -v1, as on 7.2's machines), host and max, then the feature names."""
    from vmm.cpu.catalog import MODELS
    from vmm.cpu.models import FEATURES

    lines = ["Available CPUs:"]
    names = {name: "(alias configured by machine type)" for name in MODELS}
    names.update({f"{name}-v1": m.model_id for name, m in MODELS.items()})
    lines += [f"x86 {name:<20}  {names[name]}" for name in sorted(names)]
    lines.append(f"x86 {'host':<20}  processor with all supported host features")
    lines.append(f"x86 {'max':<20}  Enables all features supported by the accelerator in the current host")
    lines += ["", "Recognized CPUID flags:", "  " + " ".join(sorted(FEATURES))]
    return "\n".join(lines) + "\n"


def device_names() -> list[str]:
    return [d.name for infos in DEVICES.values() for d in infos]


def device_help() -> str:
    out = []
    for category, infos in DEVICES.items():
        out.append(f"{category}:")
        out += [d.line() for d in infos]
        out.append("")
    return "\n".join(out) + "\n"
