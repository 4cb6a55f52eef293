/* Runs x86 store instructions natively and prints what they wrote, for comparison with
 * vmm.x86's emulation. One request per input line, one answer line per request:
 *
 *   x87 OP FCW FSW FTW ST0      load an x87 state (ST0 = 20 hex digits, TOP from FSW) with
 *                               FXRSTOR64, run x87 store OP on a 16-byte buffer of 0xAA,
 *                               print: code-bytes buffer fsw ftw
 *   sse OP YMM0                 load YMM0 (64 hex digits) and MXCSR 0x1f80, run OP on a
 *                               32-byte buffer of 0xAA, print: code-bytes buffer
 *   xs OP RFBM IMAGE            XRSTOR the 832-byte image (header included) with RFBM 7, dump the
 *                               state with XSAVE64, run OP (an FXSAVE/XSAVE form, EDX:EAX = RFBM)
 *                               on a 1088-byte buffer of 0xAA, print: code-bytes dump buffer
 *   cx OP MEM RAX RDX RBX RCX   run cmpxchg8b/16b OP on MEM (32 hex digits), print:
 *                               code-bytes mem rax rdx zf
 *   rmw OP MEM RAX RSI FLAGS    run the read-modify-write OP on the 8-byte MEM (16 hex digits) with
 *                               RAX, RSI and RFLAGS as given (hex), print:
 *                               code-bytes mem rax rsi rflags
 *   cm OP RFBM IMAGE            as xs, but OP (fxsave, xsave, xsaveopt or xsavec) runs in
 *                               compatibility mode (a far jump to the 32-bit user code segment);
 *                               the binary is linked without PIE so code and data sit below 4 GiB
 *
 * Every OP is an instruction between two labels; its bytes are printed so the test decodes
 * exactly what ran. Addresses are printed nowhere: the test works with offsets.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*op_fn)(void *mem, uint64_t a, uint64_t d);
struct op {
    const char *name;
    op_fn fn;
    const unsigned char *begin, *end;
};

#define OP(name, text)                                                                         \
    extern const unsigned char name##_b[], name##_e[];                                          \
    __attribute__((noinline)) static void name(void *mem, uint64_t a, uint64_t d) {             \
        __asm__ volatile(".globl " #name "_b\n" #name "_b:\n\t" text "\n.globl " #name "_e\n" #name \
                         "_e:\n"                                                                 \
                         :                                                                       \
                         : "D"(mem), "a"(a), "d"(d)                                              \
                         : "memory", "cc");                                                      \
    }
#define ENTRY(name) {#name, name, name##_b, name##_e}

/* x87 stores */
OP(fsts, "fsts (%%rdi)")
OP(fstps, "fstps (%%rdi)")
OP(fstl, "fstl (%%rdi)")
OP(fstpl, "fstpl (%%rdi)")
OP(fstpt, "fstpt (%%rdi)")
OP(fists, "fists (%%rdi)")
OP(fistps, "fistps (%%rdi)")
OP(fistl, "fistl (%%rdi)")
OP(fistpl, "fistpl (%%rdi)")
OP(fistpll, "fistpll (%%rdi)")
OP(fisttps, "fisttps (%%rdi)")
OP(fisttpl, "fisttpl (%%rdi)")
OP(fisttpll, "fisttpll (%%rdi)")
OP(fnstcw, "fnstcw (%%rdi)")
OP(fnstsw, "fnstsw (%%rdi)")
static const struct op x87_ops[] = {
    ENTRY(fsts), ENTRY(fstps), ENTRY(fstl), ENTRY(fstpl), ENTRY(fstpt), ENTRY(fists),
    ENTRY(fistps), ENTRY(fistl), ENTRY(fistpl), ENTRY(fistpll), ENTRY(fisttps),
    ENTRY(fisttpl), ENTRY(fisttpll), ENTRY(fnstcw), ENTRY(fnstsw), {0, 0, 0, 0}};

