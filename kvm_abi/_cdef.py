"""C declarations of the x86_64 KVM ABI and of the libc calls a VMM makes.

Layouts follow ``linux/kvm.h`` and ``asm/kvm.h``; where mainline grew a
member after 6.1 the mainline shape is used, and ``NEWER_THAN_6_1`` names the
header macro whose presence shows that a header has it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: that costs start-up time
if TYPE_CHECKING:
    from typing import Final

# The kernel's fixed-width names keep the declarations below comparable, line
# by line, with the uapi headers they must agree with.
TYPES: Final[str] = """
typedef uint8_t  __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
typedef int8_t   __s8;
typedef int16_t  __s16;
typedef int32_t  __s32;
typedef int64_t  __s64;
"""

X86_STRUCTS: Final[str] = """
struct kvm_regs {
    __u64 rax, rbx, rcx, rdx;
    __u64 rsi, rdi, rsp, rbp;
    __u64 r8, r9, r10, r11;
    __u64 r12, r13, r14, r15;
    __u64 rip, rflags;
};

struct kvm_segment {
    __u64 base;
    __u32 limit;
    __u16 selector;
    __u8  type;
    __u8  present, dpl, db, s, l, g, avl;
    __u8  unusable;
    __u8  padding;
};

struct kvm_dtable {
    __u64 base;
    __u16 limit;
    __u16 padding[3];
};

struct kvm_sregs {
    struct kvm_segment cs, ds, es, fs, gs, ss;
    struct kvm_segment tr, ldt;
    struct kvm_dtable gdt, idt;
    __u64 cr0, cr2, cr3, cr4, cr8;
    __u64 efer;
    __u64 apic_base;
    __u64 interrupt_bitmap[4];
};

struct kvm_sregs2 {
    struct kvm_segment cs, ds, es, fs, gs, ss;
    struct kvm_segment tr, ldt;
    struct kvm_dtable gdt, idt;
    __u64 cr0, cr2, cr3, cr4, cr8;
    __u64 efer;
    __u64 apic_base;
    __u64 flags;
    __u64 pdptrs[4];
};

struct kvm_fpu {
    __u8  fpr[8][16];
    __u16 fcw;
    __u16 fsw;
    __u8  ftwx;
    __u8  pad1;
    __u16 last_opcode;
    __u64 last_ip;
    __u64 last_dp;
    __u8  xmm[16][16];
    __u32 mxcsr;
    __u32 pad2;
};

struct kvm_msr_entry {
    __u32 index;
    __u32 reserved;
    __u64 data;
};

struct kvm_msrs {
    __u32 nmsrs;
    __u32 pad;
    struct kvm_msr_entry entries[];
};

struct kvm_msr_list {
    __u32 nmsrs;
    __u32 indices[];
};

struct kvm_msr_filter_range {
    __u32 flags;
    __u32 nmsrs;
    __u32 base;
    __u8 *bitmap;
};

struct kvm_msr_filter {
    __u32 flags;
    struct kvm_msr_filter_range ranges[16];
};

struct kvm_cpuid_entry2 {
    __u32 function;
    __u32 index;
    __u32 flags;
    __u32 eax;
    __u32 ebx;
    __u32 ecx;
    __u32 edx;
    __u32 padding[3];
};

struct kvm_cpuid2 {
    __u32 nent;
    __u32 padding;
    struct kvm_cpuid_entry2 entries[];
};

struct kvm_pit_channel_state {
    __u32 count;
    __u16 latched_count;
    __u8  count_latched;
    __u8  status_latched;
    __u8  status;
    __u8  read_state;
    __u8  write_state;
    __u8  write_latch;
    __u8  rw_mode;
    __u8  mode;
    __u8  bcd;
    __u8  gate;
    __s64 count_load_time;
};

struct kvm_pit_state2 {
    struct kvm_pit_channel_state channels[3];
    __u32 flags;
    __u32 reserved[9];
};

struct kvm_pic_state {
    __u8 last_irr;
    __u8 irr;
    __u8 imr;
    __u8 isr;
    __u8 priority_add;
    __u8 irq_base;
    __u8 read_reg_select;
    __u8 poll;
    __u8 special_mask;
    __u8 init_state;
    __u8 auto_eoi;
    __u8 rotate_on_auto_eoi;
    __u8 special_fully_nested_mode;
    __u8 init4;
    __u8 elcr;
    __u8 elcr_mask;
};

