"""Backend choice (vmm.spp.select): `auto` never picks the kernel backend, the kernel backend needs
an explicit ABI, and a kernel that does not look patched gets a warning, never a probe."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from vmm.errors import ConfigError
from vmm.spp import choice as select
from vmm.spp.choice import choose_backend, describe_backend_choice, kernel_looks_patched

KVM = SimpleNamespace(api_version=12)


def patched(abi: str) -> tuple[bool, str]:
    return True, "stand-in: looks patched"


def stock(abi: str) -> tuple[bool, str]:
    return False, "stand-in: looks stock"


@pytest.mark.parametrize("probe", [patched, stock])
def test_auto_never_selects_the_kernel_backend(probe: select.Probe) -> None:
    # not even where the kernel looks patched: only the user's explicit choice may send SPP numbers
    for kvm in (KVM, None):
        name, why = choose_backend("auto", None, kvm, looks_patched=probe)  # type: ignore[arg-type]
        assert name == "software"
        assert "cannot be probed safely" in why and "KVM_EXIT_X86_RDMSR" in why and "KVM_CAP_HALT_POLL" in why


def test_software_on_request() -> None:
    assert choose_backend("software", None, KVM)[0] == "software"  # type: ignore[arg-type]


def test_kernel_without_abi_is_an_error() -> None:
    with pytest.raises(ConfigError, match="needs --spp-abi"):
        choose_backend("kernel", None, KVM)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "abi", "match"),
    [("kernel", "v9", "not supported"), ("auto", "v12", "only to --spp-backend kernel"), ("fast", None, "unknown")],
)
def test_bad_combinations_are_errors(requested: str, abi: str | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        choose_backend(requested, abi, KVM, looks_patched=patched)  # type: ignore[arg-type]


@pytest.mark.parametrize(("abi", "numbers"), [("rfc-v1", "exit 28"), ("v12", "capability 182")])
def test_kernel_with_abi_is_refused_on_a_stock_looking_host(
    abi: str, numbers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(select.TRUST_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"does not look SPP-patched \(stand-in: looks stock\); refusing"):
        choose_backend("kernel", abi, KVM, looks_patched=stock)  # type: ignore[arg-type]
    name, why = choose_backend("kernel", abi, KVM, looks_patched=patched)  # type: ignore[arg-type]
    assert name == f"kernel:{abi}" and numbers in why and "warning" not in why


def test_trust_override_goes_ahead_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(select.TRUST_ENV, "1")
    name, why = choose_backend("kernel", "v12", KVM, looks_patched=stock)  # type: ignore[arg-type]
    _, warning = why.splitlines()
    assert name == "kernel:v12" and warning.startswith("warning: the running kernel does not look SPP-patched")


def test_describe_backend_choice_is_the_auto_choice() -> None:
    line = describe_backend_choice(KVM)  # type: ignore[arg-type]
    assert line.startswith("SPP backend (auto): software engine") and "API 12" in line


def test_rfc_v1_looks_at_the_kvm_intel_spp_parameter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    param = tmp_path / "spp"
    monkeypatch.setattr(select, "RFC_PARAM", param)
    assert kernel_looks_patched("rfc-v1")[0] is False  # a stock kvm_intel has no such parameter
    param.write_text("N\n")
    ok, seen = kernel_looks_patched("rfc-v1")
    assert not ok and "spp=1" in seen
    param.write_text("Y\n")
    assert kernel_looks_patched("rfc-v1")[0] is True


def test_v12_looks_for_the_patch_functions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kallsyms = tmp_path / "kallsyms"
    monkeypatch.setattr(select, "KALLSYMS", kallsyms)
    assert kernel_looks_patched("v12")[0] is False  # unreadable
    kallsyms.write_text("0000000000000000 T kvm_vm_ioctl\n0000000000000000 t kvm_spp_set_permission_x\t[kvm]\n")
    assert kernel_looks_patched("v12")[0] is False
    kallsyms.write_text("0000000000000000 T kvm_vm_ioctl\n0000000000000000 t kvm_spp_set_permission\t[kvm]\n")
    assert kernel_looks_patched("v12")[0] is True
