// Run-time choice of the kernel table. Compiled with baseline flags only.
#include "ember/kernels/dispatch.hpp"

#include <cstdlib>
#include <string>

#include "ember/kernels/quant_ref.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define EMBER_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace ember::kernels {

#if EMBER_X86
const KernelTable& table_sse2();
const KernelTable& table_avx2();
const KernelTable& table_avx512();
#if EMBER_HAVE_AVX512BF16
const KernelTable& table_avx512bf16();  // the avx512 table plus VDPBF16PS kernels
#endif
#if EMBER_HAVE_AMX
const KernelTable& table_amx();  // the avx512bf16 table plus AMX-INT8 matmuls
#endif
#elif defined(__aarch64__)
const KernelTable& table_neon();
#endif

// (after the ISA tables' declarations)
// ---- kernel scratch -------------------------------------------------------------

void* kernel_scratch(int slot, size_t bytes) {
    thread_local std::vector<unsigned char> bufs[16];
    std::vector<unsigned char>& b = bufs[slot & 15];
    if (b.size() < bytes + 64) b.resize(bytes + 64);
    const uintptr_t p = reinterpret_cast<uintptr_t>(b.data());
    return reinterpret_cast<void*>((p + 63) / 64 * 64);
}

namespace {

// ---- the scalar reference table -----------------------------------------------

template <DType T>
void matmul_ref(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                int64_t nt, float* Y, int64_t ldy) {
    for (int64_t t = 0; t < nt; ++t)
        for (int64_t r = r0; r < r1; ++r) Y[t * ldy + r] = dot_ref(T, n, W + size_t(r) * ws, X + size_t(t) * xs);
}

const KernelTable& table_scalar() {
    static const KernelTable t = [] {
        KernelTable k;
        k.name = "scalar";
        k.rank = 0;
        k.matmul[size_t(DType::F32)] = matmul_ref<DType::F32>;
        k.matmul[size_t(DType::F16)] = matmul_ref<DType::F16>;
        k.matmul[size_t(DType::BF16)] = matmul_ref<DType::BF16>;
        k.matmul[size_t(DType::Q8_0)] = matmul_ref<DType::Q8_0>;
        k.matmul[size_t(DType::Q4_0)] = matmul_ref<DType::Q4_0>;
        k.matmul[size_t(DType::Q4_1)] = matmul_ref<DType::Q4_1>;
        k.matmul[size_t(DType::Q5_0)] = matmul_ref<DType::Q5_0>;
        k.matmul[size_t(DType::Q5_1)] = matmul_ref<DType::Q5_1>;
        k.matmul[size_t(DType::IQ4_NL)] = matmul_ref<DType::IQ4_NL>;
        k.matmul[size_t(DType::Q2_K)] = matmul_ref<DType::Q2_K>;
        k.matmul[size_t(DType::Q3_K)] = matmul_ref<DType::Q3_K>;
        k.matmul[size_t(DType::Q4_K)] = matmul_ref<DType::Q4_K>;
        k.matmul[size_t(DType::Q5_K)] = matmul_ref<DType::Q5_K>;
        k.matmul[size_t(DType::Q6_K)] = matmul_ref<DType::Q6_K>;
        k.matmul[size_t(DType::IQ4_XS)] = matmul_ref<DType::IQ4_XS>;
        k.quantize_q8_0 = [](const float* x, void* y, int64_t n) { quantize_row_q8_0_ref(x, static_cast<BlockQ8_0*>(y), n); };
        k.encode_bf16 = [](const float* x, uint16_t* y, int64_t n) { quantize_ref(DType::BF16, x, y, n); };
        k.dot_f32 = [](const float* a, const float* b, int64_t n) {
            double s = 0;
            for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
            return float(s);
        };
        k.axpy_f32 = [](float a, const float* x, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] += a * x[i]; };
        k.scale_f32 = [](float a, float* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] *= a; };
        k.rmsnorm = rmsnorm_ref;
        k.swiglu = swiglu_ref;
        k.attend = attend_ref<float>;
        k.attend_f16 = attend_ref<uint16_t>;
        k.encode_f16 = [](const float* x, uint16_t* y, int64_t n) { for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(x[i]); };
        return k;
    }();
    return t;
}

// ---- CPU detection ---------------------------------------------------------------

struct Cpu {
    bool sse2 = false, avx2 = false, fma = false, f16c = false, avx512f = false, avx512bw = false, avx512dq = false,
         avx512vl = false, avx512vnni = false, avx512bf16 = false, amx = false, neon = false;
};