struct kvm_ioapic_state {
    __u64 base_address;
    __u32 ioregsel;
    __u32 id;
    __u32 irr;
    __u32 pad;
    union {
        __u64 bits;
        struct {
            __u8 vector;
            __u8 delivery_mode:3;
            __u8 dest_mode:1;
            __u8 delivery_status:1;
            __u8 polarity:1;
            __u8 remote_irr:1;
            __u8 trig_mode:1;
            __u8 mask:1;
            __u8 reserve:7;
            __u8 reserved[4];
            __u8 dest_id;
        } fields;
    } redirtbl[24];
};

struct kvm_lapic_state {
    char regs[1024];
};

struct kvm_debug_exit_arch {
    __u32 exception;
    __u32 pad;
    __u64 pc;
    __u64 dr6;
    __u64 dr7;
};

struct kvm_guest_debug_arch {
    __u64 debugreg[8];
};

struct kvm_vcpu_events {
    struct {
        __u8  injected;
        __u8  nr;
        __u8  has_error_code;
        __u8  pending;
        __u32 error_code;
    } exception;
    struct {
        __u8 injected;
        __u8 nr;
        __u8 soft;
        __u8 shadow;
    } interrupt;
    struct {
        __u8 injected;
        __u8 pending;
        __u8 masked;
        __u8 pad;
    } nmi;
    __u32 sipi_vector;
    __u32 flags;
    struct {
        __u8 smm;
        __u8 pending;
        __u8 smm_inside_nmi;
        __u8 latched_init;
    } smi;
    struct {
        __u8 pending;
    } triple_fault;
    __u8  reserved[26];
    __u8  exception_has_payload;
    __u64 exception_payload;
};

struct kvm_debugregs {
    __u64 db[4];
    __u64 dr6;
    __u64 dr7;
    __u64 flags;
    __u64 reserved[9];
};

struct kvm_xsave {
    __u32 region[1024];
    __u32 extra[];
};

struct kvm_xcr {
    __u32 xcr;
    __u32 reserved;
    __u64 value;
};

struct kvm_xcrs {
    __u32 nr_xcrs;
    __u32 flags;
    struct kvm_xcr xcrs[16];
    __u64 padding[16];
};

struct kvm_sync_regs {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_vcpu_events events;
};
"""

GENERIC_STRUCTS: Final[str] = """
struct kvm_userspace_memory_region {
    __u32 slot;
    __u32 flags;
    __u64 guest_phys_addr;
    __u64 memory_size;
    __u64 userspace_addr;
};

struct kvm_userspace_memory_region2 {
    __u32 slot;
    __u32 flags;
    __u64 guest_phys_addr;
    __u64 memory_size;
    __u64 userspace_addr;
    __u64 guest_memfd_offset;
    __u32 guest_memfd;
    __u32 pad1;
    __u64 pad2[14];
};

struct kvm_irq_level {
    union {
        __u32 irq;
        __s32 status;
    };
    __u32 level;
};

struct kvm_irqchip {
    __u32 chip_id;
    __u32 pad;
    union {
        char dummy[512];
        struct kvm_pic_state pic;
        struct kvm_ioapic_state ioapic;
    } chip;
};

struct kvm_pit_config {
    __u32 flags;
    __u32 pad[15];
};

struct kvm_hyperv_exit {
    __u32 type;
    __u32 pad1;
    union {
        struct {
            __u32 msr;
            __u32 pad2;
            __u64 control;
            __u64 evt_page;
            __u64 msg_page;
        } synic;
        struct {
            __u64 input;
            __u64 result;
            __u64 params[2];
        } hcall;
        struct {
            __u32 msr;
            __u32 pad2;
            __u64 control;
            __u64 status;
            __u64 send_page;
            __u64 recv_page;
            __u64 pending_page;
        } syndbg;
    } u;
};

struct kvm_xen_exit {
    __u32 type;
    union {
        struct {
            __u32 longmode;
            __u32 cpl;
            __u64 input;
            __u64 result;
            __u64 params[6];
        } hcall;
    } u;
};

