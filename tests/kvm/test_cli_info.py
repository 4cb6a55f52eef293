"""`pyvmm info` reports the KVM API version, the capabilities pyvmm uses and the SPP backend."""

from __future__ import annotations

import re

import pytest
from conftest import pyvmm

pytestmark = pytest.mark.kvm


def test_info_reports_version_capabilities_and_spp_backend() -> None:
    proc = pyvmm("info")
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    lines = out.splitlines()

    assert "KVM API version: 12" in lines
    caps = dict(re.findall(r"^  ([A-Z0-9_]+)\s+(\d+)$", out, re.MULTILINE))
    # pyvmm depends on both: read-only slots for write protection, sync regs for RIP on every exit
    assert int(caps["READONLY_MEM"]) > 0
    assert int(caps["SYNC_REGS"]) > 0
    assert any(line.startswith("SPP backend") for line in lines)
    assert proc.stderr == b""
