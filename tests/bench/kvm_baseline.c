/*
 * kvm_baseline: the smallest honest KVM monitor we can write in C.
 *
 * pyvmm's benchmark compares its per-exit cost against this program, so the
 * run loop here must do the same *kind* of work as pyvmm's (one KVM_RUN per
 * exit, a trivial device write) and nothing more.  Anything added to the hot
 * loop inflates the baseline and makes pyvmm look better than it is.
 *
 * Usage: kvm_baseline [--mode io|mmio] [--mem BYTES] [--ro-page GPA]... IMAGE
 *
 * The guest is a flat binary loaded at 0x7c00 and started in real mode with
 * all segments at 0 and RIP=RSP=0x7c00.
 *
 * Exit status: OUT to port 0xf4 -> (value << 1) | 1 (QEMU isa-debug-exit
 * convention); HLT -> 0; unexpected exit -> 3; setup/usage error -> 2.
 * Only a finished run (0xf4 or HLT) prints the JSON timing line on stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOAD_ADDR      0x7c00ULL
#define TSS_ADDR       0xfffbd000UL
#define PAGE_SIZE_4K   0x1000ULL
#define DEFAULT_MEM    (1ULL << 20)
#define EXIT_PORT      0xf4
#define MAX_RO_PAGES   32

/*
 * Stand-in for a device register: every non-exit OUT stores its data byte
 * here.  volatile so the compiler cannot drop the store, which keeps the
 * baseline doing the same minimal "device" work as pyvmm's handler.
 */
static volatile uint8_t scratch_reg;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--mode io|mmio] [--mem BYTES] [--ro-page GPA]... IMAGE\n"
            "  --ro-page is only valid with --mode mmio and may be repeated\n",
            argv0);
    exit(2);
}