/* SSE and AVX stores of YMM0 (or of RAX for movnti) */
OP(movq_d6, "movq %%xmm0, (%%rdi)")
OP(movq_7e, ".byte 0x66, 0x48, 0x0f, 0x7e, 0x07")
OP(movd, "movd %%xmm0, (%%rdi)")
OP(movss, "movss %%xmm0, (%%rdi)")
OP(movsd, "movsd %%xmm0, (%%rdi)")
OP(movhps, "movhps %%xmm0, (%%rdi)")
OP(movhpd, "movhpd %%xmm0, (%%rdi)")
OP(movlps, "movlps %%xmm0, (%%rdi)")
OP(movlpd, "movlpd %%xmm0, (%%rdi)")
OP(movups, "movups %%xmm0, (%%rdi)")
OP(movupd, "movupd %%xmm0, (%%rdi)")
OP(movaps, "movaps %%xmm0, (%%rdi)")
OP(movapd, "movapd %%xmm0, (%%rdi)")
OP(movdqu, "movdqu %%xmm0, (%%rdi)")
OP(movdqa, "movdqa %%xmm0, (%%rdi)")
OP(movntdq, "movntdq %%xmm0, (%%rdi)")
OP(movntps, "movntps %%xmm0, (%%rdi)")
OP(movntpd, "movntpd %%xmm0, (%%rdi)")
OP(movnti32, "movnti %%eax, (%%rdi)")
OP(movnti64, "movnti %%rax, (%%rdi)")
OP(pextrb, "pextrb $13, %%xmm0, (%%rdi)")
OP(pextrw, "pextrw $6, %%xmm0, (%%rdi)")
OP(pextrd, "pextrd $2, %%xmm0, (%%rdi)")
OP(pextrq, "pextrq $1, %%xmm0, (%%rdi)")
OP(extractps, "extractps $3, %%xmm0, (%%rdi)")
OP(stmxcsr, "stmxcsr (%%rdi)")
OP(vmovdqu128, "vmovdqu %%xmm0, (%%rdi)")
OP(vmovdqu256, "vmovdqu %%ymm0, (%%rdi)")
OP(vmovups128, "vmovups %%xmm0, (%%rdi)")
OP(vmovups256, "vmovups %%ymm0, (%%rdi)")
OP(vmovaps128, "vmovaps %%xmm0, (%%rdi)")
OP(vmovaps256, "vmovaps %%ymm0, (%%rdi)")
OP(vmovdqa256, "vmovdqa %%ymm0, (%%rdi)")
OP(vmovntdq256, "vmovntdq %%ymm0, (%%rdi)")
OP(vmovq, "vmovq %%xmm0, (%%rdi)")
OP(vmovq_7e, ".byte 0xc4, 0xe1, 0xf9, 0x7e, 0x07")
OP(vmovd, "vmovd %%xmm0, (%%rdi)")
OP(vmovss, "vmovss %%xmm0, (%%rdi)")
OP(vmovsd, "vmovsd %%xmm0, (%%rdi)")
OP(vmovhps, "vmovhps %%xmm0, (%%rdi)")
OP(vmovlpd, "vmovlpd %%xmm0, (%%rdi)")
OP(vpextrw, "vpextrw $5, %%xmm0, (%%rdi)")
OP(vextractps, "vextractps $1, %%xmm0, (%%rdi)")
OP(vextracti128, "vextracti128 $1, %%ymm0, (%%rdi)")
OP(vextractf128, "vextractf128 $1, %%ymm0, (%%rdi)")
OP(vextractf128_0, "vextractf128 $0, %%ymm0, (%%rdi)")
OP(vstmxcsr, "vstmxcsr (%%rdi)")
static const struct op sse_ops[] = {
    ENTRY(movq_d6), ENTRY(movq_7e), ENTRY(movd), ENTRY(movss), ENTRY(movsd), ENTRY(movhps),
    ENTRY(movhpd), ENTRY(movlps), ENTRY(movlpd), ENTRY(movups), ENTRY(movupd), ENTRY(movaps),
    ENTRY(movapd), ENTRY(movdqu), ENTRY(movdqa), ENTRY(movntdq), ENTRY(movntps), ENTRY(movntpd),
    ENTRY(movnti32), ENTRY(movnti64), ENTRY(pextrb), ENTRY(pextrw), ENTRY(pextrd), ENTRY(pextrq),
    ENTRY(extractps), ENTRY(stmxcsr), ENTRY(vmovdqu128), ENTRY(vmovdqu256), ENTRY(vmovups128),
    ENTRY(vmovups256), ENTRY(vmovaps128), ENTRY(vmovaps256), ENTRY(vmovdqa256), ENTRY(vmovntdq256),
    ENTRY(vmovq), ENTRY(vmovq_7e), ENTRY(vmovd), ENTRY(vmovss), ENTRY(vmovsd), ENTRY(vmovhps),
    ENTRY(vmovlpd), ENTRY(vpextrw), ENTRY(vextractps), ENTRY(vextracti128), ENTRY(vextractf128),
    ENTRY(vextractf128_0), ENTRY(vstmxcsr), {0, 0, 0, 0}};

