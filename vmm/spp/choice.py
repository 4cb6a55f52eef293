"""Choosing the SPP backend, and saying why.

The SPP patch was never merged, and every number it uses is also a mainline number with another
meaning: its exits (28, 29) are KVM_EXIT_ARM_NISV and KVM_EXIT_X86_RDMSR, and its capability (182)
is KVM_CAP_HALT_POLL. Asking a stock kernel about them (KVM_CHECK_EXTENSION, KVM_ENABLE_CAP)
gets an answer about something else, so there is no safe probe. `auto` therefore always means
the software engine. The kernel backend is used only when the user names it together with the
patch's ABI, and even then the only check is a look at the running kernel that involves no KVM
call: it can warn, but it cannot prove anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kvm_abi.spp import mainline_cap_name, mainline_exit_name, profile
from vmm.errors import ConfigError

if TYPE_CHECKING:
    from vmm.kvm.system import Kvm

KERNEL_ABIS = ("rfc-v1", "v12")  # the profiles vmm.spp.kernel implements
REQUESTS = ("auto", "software", "kernel")

# Read-only places that show the patch without a KVM call: the RFC's kvm_intel module parameter,
# and the v12 patch's functions in the kernel's symbol table.
RFC_PARAM = Path("/sys/module/kvm_intel/parameters/spp")
KALLSYMS = Path("/proc/kallsyms")
_V12_SYMBOL = re.compile(rb"\s[tT] kvm_spp_(?:set|get)_permission(?:\s|$)", re.MULTILINE)

Probe = Callable[[str], tuple[bool, str]]


TRUST_ENV = "PYVMM_SPP_TRUST_KERNEL"


def kernel_looks_patched(abi: str) -> tuple[bool, str]:
    """(whether the running kernel looks like it carries the `abi` SPP patch, what was seen).

    A heuristic, not a probe: a patched kernel without these marks (symbols hidden, a renamed
    parameter) reads as unpatched; PYVMM_SPP_TRUST_KERNEL=1 then overrides the refusal.
    """
    if abi == "rfc-v1":
        try:
            value = RFC_PARAM.read_text().strip()
        except OSError:
            return False, f"kvm_intel has no 'spp' module parameter ({RFC_PARAM} is missing)"
        if value not in ("Y", "1"):
            return False, f"kvm_intel's 'spp' parameter is {value!r}: load kvm_intel with spp=1"
        return True, "kvm_intel has spp=1"
    try:
        symbols = KALLSYMS.read_bytes()
    except OSError as e:
        return False, f"cannot read {KALLSYMS} to look for the patch's functions ({e.strerror})"
    if _V12_SYMBOL.search(symbols):
        return True, "the kernel has the patch's kvm_spp_*_permission functions"
    return False, f"{KALLSYMS} lists no kvm_spp_set_permission/kvm_spp_get_permission"


def choose_backend(
    requested: str, abi: str | None, kvm: Kvm | None, *, looks_patched: Probe = kernel_looks_patched
) -> tuple[str, str]:
    """(backend name, why) for `--spp-backend requested --spp-abi abi`.

    The name is "software", "kernel:rfc-v1" or "kernel:v12". `why` may carry a second line
    starting with "warning:" when the kernel backend was asked for on a kernel that does not
    look patched. A request that cannot work raises ConfigError.
    """
    if requested not in REQUESTS:
        raise ConfigError(f"unknown SPP backend {requested!r} (choose {', '.join(REQUESTS)})")
    if requested != "kernel":
        if abi is not None:
            raise ConfigError(f"--spp-abi {abi} applies only to --spp-backend kernel")
        if requested == "software":
            return "software", "software engine, as requested"
        return "software", _why_auto(kvm)
    if abi is None:
        raise ConfigError(
            "--spp-backend kernel needs --spp-abi (rfc-v1 or v12): the SPP patch's numbers differ by "
            "revision and alias mainline ones, so pyvmm will not guess which kernel this is"
        )
    if abi not in KERNEL_ABIS:
        choose = " or ".join(KERNEL_ABIS)
        raise ConfigError(f"--spp-abi {abi!r} is not supported by the kernel backend (choose {choose})")
    p = profile(abi)
    uses = f"exit {p.exit_reason} (mainline {mainline_exit_name(p)})"
    cap_name = mainline_cap_name(p)
    if cap_name is not None:
        uses += f" and capability {p.cap} (mainline {cap_name})"
    why = f"kernel:{abi} backend, as requested: pyvmm reads {uses} as the SPP patch's"
    patched, seen = looks_patched(abi)
    if not patched:
        # Sending the patch's numbers to a stock kernel would reach other requests (ENABLE_CAP 182
        # is HALT_POLL there), so refuse unless the user vouches for a kernel the check misses.
        if os.environ.get(TRUST_ENV) != "1":
            raise ConfigError(
                f"the running kernel does not look SPP-patched ({seen}); refusing to send the kernel:{abi} "
                f"backend's numbers to it (set {TRUST_ENV}=1 if it is patched and the check is wrong)"
            )
        why += f"\nwarning: the running kernel does not look SPP-patched ({seen}); going ahead as {TRUST_ENV}=1 says"
    return f"kernel:{abi}", why


def _why_auto(kvm: Kvm | None) -> str:
    v12 = profile("v12")
    api = f" (API {kvm.api_version})" if kvm is not None else ""
    return (
        f"software engine: this KVM{api} is taken to be stock, because a kernel cannot be probed safely for "
        f"the unmerged SPP patch, whose numbers alias mainline ones (exit {v12.exit_reason} = "
        f"{mainline_exit_name(v12)}, capability {v12.cap} = {mainline_cap_name(v12)}); the kernel backend is "
        f"used only with --spp-backend kernel --spp-abi {'|'.join(KERNEL_ABIS)} on a patched host"
    )


def describe_backend_choice(kvm: Kvm) -> str:
    """The line `pyvmm info` prints about SPP."""
    _, why = choose_backend("auto", None, kvm)
    return f"SPP backend (auto): {why}"
