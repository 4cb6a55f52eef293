"""Choosing the SPP backend, and saying why."""

from __future__ import annotations

from ..kvm import Kvm


def describe_backend_choice(kvm: Kvm) -> str:
    # The SPP patch was never merged and its exit/capability numbers alias mainline ones, so a
    # stock kernel cannot be asked whether it has SPP: the kernel backend is opt-in only.
    return (
        "SPP backend (auto): software engine: this is a stock KVM (API "
        f"{kvm.api_version}); the kernel backend is used only with --spp-backend kernel on a patched host"
    )
