"""The gdb target description and register encoding, without KVM: the XML is well formed with
QEMU's feature names and gdb's register order; `g` encodes every register at its size; `P` sets
the right field of the right state part; the x87 tag word is rebuilt from FXSAVE's abridged one;
qXfer pieces add up to the whole."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvm_abi import ffi
from vmm.gdb import registers as R


def state() -> R.State:
    regs = ffi.new("struct kvm_regs *")
    sregs = ffi.new("struct kvm_sregs *")
    xsave = ffi.new("struct kvm_xsave *")
    for i, name in enumerate(R.GPRS):
        setattr(regs, name, 0x1111 * (i + 1))
    regs.rip, regs.rflags = 0x100000, 0x202
    sregs.cs.selector, sregs.fs.base, sregs.gs.base = 0x1B, 0xAAAA, 0xBBBB
    sregs.cr0, sregs.cr3, sregs.efer = 0x80010033, 0x6000, 0x501
    xsave.region[0] = 0x37F  # FCW, FSW 0
    xsave.region[6] = 0x1F80  # MXCSR
    return R.State(regs, sregs, 0xFFFF800000001000, xsave)


def test_the_description_names_qemus_features_in_gdbs_order() -> None:
    root = ET.fromstring(R.TARGET_XML.split(b"?>", 1)[1].split(b">", 1)[1])  # past the prolog and doctype
    assert root.tag == "target" and root.findtext("architecture") == "i386:x86-64"
    features = {f.get("name"): [r.get("name") for r in f.findall("reg")] for f in root.findall("feature")}
    core = features["org.gnu.gdb.i386.core"]
    assert core[:16] == list(R.GPRS) and core[16:18] == ["rip", "eflags"]
    assert core[18:24] == ["cs", "ss", "ds", "es", "fs", "gs"]
    assert core[24:33] == ["fs_base", "gs_base", "k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"]
    assert core[33:41] == [f"st{i}" for i in range(8)]
    assert features["org.gnu.gdb.i386.sse"] == [f"xmm{i}" for i in range(16)] + ["mxcsr"]
    flag_ids = {f.get("id") for f in root.iter("flags")}
    types = {r.get("type") for r in root.iter("reg")}
    assert {"x64_eflags", "x64_cr0", "x64_cr3", "x64_cr4", "x64_efer", "i386_mxcsr"} <= flag_ids
    assert types - flag_ids <= {"int64", "int32", "int", "data_ptr", "code_ptr", "i387_ext", "vec128"}


def test_g_encodes_every_register_at_its_size() -> None:
    s = state()
    text = R.encode(s)
    assert len(text) == 2 * sum(r.size for r in R.REGISTERS)
    assert R.encode(s, R.NUMBER["rip"]) == (0x100000).to_bytes(8, "little").hex()
    assert R.encode(s, R.NUMBER["eflags"]) == (0x202).to_bytes(4, "little").hex()
    assert R.encode(s, R.NUMBER["cs"]) == (0x1B).to_bytes(4, "little").hex()
    assert R.encode(s, R.NUMBER["gs_base"]) == (0xBBBB).to_bytes(8, "little").hex()
    assert R.encode(s, R.NUMBER["k_gs_base"]) == (0xFFFF800000001000).to_bytes(8, "little").hex()
    assert R.encode(s, R.NUMBER["efer"]) == (0x501).to_bytes(8, "little").hex()
    assert R.encode(s, R.NUMBER["mxcsr"]) == (0x1F80).to_bytes(4, "little").hex()
    assert R.encode(s, R.NUMBER["ftag"]) == (0xFFFF).to_bytes(4, "little").hex()  # every register empty


def test_p_sets_the_field_and_names_the_part_to_write_back() -> None:
    s = state()
    cases = {
        "rax": ("regs", lambda: s.regs.rax),
        "rip": ("regs", lambda: s.regs.rip),
        "fs_base": ("sregs", lambda: s.sregs.fs.base),
        "cr3": ("sregs", lambda: s.sregs.cr3),
        "k_gs_base": ("msr", lambda: s.kernel_gs_base),
        "mxcsr": ("xsave", lambda: s.xsave.region[6]),
        "fctrl": ("xsave", lambda: s.xsave.region[0] & 0xFFFF),
    }
    for name, (part, read) in cases.items():
        reg = R.REGISTERS[R.NUMBER[name]]
        assert R.assign(s, R.NUMBER[name], (0x1234).to_bytes(reg.size, "little")) == part, name
        assert read() == 0x1234, name
    xmm3 = R.NUMBER["xmm3"]
    assert R.assign(s, xmm3, bytes(range(16))) == "xsave"
    assert bytes(s.area[160 + 48 : 160 + 64]) == bytes(range(16))
    # every write marks its state component in use in XSTATE_BV (x87: bit 0, SSE: bit 1), or KVM
    # would restore the component's init state over it
    assert int.from_bytes(s.area[512:520], "little") == 0b11
    assert R.assign(s, R.NUMBER["cs"], bytes(4)) is None  # a selector alone cannot be loaded
    assert R.assign(s, R.NUMBER["rax"], bytes(4)) is None  # the wrong size


def test_the_full_tag_word_from_the_abridged_one() -> None:
    st = {0: 1 << 63 | 0x3FFF << 64, 1: 0}  # ST(0) = 1.0: valid; ST(1) = +0.0: zero
    # TOP = 6: ST(0) is physical register 6; physical 6 and 7 in use
    assert R.full_tag(6 << 11, 0b11000000, lambda i: st[i]) == 0xFFFF & ~(0b11 << 12) & ~(0b11 << 14) | (0b01 << 14)


def test_qxfer_pieces_add_up_to_the_whole() -> None:
    got, offset = b"", 0
    while True:
        reply = R.xfer("target.xml", offset, 0x333)
        got += reply[1:].encode()
        offset += 0x333
        if reply[0] == "l":
            break
        assert reply[0] == "m"
    assert got == R.TARGET_XML
    assert R.xfer("i386-64bit.xml", 0, 100) == "E00"
