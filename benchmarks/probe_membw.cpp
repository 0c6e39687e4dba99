// probe_membw: the best read bandwidth all threads reach together — the
// memory-bandwidth limit that decode speed is quoted against.
//
//   probe_membw [THREADS] [MiB]      (defaults: 2 threads, 1024 MiB)
//
// Each thread streams its own slice of one large buffer (far larger than the
// caches) with 4 independent 256-bit load chains; the best of several passes
// and of 1..THREADS streams per thread is reported in GB/s (10^9 bytes/s).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

__attribute__((target("avx2"))) static long long read_slice(const uint8_t* p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a = _mm256_xor_si256(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return _mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 2);
}

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const size_t mib = argc > 2 ? size_t(std::atoll(argv[2])) : 1024;
    if (!__builtin_cpu_supports("avx2")) {
        std::fprintf(stderr, "probe_membw: needs AVX2\n");
        return 1;
    }
    const size_t n = mib << 20;
    auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, n));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)  // first touch by the reading thread
        pool.emplace_back([&, t] { std::memset(buf + n / threads * t, t + 1, n / threads); });
    for (auto& th : pool) th.join();
    double best = 0;
    volatile long long sink = 0;
    for (int rep = 0; rep < 8; ++rep) {
        pool.clear();
        std::vector<long long> out(threads);
        const auto t0 = std::chrono::steady_clock::now();
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] { out[t] = read_slice(buf + n / threads * t, n / threads); });
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (long long v : out) sink = sink ^ v;
        best = std::max(best, double(n) / s / 1e9);
    }
    std::printf("{\"probe\": \"membw\", \"threads\": %d, \"mib\": %zu, \"best_read_gbps\": %.2f}\n", threads, mib, best);
    std::free(buf);
    return 0;
}
