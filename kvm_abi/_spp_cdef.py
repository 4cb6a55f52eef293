"""C declarations of the SPP patch revisions' structs, for ``kvm_abi.spp``'s own ffi.

Patched layouts carry names of their own (``spp_*``), so they cannot be mistaken for, or collide
with, the mainline declarations they would replace. They use the ``__u*`` typedefs of
``kvm_abi._cdef``, whose ffi the SPP ffi includes.
"""

from typing import Final

SPP_CDEF: Final[str] = """
/* RFC v1 (access_map size assumed) and RFC v2: SUBPAGE_MAX_BITMAP 128 */
struct spp_rfc_kvm_subpage {
    __u64 base_gfn;
    __u64 npages;
    __u32 access_map[128];
};
/* v3 .. v7: SUBPAGE_MAX_BITMAP 64 */
struct spp_v3_kvm_subpage {
    __u64 base_gfn;
    __u64 npages;
    __u32 access_map[64];
};
/* v8 .. v12: fixed header, then one __u32 per page */
struct spp_v12_kvm_subpage_hdr {
    __u64 gfn_base;
    __u32 npages;
    __u32 flags;
};
struct spp_v12_kvm_subpage {
    __u64 gfn_base;
    __u32 npages;
    __u32 flags;
    __u32 access_map[];
};
/* The kvm_run exit member, to be cast at run + 32. */
struct spp_exit_rfc {
    __u64 addr;
};
struct spp_exit_v9 {
    __u64 addr;
    __u8  ins_len;
};
struct spp_exit_v12 {
    __u64 addr;
    __u8  insn_len;
};
"""