/* state saves */
OP(fxsave, "fxsave (%%rdi)")
OP(fxsave64, "fxsave64 (%%rdi)")
OP(xsave, "xsave (%%rdi)")
OP(xsave64, "xsave64 (%%rdi)")
OP(xsaveopt, "xsaveopt (%%rdi)")
OP(xsaveopt64, "xsaveopt64 (%%rdi)")
OP(xsavec, "xsavec (%%rdi)")
OP(xsavec64, "xsavec64 (%%rdi)")
static const struct op xs_ops[] = {ENTRY(fxsave),   ENTRY(fxsave64),   ENTRY(xsave),  ENTRY(xsave64),
                                   ENTRY(xsaveopt), ENTRY(xsaveopt64), ENTRY(xsavec), ENTRY(xsavec64),
                                   {0, 0, 0, 0}};

static const struct op *find(const struct op *table, const char *name) {
    for (; table->name; table++)
        if (!strcmp(table->name, name)) return table;
    fprintf(stderr, "unknown op %s\n", name);
    exit(2);
}

static void hex_in(const char *text, unsigned char *out, size_t n) {
    if (strlen(text) != 2 * n) {
        fprintf(stderr, "want %zu hex digits, got %zu\n", 2 * n, strlen(text));
        exit(2);
    }
    for (size_t i = 0; i < n; i++) sscanf(text + 2 * i, "%2hhx", &out[i]);
}

static void hex_out(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
}

static void code_out(const struct op *op) {
    hex_out(op->begin, (size_t)(op->end - op->begin));
}

static unsigned char image[4096] __attribute__((aligned(64)));
static unsigned char dump[4096] __attribute__((aligned(64)));
static unsigned char target[4096] __attribute__((aligned(64)));

static void do_x87(char **arg) {
    const struct op *op = find(x87_ops, arg[0]);
    memset(image, 0, 512);
    uint16_t fcw = (uint16_t)strtoul(arg[1], 0, 16), fsw = (uint16_t)strtoul(arg[2], 0, 16);
    uint8_t ftw = (uint8_t)strtoul(arg[3], 0, 16);
    memcpy(image + 0, &fcw, 2);
    memcpy(image + 2, &fsw, 2);
    image[4] = ftw;
    uint32_t mxcsr = 0x1f80;
    memcpy(image + 24, &mxcsr, 4);
    hex_in(arg[4], image + 32, 10);
    memset(target, 0xaa, 16);
    __asm__ volatile("fxrstor64 %0" : : "m"(*(unsigned char(*)[512])image));
    op->fn(target, 0, 0);
    __asm__ volatile("fxsave64 %0" : "=m"(*(unsigned char(*)[512])dump));
    __asm__ volatile("fninit");
    code_out(op);
    printf(" ");
    hex_out(target, 16);
    printf(" %04x %02x\n", dump[2] | dump[3] << 8, dump[4]);
}

static void do_sse(char **arg) {
    const struct op *op = find(sse_ops, arg[0]);
    unsigned char ymm[32];
    hex_in(arg[1], ymm, 32);
    uint64_t rax;
    memcpy(&rax, ymm, 8);
    uint32_t mxcsr = 0x1f80;
    memset(target, 0xaa, 64);
    __asm__ volatile("ldmxcsr %1\n\tvmovdqu %0, %%ymm0" : : "m"(ymm), "m"(mxcsr) : "xmm0");
    op->fn(target, rax, 0);
    __asm__ volatile("vzeroupper");
    code_out(op);
    printf(" ");
    hex_out(target, 64);
    printf("\n");
}

