"""The SPP patch profiles against the facts recorded for each revision
(shared/reference/spp.md, shared/seed), and the mask/vector conversions."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvm_abi import CData, caps, exits, ffi, ioctls, spp

NAMES = ["rfc-v1", "rfc-v2", "v3-v7", "v9", "v10-v11", "v12"]

# name: (exit reason, capability, kernel skips the write, insn-length field,
#        subpage struct size, max pages per call, how it is enabled)
FACTS: dict[str, tuple[int, int | None, bool, str | None, int, int, spp.Enable]] = {
    "rfc-v1": (28, None, True, None, 528, 128, spp.Enable.MODULE_PARAM),
    "rfc-v2": (28, None, True, None, 528, 128, spp.Enable.MODULE_PARAM),
    "v3-v7": (28, None, True, None, 272, 64, spp.Enable.INIT_SPP_IOCTL),
    "v9": (28, 176, False, "ins_len", 16, 512, spp.Enable.ENABLE_CAP),
    "v10-v11": (29, 179, False, "insn_len", 16, 512, spp.Enable.ENABLE_CAP),
    "v12": (29, 182, False, "insn_len", 16, 512, spp.Enable.ENABLE_CAP),
}

MAINLINE_COLLISIONS = {
    28: "KVM_EXIT_ARM_NISV",
    29: "KVM_EXIT_X86_RDMSR",
    176: "KVM_CAP_PPC_GUEST_DEBUG_SSTEP",
    179: "KVM_CAP_S390_VCPU_RESETS",
    182: "KVM_CAP_HALT_POLL",
}


def test_profile_names() -> None:
    assert list(spp.PROFILES) == NAMES
    for name in NAMES:
        assert spp.profile(name) is spp.PROFILES[name]
    with pytest.raises(KeyError, match="v12"):
        spp.profile("v8")


def test_profiles_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        spp.profile("v12").exit_reason = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_profile_matches_recorded_facts(name: str) -> None:
    p = spp.profile(name)
    exit_reason, cap, skips, insn_field, sizeof, max_pages, enable = FACTS[name]
    assert p.exit_reason == exit_reason
    assert p.cap == cap
    assert p.kernel_skips_instruction is skips
    assert p.insn_len_field == insn_field
    assert p.exit_has_insn_len is (insn_field is not None)
    assert p.subpage_sizeof == sizeof
    assert spp.spp_ffi.sizeof(p.subpage_struct) == sizeof
    assert p.max_pages == max_pages
    assert p.enable is enable
    assert p.ept_addr is spp.AddrUnit.GPA


def test_instruction_skipping_stops_at_v8() -> None:
    # Up to v7 the kernel skipped the faulting write; from v8 RIP stays on it
    # and the exit carries the instruction length instead.
    for p in spp.PROFILES.values():
        assert p.kernel_skips_instruction is (not p.exit_has_insn_len)


@pytest.mark.parametrize("name", NAMES)
def test_exit_fields_sit_at_run_32_and_40(name: str) -> None:
    p = spp.profile(name)
    # The exit union of the mainline kvm_run starts at 32; the SPP member is
    # cast there, so its fields land at 32 + their offset.
    assert ffi.offsetof("struct kvm_run", "hw") == 32
    assert p.addr_offset == 32
    assert spp.RUN_SPP_ADDR_OFFSET + spp.spp_ffi.offsetof(p.exit_struct, "addr") == 32
    if p.insn_len_field is None:
        assert p.insn_len_offset is None
        assert spp.spp_ffi.sizeof(p.exit_struct) == 8
    else:
        assert p.insn_len_offset == 40
        assert spp.RUN_SPP_ADDR_OFFSET + spp.spp_ffi.offsetof(p.exit_struct, p.insn_len_field) == 40


def test_decoding_an_spp_exit_from_a_kvm_run_buffer() -> None:
    run: CData = ffi.new("struct kvm_run *")
    raw: CData = ffi.cast("uint8_t *", run)
    for i, byte in enumerate((0x80, 0x17, 0x00, 0x10, 0, 0, 0, 0)):
        raw[32 + i] = byte
    raw[40] = 3
    exit_: CData = spp.spp_ffi.cast("struct spp_exit_v12 *", raw + spp.RUN_SPP_ADDR_OFFSET)
    assert exit_.addr == 0x10001780
    assert exit_.insn_len == 3
    # The same bytes read through mainline names mean something else.
    assert run.arm_nisv.esr_iss == 0x10001780


def test_subpage_layouts() -> None:
    off = spp.spp_ffi.offsetof
    for struct in ("struct spp_rfc_kvm_subpage", "struct spp_v3_kvm_subpage"):
        assert (off(struct, "base_gfn"), off(struct, "npages"), off(struct, "access_map")) == (0, 8, 16)
    assert spp.spp_ffi.sizeof("struct spp_rfc_kvm_subpage") == 528
    assert spp.spp_ffi.sizeof("struct spp_v3_kvm_subpage") == 272
    v12 = "struct spp_v12_kvm_subpage"
    assert (off(v12, "gfn_base"), off(v12, "npages"), off(v12, "flags"), off(v12, "access_map")) == (0, 8, 12, 16)
    assert spp.spp_ffi.sizeof(v12) == 16
    assert spp.spp_ffi.sizeof("struct spp_v12_kvm_subpage_hdr") == 16


@pytest.mark.parametrize("name", NAMES)
def test_profile_field_list_matches_its_struct(name: str) -> None:
    p = spp.profile(name)
    fields = [field_name for field_name, _ in spp.spp_ffi.typeof(p.subpage_struct).fields]
    assert tuple(fields) == p.subpage_fields
    assert spp.spp_ffi.offsetof(p.subpage_struct, "access_map") == p.subpage_header_size


def test_subpage_buffer_sizes() -> None:
    assert spp.profile("v12").subpage_buffer_size(1) == 20
    assert spp.profile("v12").subpage_buffer_size(512) == 16 + 4 * 512
    assert spp.profile("rfc-v2").subpage_buffer_size(3) == 528
    assert spp.profile("v3-v7").subpage_buffer_size(64) == 272
    with pytest.raises(ValueError):
        spp.profile("v12").subpage_buffer_size(513)
    with pytest.raises(ValueError):
        spp.profile("v3-v7").subpage_buffer_size(0)


def test_ioctl_numbers() -> None:
    assert spp.KVM_SUBPAGES_GET_ACCESS == 0x8008AE49
    assert spp.KVM_SUBPAGES_SET_ACCESS == 0x4008AE4A
    assert spp.KVM_INIT_SPP == 0x4008AE4B
    for p in spp.PROFILES.values():
        assert p.ioctl_get_access == 0x8008AE49
        assert p.ioctl_set_access == 0x4008AE4A
        assert p.ioctl_init_spp == (0x4008AE4B if p.name == "v3-v7" else None)


def test_spp_ioctls_share_a_number_byte_but_not_a_request_with_mainline() -> None:
    # Mainline reused nr 0x49 for KVM_SET_USER_MEMORY_REGION2; the full
    # request numbers still differ, so the kernel cannot confuse them.
    assert ioctls.KVM_SET_USER_MEMORY_REGION2 & 0xFF == spp.KVM_SUBPAGES_GET_ACCESS & 0xFF == 0x49
    spp_numbers = {spp.KVM_SUBPAGES_GET_ACCESS, spp.KVM_SUBPAGES_SET_ACCESS, spp.KVM_INIT_SPP}
    assert not spp_numbers & set(ioctls.ALL_IOCTLS.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_exit_number_collides_with_mainline(name: str) -> None:
    # This is why a profile's numbers must never reach a stock kernel: the
    # same value already means something else there.
    p = spp.profile(name)
    expected = MAINLINE_COLLISIONS[p.exit_reason]
    assert p.exit_reason_collides_with == expected
    assert spp.mainline_exit_name(p) == expected
    assert getattr(exits, expected) == p.exit_reason


@pytest.mark.parametrize("name", [n for n in NAMES if FACTS[n][1] is not None])
def test_every_cap_number_collides_with_mainline(name: str) -> None:
    p = spp.profile(name)
    assert p.cap is not None
    expected = MAINLINE_COLLISIONS[p.cap]
    assert p.cap_collides_with == expected
    assert spp.mainline_cap_name(p) == expected
    assert getattr(caps, expected) == p.cap


def test_profiles_without_a_cap() -> None:
    for name in ("rfc-v1", "rfc-v2", "v3-v7"):
        p = spp.profile(name)
        assert p.cap is None
        assert p.cap_collides_with is None
        assert spp.mainline_cap_name(p) is None


def test_emulator_path_reports_a_gfn() -> None:
    assert spp.profile("rfc-v1").emulator_addr is None
    assert spp.profile("rfc-v2").emulator_addr is None
    for name in ("v3-v7", "v9", "v10-v11", "v12"):
        assert spp.profile(name).emulator_addr is spp.AddrUnit.GFN


def test_unconfirmed_facts_are_flagged() -> None:
    assert spp.profile("rfc-v1").unconfirmed
    assert spp.profile("v10-v11").unconfirmed
    assert not spp.profile("v12").unconfirmed


def test_subpage_constants() -> None:
    assert spp.SUBPAGE_SIZE == 128
    assert spp.SUBPAGES_PER_PAGE == 32
    assert spp.SUBPAGE_SIZE * spp.SUBPAGES_PER_PAGE == 4096
    assert spp.FULL_ACCESS == 0xFFFFFFFF
    assert spp.FULL_VECTOR == 0x5555555555555555


# --- mask <-> vector -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "vector"),
    [
        (0, 0),
        (1, 1),
        (2, 4),
        (3, 5),
        (0x80000000, 1 << 62),
        (0xFFFFFFFF, 0x5555555555555555),
    ],
)
def test_mask_vector_examples(mask: int, vector: int) -> None:
    assert spp.mask_to_vector(mask) == vector
    assert spp.vector_to_mask(vector) == mask


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_mask_roundtrip(mask: int) -> None:
    vector = spp.mask_to_vector(mask)
    assert vector & ~spp.FULL_VECTOR == 0
    assert bin(vector).count("1") == bin(mask).count("1")
    assert spp.vector_to_mask(vector) == mask


@given(st.integers(min_value=0, max_value=(1 << 64) - 1))
def test_vector_roundtrip_or_rejection(vector: int) -> None:
    if vector & ~spp.FULL_VECTOR:
        with pytest.raises(ValueError, match="odd"):
            spp.vector_to_mask(vector)
    else:
        assert spp.mask_to_vector(spp.vector_to_mask(vector)) == vector


@given(st.integers(min_value=0, max_value=31), st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_sub_page_bit_mapping(i: int, mask: int) -> None:
    vector = spp.mask_to_vector(mask)
    assert (vector >> (2 * i)) & 1 == (mask >> i) & 1


@pytest.mark.parametrize("bad", [-1, 1 << 32])
def test_mask_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError):
        spp.mask_to_vector(bad)


@pytest.mark.parametrize("bad", [-1, 1 << 64, 2, 1 << 63])
def test_vector_out_of_range_or_odd(bad: int) -> None:
    with pytest.raises(ValueError):
        spp.vector_to_mask(bad)
