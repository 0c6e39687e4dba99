// probe_int8: the peak int8 dot-product rate of the best ISA on all threads —
// the arithmetic limit that prefill speed is quoted against.
//
//   probe_int8 [THREADS]
//
// Runs independent chains of VPDPBUSD (AVX-512 VNNI: 64 int8 multiply-adds per
// instruction) or, without VNNI, VPMADDUBSW+VPMADDWD on AVX2 (32 per pair), and
// reports GOPS counting each multiply-add as 2 operations. Also the float
// limits of the other weight types: the FP32 FMA peak (exact F16/F32 weights
// are multiplied in FP32) and, where the CPU has AVX512_BF16, the VDPBF16PS
// peak (BF16 weights, and F16 weights rounded to BF16); and, where the CPU has
// AMX-INT8 and Linux grants the tile registers, the TDPBSSD peak (16 x 16 x 64
// int8 multiply-adds per instruction): the int8 limit of such a machine,
// and the TDPBF16PS peak (the BF16 limit there).
#include <immintrin.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

constexpr long kIters = 20'000'000;

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int vnni_loop() {
    __m512i acc[12];
    for (auto& a : acc) a = _mm512_setzero_si512();
    const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(5);
    for (long i = 0; i < kIters; ++i)
        for (auto& a : acc) a = _mm512_dpbusd_epi32(a, x, y);
    __m512i s = acc[0];
    for (int k = 1; k < 12; ++k) s = _mm512_add_epi32(s, acc[k]);
    return _mm512_reduce_add_epi32(s);
}

__attribute__((target("avx512f"))) static float fma512_loop() {
    __m512 acc[12];
    for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(float(k));
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    for (long i = 0; i < kIters; ++i)
        for (auto& a : acc) a = _mm512_fmadd_ps(a, x, y);
    __m512 s = acc[0];
    for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma256_loop() {
    __m256 acc[12];
    for (int k = 0; k < 12; ++k) acc[k] = _mm256_set1_ps(float(k));
    const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    for (long i = 0; i < kIters; ++i)
        for (auto& a : acc) a = _mm256_fmadd_ps(a, x, y);
    __m256 s = acc[0];
    for (int k = 1; k < 12; ++k) s = _mm256_add_ps(s, acc[k]);
    return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f,avx512bf16"))) static float bf16_loop() {
    __m512 acc[12];
    for (auto& a : acc) a = _mm512_setzero_ps();
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3a83);
    for (long i = 0; i < kIters; ++i)
        for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    __m512 s = acc[0];
    for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}

// The best of 3 runs of `loop` on all threads, in G(FL)OPS: 2 * macs_per_iter
// multiply-adds per iteration and thread.
template <class F>
static double peak(int threads, double macs_per_iter, F loop) {
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        std::vector<std::thread> pool;
        std::vector<double> out(static_cast<size_t>(threads));
        const auto t0 = std::chrono::steady_clock::now();
        for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { out[size_t(t)] = double(loop()); });
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, 2.0 * macs_per_iter * kIters * threads / s / 1e9);
    }
    return best;
}

__attribute__((target("avx2"))) static int avx2_loop() {
    __m256i acc[8];
    for (auto& a : acc) a = _mm256_setzero_si256();
    const __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1);
    for (long i = 0; i < kIters; ++i)
        for (auto& a : acc) a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), one));
    __m256i s = acc[0];
    for (int k = 1; k < 8; ++k) s = _mm256_add_epi32(s, acc[k]);
    return _mm256_extract_epi32(s, 0);
}

// Four independent accumulator tiles against two fixed operand pairs.
constexpr long kAmxIters = 2'000'000;
struct alignas(64) AmxConfig {
    unsigned char palette = 1, start_row = 0, reserved[14] = {};
    unsigned short colsb[16] = {};
    unsigned char rows[16] = {};
};
// Bf16: TDPBF16PS (16 x 16 x 32 BF16 multiply-adds per instruction), else
// TDPBSSD (16 x 16 x 64 int8).
template <bool Bf16>
__attribute__((target("amx-tile,amx-int8,amx-bf16"))) static int amx_loop() {
    AmxConfig c;
    for (int t = 0; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = 16;
    // (as BF16: 1.0 and 0.5; as int8: small values; the sums' values do not matter)
    alignas(64) static const unsigned char ops[1024] = {0x80, 0x3f, 0x00, 0x3f};
    alignas(64) int out[256];
    _tile_loadconfig(&c);
    _tile_loadd(0, ops, 64);
    _tile_loadd(1, ops, 64);
    _tile_loadd(2, ops, 64);
    _tile_loadd(3, ops, 64);
    _tile_zero(4);
    _tile_zero(5);
    _tile_zero(6);
    _tile_zero(7);
    for (long i = 0; i < kAmxIters; ++i) {
        if constexpr (Bf16) {
            _tile_dpbf16ps(4, 0, 2);
            _tile_dpbf16ps(5, 0, 3);
            _tile_dpbf16ps(6, 1, 2);
            _tile_dpbf16ps(7, 1, 3);
        } else {
            _tile_dpbssd(4, 0, 2);
            _tile_dpbssd(5, 0, 3);
            _tile_dpbssd(6, 1, 2);
            _tile_dpbssd(7, 1, 3);
        }
    }
    _tile_stored(4, out, 64);
    _tile_release();
    return out[0];
}
static bool amx_usable() {
#if defined(__linux__) && defined(__x86_64__)
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    if (!((d >> 24) & 1) || !((d >> 25) & 1) || !((d >> 22) & 1)) return false;  // AMX-TILE, -INT8, -BF16
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    return false;
#endif
}

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2;
    const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    const bool f512 = __builtin_cpu_supports("avx512f"), fma = __builtin_cpu_supports("fma");
    const bool bf16 = f512 && __builtin_cpu_supports("avx512bf16");
    const double gops = vnni ? peak(threads, 12.0 * 64, vnni_loop) : peak(threads, 8.0 * 32, avx2_loop);
    const double f32 = f512 ? peak(threads, 12.0 * 16, fma512_loop) : fma ? peak(threads, 12.0 * 8, fma256_loop) : 0.0;
    const double bf = bf16 ? peak(threads, 12.0 * 32, bf16_loop) : 0.0;
    // (peak() counts kIters iterations; the AMX loop runs kAmxIters)
    const bool has_amx = amx_usable();
    const double amx = has_amx ? peak(threads, 4.0 * 16 * 16 * 64 * kAmxIters / kIters, amx_loop<false>) : 0.0;
    const double amx_bf = has_amx ? peak(threads, 4.0 * 16 * 16 * 32 * kAmxIters / kIters, amx_loop<true>) : 0.0;
    std::printf("{\"probe\": \"int8\", \"isa\": \"%s\", \"threads\": %d, \"peak_gops\": %.1f, "
                "\"fp32_fma_gflops\": %.1f, \"bf16_dot_gflops\": %.1f, \"amx_int8_gops\": %.1f, "
                "\"amx_bf16_gflops\": %.1f}\n",
                vnni ? "avx512vnni" : "avx2", threads, gops, f32, bf, amx, amx_bf);
    return 0;
}