static void do_xs(char **arg) {
    const struct op *op = find(xs_ops, arg[0]);
    uint64_t rfbm = strtoull(arg[1], 0, 16);
    memset(image, 0, sizeof image);
    hex_in(arg[2], image, 832);
    memset(dump, 0, sizeof dump);
    memset(target, 0xaa, 1088);
    __asm__ volatile("xrstor64 %0" : : "m"(*(unsigned char(*)[832])image), "a"(7), "d"(0));
    __asm__ volatile("xsave64 %0" : "=m"(*(unsigned char(*)[832])dump) : "a"(7), "d"(0));
    op->fn(target, rfbm & 0xffffffffu, rfbm >> 32);
    __asm__ volatile("fninit\n\tvzeroupper");
    code_out(op);
    printf(" ");
    hex_out(dump, 832);
    printf(" ");
    hex_out(target, 1088);
    printf("\n");
}

static void do_cx(char **arg) {
    unsigned char mem[16] __attribute__((aligned(16)));
    hex_in(arg[1], mem, 16);
    uint64_t rax = strtoull(arg[2], 0, 16), rdx = strtoull(arg[3], 0, 16);
    uint64_t rbx = strtoull(arg[4], 0, 16), rcx = strtoull(arg[5], 0, 16);
    unsigned char zf;
    extern const unsigned char cx16_b[], cx16_e[], cx8_b[], cx8_e[];
    if (!strcmp(arg[0], "cmpxchg16b")) {
        __asm__ volatile(".globl cx16_b\ncx16_b:\n\tlock cmpxchg16b (%%rdi)\n.globl cx16_e\ncx16_e:\n\tsetz %2"
                         : "+a"(rax), "+d"(rdx), "=m"(zf)
                         : "b"(rbx), "c"(rcx), "D"(mem)
                         : "memory", "cc");
        hex_out(cx16_b, (size_t)(cx16_e - cx16_b));
    } else {
        __asm__ volatile(".globl cx8_b\ncx8_b:\n\tcmpxchg8b (%%rdi)\n.globl cx8_e\ncx8_e:\n\tsetz %2"
                         : "+a"(rax), "+d"(rdx), "=m"(zf)
                         : "b"(rbx), "c"(rcx), "D"(mem)
                         : "memory", "cc");
        hex_out(cx8_b, (size_t)(cx8_e - cx8_b));
    }
    printf(" ");
    hex_out(mem, 16);
    printf(" %016llx %016llx %d\n", (unsigned long long)rax, (unsigned long long)rdx, zf);
}

/* Locked read-modify-writes: memory at (%rdi), the source in RSI (or SIL/SI/ESI), the
 * accumulator RAX. RFLAGS goes in and out through the stack, below the red zone. */
typedef uint64_t (*rmw_fn)(void *mem, uint64_t *rax, uint64_t *rsi, uint64_t flags);
struct rmw_op {
    const char *name;
    rmw_fn fn;
    const unsigned char *begin, *end;
};
#define RMW(name, text)                                                                             \
    extern const unsigned char name##_b[], name##_e[];                                              \
    __attribute__((noinline)) static uint64_t name(void *mem, uint64_t *rax, uint64_t *rsi, uint64_t flags) { \
        uint64_t a = *rax, s = *rsi, f = flags;                                                     \
        __asm__ volatile("sub $128, %%rsp\n\tpush %2\n\tpopfq\n.globl " #name "_b\n" #name "_b:\n\t" text \
                         "\n.globl " #name "_e\n" #name "_e:\n\tpushfq\n\tpop %2\n\tadd $128, %%rsp"           \
                         : "+a"(a), "+S"(s), "+r"(f)                                                \
                         : "D"(mem)                                                                 \
                         : "memory", "cc");                                                         \
        *rax = a;                                                                                   \
        *rsi = s;                                                                                   \
        return f;                                                                                   \
    }
