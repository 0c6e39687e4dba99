// probe_int8: the peak int8 dot-product rate of the best ISA on all threads —
// the arithmetic limit that prefill speed is quoted against.
//
//   probe_int8 [THREADS]
//
// Runs independent chains of VPDPBUSD (AVX-512 VNNI: 64 int8 multiply-adds per
// instruction) or, without VNNI, VPMADDUBSW+VPMADDWD on AVX2 (32 per pair), and
// reports GOPS counting each multiply-add as 2 operations.
#include <immintrin.h>

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

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    const double macs_per_iter = vnni ? 12.0 * 64 : 8.0 * 32;
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
        std::vector<std::thread> pool;
        std::vector<int> out(threads);
        const auto t0 = std::chrono::steady_clock::now();
        for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { out[t] = vnni ? vnni_loop() : avx2_loop(); });
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, 2.0 * macs_per_iter * kIters * threads / s / 1e9);
    }
    std::printf("{\"probe\": \"int8\", \"isa\": \"%s\", \"threads\": %d, \"peak_gops\": %.1f}\n",
                vnni ? "avx512vnni" : "avx2", threads, best);
    return 0;
}