struct kvm_run {
    __u8  request_interrupt_window;
    __u8  immediate_exit;
    __u8  padding1[6];

    __u32 exit_reason;
    __u8  ready_for_interrupt_injection;
    __u8  if_flag;
    __u16 flags;

    __u64 cr8;
    __u64 apic_base;

    union {
        struct {
            __u64 hardware_exit_reason;
        } hw;
        struct {
            __u64 hardware_entry_failure_reason;
            __u32 cpu;
        } fail_entry;
        struct {
            __u32 exception;
            __u32 error_code;
        } ex;
        struct {
            __u8  direction;
            __u8  size;
            __u16 port;
            __u32 count;
            __u64 data_offset;
        } io;
        struct {
            struct kvm_debug_exit_arch arch;
        } debug;
        struct {
            __u64 phys_addr;
            __u8  data[8];
            __u32 len;
            __u8  is_write;
        } mmio;
        struct {
            __u64 phys_addr;
            __u8  data[8];
            __u32 len;
            __u8  is_write;
        } iocsr_io;
        struct {
            __u64 nr;
            __u64 args[6];
            __u64 ret;
            /* 6.1 has "__u32 longmode; __u32 pad;" here; mainline overlays a
               __u64 flags on the same 8 bytes, so both spellings work. */
            union {
                __u32 longmode;
                __u64 flags;
            };
        } hypercall;
        struct {
            __u64 rip;
            __u32 is_write;
            __u32 pad;
        } tpr_access;
        struct {
            __u8  icptcode;
            __u16 ipa;
            __u32 ipb;
        } s390_sieic;
        __u64 s390_reset_flags;
        struct {
            __u64 trans_exc_code;
            __u32 pgm_code;
        } s390_ucontrol;
        struct {
            __u32 dcrn;
            __u32 data;
            __u8  is_write;
        } dcr;
        struct {
            __u32 suberror;
            __u32 ndata;
            __u64 data[16];
        } internal;
        struct {
            __u32 suberror;
            __u32 ndata;
            __u64 flags;
            union {
                struct {
                    __u8 insn_size;
                    __u8 insn_bytes[15];
                };
            };
        } emulation_failure;
        struct {
            __u64 gprs[32];
        } osi;
        struct {
            __u64 nr;
            __u64 ret;
            __u64 args[9];
        } papr_hcall;
        struct {
            __u16 subchannel_id;
            __u16 subchannel_nr;
            __u32 io_int_parm;
            __u32 io_int_word;
            __u32 ipb;
            __u8  dequeued;
        } s390_tsch;
        struct {
            __u32 epr;
        } epr;
        struct {
            __u32 type;
            __u32 ndata;
            union {
                __u64 flags;
                __u64 data[16];
            };
        } system_event;
        struct {
            __u64 addr;
            __u8  ar;
            __u8  reserved;
            __u8  fc;
            __u8  sel1;
            __u16 sel2;
        } s390_stsi;
        struct {
            __u8 vector;
        } eoi;
        struct kvm_hyperv_exit hyperv;
        struct {
            __u64 esr_iss;
            __u64 fault_ipa;
        } arm_nisv;
        struct {
            __u8  error;
            __u8  pad[7];
            __u32 reason;
            __u32 index;
            __u64 data;
        } msr;
        struct kvm_xen_exit xen;
        struct {
            unsigned long extension_id;
            unsigned long function_id;
            unsigned long args[6];
            unsigned long ret[2];
        } riscv_sbi;
        struct {
            unsigned long csr_num;
            unsigned long new_value;
            unsigned long write_mask;
            unsigned long ret_value;
        } riscv_csr;
        struct {
            __u32 flags;
        } notify;
        struct {
            __u64 flags;
            __u64 gpa;
            __u64 size;
        } memory_fault;
        /* Pins the union at 256 bytes whatever the members above add up to:
           the offsets of everything after it depend on that. */
        char padding[256];
    };

    __u64 kvm_valid_regs;
    __u64 kvm_dirty_regs;
    union {
        struct kvm_sync_regs regs;
        char padding[2048];
    } s;
};