#define RMW_ENTRY(name) {#name, name, name##_b, name##_e}
RMW(add_l, "lock addl %%esi, (%%rdi)")
RMW(add_imm_b, "lock addb $0x85, (%%rdi)")
RMW(sub_q, "lock subq %%rsi, (%%rdi)")
RMW(sub_imm_w, "lock subw $-3, (%%rdi)")
RMW(and_l, "lock andl %%esi, (%%rdi)")
RMW(or_b, "lock orb %%sil, (%%rdi)")
RMW(xor_q, "lock xorq %%rsi, (%%rdi)")
RMW(inc_l, "lock incl (%%rdi)")
RMW(dec_w, "lock decw (%%rdi)")
RMW(neg_b, "lock negb (%%rdi)")
RMW(not_q, "lock notq (%%rdi)")
RMW(bts_imm_l, "lock btsl $5, (%%rdi)")
RMW(btr_l, "lock btrl %%esi, (%%rdi)")
RMW(btc_q, "lock btcq %%rsi, (%%rdi)")
RMW(xadd_l, "lock xaddl %%esi, (%%rdi)")
RMW(xadd_b, "lock xaddb %%sil, (%%rdi)")
RMW(xadd_q, "lock xaddq %%rsi, (%%rdi)")
RMW(xchg_l, "xchgl %%esi, (%%rdi)")
RMW(xchg_w, "xchgw %%si, (%%rdi)")
RMW(cmpxchg_l, "lock cmpxchgl %%esi, (%%rdi)")
RMW(cmpxchg_q, "lock cmpxchgq %%rsi, (%%rdi)")
RMW(cmpxchg_b, "lock cmpxchgb %%sil, (%%rdi)")
RMW(adc_l, "lock adcl %%esi, (%%rdi)")
RMW(adc_imm_b, "lock adcb $0x85, (%%rdi)")
RMW(sbb_q, "lock sbbq %%rsi, (%%rdi)")
RMW(sbb_imm_w, "lock sbbw $-3, (%%rdi)")
static const struct rmw_op rmw_ops[] = {
    RMW_ENTRY(add_l),  RMW_ENTRY(add_imm_b), RMW_ENTRY(sub_q),  RMW_ENTRY(sub_imm_w), RMW_ENTRY(and_l),
    RMW_ENTRY(or_b),   RMW_ENTRY(xor_q),     RMW_ENTRY(inc_l),  RMW_ENTRY(dec_w),     RMW_ENTRY(neg_b),
    RMW_ENTRY(not_q),  RMW_ENTRY(bts_imm_l), RMW_ENTRY(btr_l),  RMW_ENTRY(btc_q),     RMW_ENTRY(xadd_l),
    RMW_ENTRY(xadd_b), RMW_ENTRY(xadd_q),    RMW_ENTRY(xchg_l), RMW_ENTRY(xchg_w),    RMW_ENTRY(cmpxchg_l),
    RMW_ENTRY(cmpxchg_q), RMW_ENTRY(cmpxchg_b), RMW_ENTRY(adc_l),  RMW_ENTRY(adc_imm_b), RMW_ENTRY(sbb_q),
    RMW_ENTRY(sbb_imm_w), {0, 0, 0, 0}};

static void do_rmw(char **arg) {
    const struct rmw_op *op = rmw_ops;
    while (op->name && strcmp(op->name, arg[0])) op++;
    if (!op->name) {
        fprintf(stderr, "unknown rmw op %s\n", arg[0]);
        exit(2);
    }
    unsigned char mem[8] __attribute__((aligned(8)));
    hex_in(arg[1], mem, 8);
    uint64_t rax = strtoull(arg[2], 0, 16), rsi = strtoull(arg[3], 0, 16);
    uint64_t flags = op->fn(mem, &rax, &rsi, strtoull(arg[4], 0, 16));
    hex_out(op->begin, (size_t)(op->end - op->begin));
    printf(" ");
    hex_out(mem, 8);
    printf(" %016llx %016llx %016llx\n", (unsigned long long)rax, (unsigned long long)rsi,
           (unsigned long long)flags);
}

/* Compatibility mode: selector 0x23 is Linux's 32-bit user code segment, 0x2b its data segment.
 * The 32-bit code touches no stack; RSP and RBP are saved around it all the same. */
struct __attribute__((packed)) far_pointer {
    uint32_t offset;
    uint16_t selector;
};
static struct far_pointer to_compat;
uint64_t compat_saved_rsp, compat_saved_rbp;
extern const unsigned char compat_entry[], cm_fxsave_b[], cm_fxsave_e[], cm_xsave_b[], cm_xsave_e[],
    cm_xsaveopt_b[], cm_xsaveopt_e[], cm_xsavec_b[], cm_xsavec_e[];