Cpu detect() {
    Cpu c;
#if EMBER_X86
    unsigned a, b, cx, d;
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    c.sse2 = (d >> 26) & 1;
    const bool osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1;
    c.fma = (cx >> 12) & 1;
    c.f16c = (cx >> 29) & 1;
    uint64_t xcr0 = 0;
    if (osxsave) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = (uint64_t(hi) << 32) | lo;
    }
    // The OS must save the YMM (bits 1,2) and, for AVX-512, opmask/ZMM (bits 5,6,7) state.
    const bool ymm_os = (xcr0 & 0x6) == 0x6;
    const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
        c.avx2 = avx && ymm_os && ((b >> 5) & 1);
        c.avx512f = zmm_os && ((b >> 16) & 1);
        c.avx512dq = zmm_os && ((b >> 17) & 1);
        c.avx512bw = zmm_os && ((b >> 30) & 1);
        c.avx512vl = zmm_os && ((b >> 31) & 1);
        c.avx512vnni = zmm_os && ((cx >> 11) & 1);
        // AMX-TILE, AMX-INT8 and AMX-BF16, with the tile configuration and data state (XCR0 bits 17, 18)
        c.amx = (xcr0 & 0x60000) == 0x60000 && ((d >> 24) & 1) && ((d >> 25) & 1) && ((d >> 22) & 1);
    }
    if (__get_cpuid_count(7, 1, &a, &b, &cx, &d)) c.avx512bf16 = zmm_os && ((a >> 5) & 1);
    c.fma = c.fma && ymm_os;
    c.f16c = c.f16c && ymm_os;
#elif defined(__aarch64__)
    c.neon = true;
#endif
    return c;
}

const Cpu& cpu() {
    static const Cpu c = detect();
    return c;
}

// Linux hands a process the AMX tile registers only when asked
// (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA); refused, the amx table is
// not offered. Asked once, on first use.
bool amx_usable() {
#if defined(__linux__) && defined(__x86_64__)
    static const bool ok = [] {
        if (!cpu().amx) return false;
        constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return ok;
#else
    return false;
#endif
}

}  // namespace

std::vector<const KernelTable*> available_tables() {
    std::vector<const KernelTable*> v{&table_scalar()};
    const Cpu& c = cpu();
#if EMBER_X86
    if (c.sse2) v.push_back(&table_sse2());
    if (c.avx2 && c.fma && c.f16c) v.push_back(&table_avx2());
    // The avx512 table is built with F/BW/DQ/VL and VNNI: it needs all of them.
    const bool avx512 = c.avx512f && c.avx512bw && c.avx512dq && c.avx512vl && c.avx512vnni && c.fma && c.f16c;
    if (avx512) v.push_back(&table_avx512());
#if EMBER_HAVE_AVX512BF16
    // (compiled only where the compiler knows -mavx512bf16; see CMakeLists.txt)
    if (avx512 && c.avx512bf16) v.push_back(&table_avx512bf16());
#if EMBER_HAVE_AMX
    if (avx512 && c.avx512bf16 && amx_usable()) v.push_back(&table_amx());
#endif
#endif
#elif defined(__aarch64__)
    if (c.neon) v.push_back(&table_neon());
#endif
    return v;
}

namespace {
bool cpu_is_amd() {
#if EMBER_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
    return b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
#else
    return false;
#endif
}
}  // namespace

bool stream_prefetch_nta() {
    static const bool nta = [] {
        if (const char* want = std::getenv("EMBER_PREFETCH"); want && *want) return std::string(want) == "nta";
        return cpu_is_amd();
    }();
    return nta;
}

bool k45_column_prefetch() {
    static const bool on = cpu_is_amd();
    return on;
}

const KernelTable* find_table(std::string_view name) {
    for (const KernelTable* t : available_tables())
        if (name == t->name) return t;
    return nullptr;
}

const KernelTable& best_table() {
    static const KernelTable* chosen = [] {
        const auto all = available_tables();
        const KernelTable* best = all.back();
        if (const char* want = std::getenv("EMBER_ISA"); want && *want) {
            // Only ever lower: a name this CPU cannot run is ignored.
            if (const KernelTable* t = find_table(want); t && t->rank <= best->rank) best = t;
        }
        return best;
    }();
    return *chosen;
}

std::string cpu_features() {
    const Cpu& c = cpu();
    std::string s;
    auto add = [&](bool on, const char* n) { if (on) { if (!s.empty()) s += ' '; s += n; } };
    add(c.sse2, "sse2"); add(c.avx2, "avx2"); add(c.fma, "fma"); add(c.f16c, "f16c");
    add(c.avx512f, "avx512f"); add(c.avx512bw, "avx512bw"); add(c.avx512dq, "avx512dq"); add(c.avx512vl, "avx512vl");
    add(c.avx512vnni, "avx512vnni"); add(c.avx512bf16, "avx512bf16"); add(c.amx, "amx-int8 amx-bf16"); add(c.neon, "neon");
    return s;
}

}  // namespace ember::kernels