static unsigned long long parse_u64(const char *s, const char *opt)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end) {
        fprintf(stderr, "bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void set_slot(int vm, uint32_t slot, uint32_t flags, uint64_t gpa,
                     uint64_t size, void *hva)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = flags,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)hva,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
        die("KVM_SET_USER_MEMORY_REGION");
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    int mmio_mode = 0;
    uint64_t mem_size = DEFAULT_MEM;
    uint64_t ro_pages[MAX_RO_PAGES];
    int n_ro = 0;
    const char *image = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--mode") && i + 1 < argc) {
            const char *m = argv[++i];
            if (!strcmp(m, "io"))
                mmio_mode = 0;
            else if (!strcmp(m, "mmio"))
                mmio_mode = 1;
            else
                usage(argv[0]);
        } else if (!strcmp(a, "--mem") && i + 1 < argc) {
            mem_size = parse_u64(argv[++i], "--mem");
        } else if (!strcmp(a, "--ro-page") && i + 1 < argc) {
            if (n_ro == MAX_RO_PAGES) {
                fprintf(stderr, "too many --ro-page (max %d)\n", MAX_RO_PAGES);
                return 2;
            }
            ro_pages[n_ro++] = parse_u64(argv[++i], "--ro-page");
        } else if (a[0] == '-' && a[1]) {
            usage(argv[0]);
        } else if (!image) {
            image = a;
        } else {
            usage(argv[0]);
        }
    }
    if (!image)
        usage(argv[0]);
    if (n_ro && !mmio_mode) {
        fprintf(stderr, "--ro-page requires --mode mmio\n");
        return 2;
    }
    /* Slots must be page granular, and RAM must stay below the TSS KVM uses
     * for real-mode emulation on VMX, or the two would overlap. */
    if (mem_size % PAGE_SIZE_4K || mem_size <= LOAD_ADDR || mem_size > TSS_ADDR) {
        fprintf(stderr, "--mem must be a 4 KiB multiple in (0x7c00, 0x%lx]\n",
                TSS_ADDR);
        return 2;
    }

    /* Sort so the RAM slot can be carved left to right around the RO pages. */
    qsort(ro_pages, n_ro, sizeof(ro_pages[0]), cmp_u64);
    for (int i = 0; i < n_ro; i++) {
        if (ro_pages[i] % PAGE_SIZE_4K || ro_pages[i] >= mem_size) {
            fprintf(stderr, "--ro-page 0x%llx: must be page aligned inside RAM\n",
                    (unsigned long long)ro_pages[i]);
            return 2;
        }
        if (i && ro_pages[i] == ro_pages[i - 1]) {
            fprintf(stderr, "--ro-page 0x%llx given twice\n",
                    (unsigned long long)ro_pages[i]);
            return 2;
        }
    }

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm");
    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        fprintf(stderr, "KVM API version %d, expected %d\n", api, KVM_API_VERSION);
        return 2;
    }
    if (n_ro && ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
        fprintf(stderr, "KVM_CAP_READONLY_MEM not supported\n");
        return 2;
    }

    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");
    /* Required on Intel before running real-mode code without unrestricted
     * guest support; harmless elsewhere.  Same address QEMU uses. */
    if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
        die("KVM_SET_TSS_ADDR");

    /* memfd + MAP_SHARED mirrors how pyvmm backs guest RAM, so page-fault
     * and mapping behaviour is comparable. */
    int memfd = memfd_create("kvm_baseline-ram", MFD_CLOEXEC);
    if (memfd < 0)
        die("memfd_create");
    if (ftruncate(memfd, (off_t)mem_size) < 0)
        die("ftruncate");
    uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                        memfd, 0);
    if (mem == MAP_FAILED)
        die("mmap guest RAM");

    /* With one RO page P this yields slot 0 = [0,P), slot 1 = P (RO),
     * slot 2 = [P+4K, end); empty pieces are skipped. */
    uint32_t slot = 0;
    uint64_t cursor = 0;
    for (int i = 0; i < n_ro; i++) {
        if (ro_pages[i] > cursor)
            set_slot(vm, slot++, 0, cursor, ro_pages[i] - cursor, mem + cursor);
        set_slot(vm, slot++, KVM_MEM_READONLY, ro_pages[i], PAGE_SIZE_4K,
                 mem + ro_pages[i]);
        cursor = ro_pages[i] + PAGE_SIZE_4K;
    }
    if (cursor < mem_size)
        set_slot(vm, slot++, 0, cursor, mem_size - cursor, mem + cursor);

    /* Load the image straight into the backing memory; RO slots only
     * restrict guest writes, not ours. */
    int imgfd = open(image, O_RDONLY | O_CLOEXEC);
    if (imgfd < 0)
        die(image);
    struct stat st;
    if (fstat(imgfd, &st) < 0)
        die("fstat image");
    if ((uint64_t)st.st_size > mem_size - LOAD_ADDR) {
        fprintf(stderr, "%s: %lld bytes does not fit at 0x7c00 in %llu bytes of RAM\n",
                image, (long long)st.st_size, (unsigned long long)mem_size);
        return 2;
    }
    for (off_t off = 0; off < st.st_size;) {
        ssize_t n = read(imgfd, mem + LOAD_ADDR + off, (size_t)(st.st_size - off));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read image");
        }
        if (n == 0)
            break;
        off += n;
    }
    close(imgfd);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE,
                               MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");

    /* A fresh vCPU is already in real mode but with the reset CS
     * (F000, base FFFF0000); start instead at 0000:7C00 like a boot sector. */
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        die("KVM_GET_SREGS");
    struct kvm_segment *segs[] = { &sregs.cs, &sregs.ds, &sregs.es,
                                   &sregs.ss, &sregs.fs, &sregs.gs };
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        segs[i]->selector = 0;
        segs[i]->base = 0;
    }
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        die("KVM_SET_SREGS");

    struct kvm_regs regs;
    memset(&regs, 0, sizeof(regs));
    regs.rip = LOAD_ADDR;
    regs.rsp = LOAD_ADDR;
    regs.rflags = 2; /* bit 1 is reserved and must be set */
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");

    /*
     * exits counts every return from KVM_RUN that reached userspace with an
     * exit reason, including the final one; io_exits and mmio_exits count
     * every KVM_EXIT_IO / KVM_EXIT_MMIO (again including a terminating OUT),
     * so exits == io_exits + mmio_exits + (1 if HLT ended the run), plus any
 * rare KVM_EXIT_INTR caused by a signal.
     */
    uint64_t exits = 0, io_exits = 0, mmio_exits = 0;
    int status = -1;
    struct timespec t0, t1;
    struct rusage ru0, ru1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    getrusage(RUSAGE_SELF, &ru0);

    /* Hot loop: exactly one ioctl per exit and only in-memory handling. */
    while (status < 0) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            /* A signal interrupted the run before any exit; just re-enter. */
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN");
        }
        exits++;

        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            io_exits++;
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            if (run->io.direction == KVM_EXIT_IO_OUT) {
                if (run->io.port == EXIT_PORT) {
                    status = (data[0] << 1) | 1;
                } else {
                    /* String OUTs deliver count elements; the register
                     * ends up holding the last one, as real hardware would. */
                    uint32_t bytes = (uint32_t)run->io.size * run->io.count;
                    scratch_reg = data[bytes - run->io.size];
                }
            } else {
                /* Nothing is decoded at any port: floating bus reads 0xff. */
                memset(data, 0xff, (size_t)run->io.size * run->io.count);
            }
            break;
        }
        case KVM_EXIT_MMIO:
            if (!mmio_mode)
                goto unexpected;
            mmio_exits++;
            if (run->mmio.is_write) {
                /* Only RO slots produce write exits inside RAM; apply the
                 * write to the backing page so the guest sees its data. */
                uint64_t pa = run->mmio.phys_addr;
                if (pa < mem_size && run->mmio.len <= mem_size - pa)
                    memcpy(mem + pa, run->mmio.data, run->mmio.len);
            } else {
                /* Reads of RO pages never exit (they are backed), so a read
                 * exit is unbacked MMIO: return zeros. */
                memset(run->mmio.data, 0, sizeof(run->mmio.data));
            }
            break;
        case KVM_EXIT_HLT:
            status = 0;
            break;
        case KVM_EXIT_INTR:
            /* Userspace was asked to look at a pending signal; nothing to do. */
            break;
        default:
        unexpected:
            fprintf(stderr, "unexpected exit reason %u\n", run->exit_reason);
            if (run->exit_reason == KVM_EXIT_FAIL_ENTRY)
                fprintf(stderr, "  hardware_entry_failure_reason 0x%llx\n",
                        (unsigned long long)
                            run->fail_entry.hardware_entry_failure_reason);
            else if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR)
                fprintf(stderr, "  internal error suberror %u\n",
                        run->internal.suberror);
            return 3;
        }
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &ru1);

    double wall = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    double sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);

    printf("{\"exits\": %llu, \"io_exits\": %llu, \"mmio_exits\": %llu, "
           "\"wall_s\": %.9f, \"user_s\": %.6f, \"sys_s\": %.6f}\n",
           (unsigned long long)exits, (unsigned long long)io_exits,
           (unsigned long long)mmio_exits, wall, user, sys);
    fflush(stdout);
    return status;
}