static void do_cm(char **arg) {
    static const char *names[] = {"fxsave", "xsave", "xsaveopt", "xsavec"};
    const unsigned char *bounds[][2] = {{cm_fxsave_b, cm_fxsave_e},
                                        {cm_xsave_b, cm_xsave_e},
                                        {cm_xsaveopt_b, cm_xsaveopt_e},
                                        {cm_xsavec_b, cm_xsavec_e}};
    uint32_t which = 0;
    while (which < 4 && strcmp(names[which], arg[0])) which++;
    if (which == 4) {
        fprintf(stderr, "unknown compat op %s\n", arg[0]);
        exit(2);
    }
    uint64_t rfbm = strtoull(arg[1], 0, 16);
    memset(image, 0, sizeof image);
    hex_in(arg[2], image, 832);
    memset(dump, 0, sizeof dump);
    memset(target, 0xaa, 1088);
    __asm__ volatile("xrstor64 %0" : : "m"(*(unsigned char(*)[832])image), "a"(7), "d"(0));
    __asm__ volatile("xsave64 %0" : "=m"(*(unsigned char(*)[832])dump) : "a"(7), "d"(0));
    to_compat.offset = (uint32_t)(uintptr_t)compat_entry;
    to_compat.selector = 0x23;
    __asm__ volatile(
        "mov %%rsp, compat_saved_rsp(%%rip)\n\t"
        "mov %%rbp, compat_saved_rbp(%%rip)\n\t"
        "ljmp *%0\n"
        ".code32\n"
        "compat_entry:\n\t"
        "mov $0x2b, %%ecx\n\t"
        "mov %%ecx, %%ds\n\t"
        "mov %%ecx, %%es\n\t"
        "cmp $1, %%esi\n\t"
        "je 1f\n\t"
        "cmp $2, %%esi\n\t"
        "je 2f\n\t"
        "cmp $3, %%esi\n\t"
        "je 3f\n"
        ".globl cm_fxsave_b\ncm_fxsave_b:\n\t fxsave (%%edi)\n.globl cm_fxsave_e\ncm_fxsave_e:\n\t jmp 4f\n"
        "1:\n.globl cm_xsave_b\ncm_xsave_b:\n\t xsave (%%edi)\n.globl cm_xsave_e\ncm_xsave_e:\n\t jmp 4f\n"
        "2:\n.globl cm_xsaveopt_b\ncm_xsaveopt_b:\n\t xsaveopt (%%edi)\n.globl cm_xsaveopt_e\ncm_xsaveopt_e:\n\t jmp 4f\n"
        "3:\n.globl cm_xsavec_b\ncm_xsavec_b:\n\t xsavec (%%edi)\n.globl cm_xsavec_e\ncm_xsavec_e:\n"
        "4:\n\t"
        "ljmp $0x33, $5f\n"
        ".code64\n"
        "5:\n\t"
        "mov compat_saved_rsp(%%rip), %%rsp\n\t"
        "mov compat_saved_rbp(%%rip), %%rbp\n\t"
        "xor %%ecx, %%ecx\n\t"
        "mov %%ecx, %%ds\n\t"
        "mov %%ecx, %%es\n"
        :
        : "m"(to_compat), "S"(which), "D"(target), "a"((uint32_t)rfbm), "d"((uint32_t)(rfbm >> 32))
        : "memory", "rcx", "cc");
    __asm__ volatile("fninit\n\tvzeroupper");
    hex_out(bounds[which][0], (size_t)(bounds[which][1] - bounds[which][0]));
    printf(" ");
    hex_out(dump, 832);
    printf(" ");
    hex_out(target, 1088);
    printf(" %08x\n", (uint32_t)(uintptr_t)target);
}

int main(void) {
    char line[8192];
    setvbuf(stdout, 0, _IOFBF, 1 << 16);
    while (fgets(line, sizeof line, stdin)) {
        char *arg[8] = {0};
        int n = 0;
        for (char *tok = strtok(line, " \n"); tok && n < 8; tok = strtok(0, " \n")) arg[n++] = tok;
        if (n == 0) continue;
        if (!strcmp(arg[0], "x87") && n == 6) do_x87(arg + 1);
        else if (!strcmp(arg[0], "sse") && n == 3) do_sse(arg + 1);
        else if (!strcmp(arg[0], "xs") && n == 4) do_xs(arg + 1);
        else if (!strcmp(arg[0], "cx") && n == 7) do_cx(arg + 1);
        else if (!strcmp(arg[0], "cm") && n == 4) do_cm(arg + 1);
        else if (!strcmp(arg[0], "rmw") && n == 6) do_rmw(arg + 1);
        else {
            fprintf(stderr, "bad request: %s\n", arg[0]);
            return 2;
        }
    }
    return 0;
}