struct kvm_coalesced_mmio_zone {
    __u64 addr;
    __u32 size;
    union {
        __u32 pad;
        __u32 pio;
    };
};

struct kvm_coalesced_mmio {
    __u64 phys_addr;
    __u32 len;
    union {
        __u32 pad;
        __u32 pio;
    };
    __u8  data[8];
};

struct kvm_coalesced_mmio_ring {
    __u32 first, last;
    struct kvm_coalesced_mmio coalesced_mmio[];
};

struct kvm_translation {
    __u64 linear_address;
    __u64 physical_address;
    __u8  valid;
    __u8  writeable;
    __u8  usermode;
    __u8  pad[5];
};

struct kvm_interrupt {
    __u32 irq;
};

struct kvm_dirty_log {
    __u32 slot;
    __u32 padding1;
    union {
        void *dirty_bitmap;
        __u64 padding2;
    };
};

struct kvm_signal_mask {
    __u32 len;
    __u8  sigset[];
};

struct kvm_mp_state {
    __u32 mp_state;
};

struct kvm_guest_debug {
    __u32 control;
    __u32 pad;
    struct kvm_guest_debug_arch arch;
};

struct kvm_ioeventfd {
    __u64 datamatch;
    __u64 addr;
    __u32 len;
    __s32 fd;
    __u32 flags;
    __u8  pad[36];
};

struct kvm_irqfd {
    __u32 fd;
    __u32 gsi;
    __u32 flags;
    __u32 resamplefd;
    __u8  pad[16];
};

struct kvm_msi {
    __u32 address_lo;
    __u32 address_hi;
    __u32 data;
    __u32 flags;
    __u32 devid;
    __u8  pad[12];
};

struct kvm_enable_cap {
    __u32 cap;
    __u32 flags;
    __u64 args[4];
    __u8  pad[64];
};

struct kvm_clock_data {
    __u64 clock;
    __u32 flags;
    __u32 pad0;
    __u64 realtime;
    __u64 host_tsc;
    __u32 pad[4];
};
"""

# ioctl, and open, are variadic in C.  They are declared here with fixed
# arguments on purpose: cffi's variadic call path costs about a microsecond
# more per call, and on x86_64 the SysV calling convention passes the
# integer/pointer arguments of both forms in the same registers.  Callers pass
# integer ioctl arguments as ffi.cast("void *", n).
LIBC: Final[str] = """
int ioctl(int fd, unsigned long request, void *arg);
int open(const char *pathname, int flags, unsigned int mode);
int close(int fd);
ssize_t read(int fd, void *buf, size_t count);
ssize_t write(int fd, const void *buf, size_t count);
ssize_t pread(int fd, void *buf, size_t count, int64_t offset);
ssize_t pwrite(int fd, const void *buf, size_t count, int64_t offset);
void *mmap(void *addr, size_t length, int prot, int flags, int fd,
           int64_t offset);
int munmap(void *addr, size_t length);
int mprotect(void *addr, size_t len, int prot);
int madvise(void *addr, size_t length, int advice);
int memfd_create(const char *name, unsigned int flags);
int ftruncate(int fd, int64_t length);
int fallocate(int fd, int mode, int64_t offset, int64_t len);
int eventfd(unsigned int initval, int flags);
int dup(int oldfd);
int getpid(void);
int gettid(void);
"""

CDEF: Final[str] = TYPES + X86_STRUCTS + GENERIC_STRUCTS + LIBC

# Members and structs this module declares that the 6.1 uapi header lacks,
# keyed "struct NAME" or "struct NAME.member.path", each mapped to the header
# macro that arrived with it.  An ABI check against an older header guards
# these paths with #ifdef instead of failing on them.
NEWER_THAN_6_1: Final[dict[str, str]] = {
    "struct kvm_run.iocsr_io": "KVM_EXIT_LOONGARCH_IOCSR",
    "struct kvm_run.memory_fault": "KVM_EXIT_MEMORY_FAULT",
    "struct kvm_run.hypercall.flags": "KVM_EXIT_HYPERCALL_LONG_MODE",
    "struct kvm_userspace_memory_region2": "KVM_SET_USER_MEMORY_REGION2",
}
