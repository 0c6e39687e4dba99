// probe_membw: the best read bandwidth all threads reach together — the
// memory-bandwidth limit that decode speed is quoted against.
//
//   probe_membw [THREADS] [MiB] [--verbose]      (defaults: 2 threads, 1024 MiB)
//
// One large buffer (far larger than the caches, backed by huge pages where the
// kernel grants them), each thread reading its own slice. The probe tries
// several ways to read and reports the best, so that the limit is one no
// engine's access pattern can beat by luck of layout:
//   - 1, 2, 4 or 8 streams per thread (the slice cut into that many parts,
//     read side by side), each with 4 independent 256-bit load chains;
//   - with and without software prefetch 1 KiB ahead of each stream.
// Every variant is timed 4 times (interleaved with the others); the best
// single pass is the limit, in GB/s (10^9 bytes/s).
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

template <int S, bool PF>
__attribute__((target("avx2"))) long long read_slice(const uint8_t* p, size_t n) {
    const size_t part = n / S / 128 * 128;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= part; i += 128)
        for (int s = 0; s < S; ++s) {
            const uint8_t* q = p + size_t(s) * part + i;
            if constexpr (PF) _mm_prefetch(reinterpret_cast<const char*>(q + 1024), _MM_HINT_T0),
                              _mm_prefetch(reinterpret_cast<const char*>(q + 1024 + 64), _MM_HINT_T0);
            a = _mm256_xor_si256(a, _mm256_load_si256(reinterpret_cast<const __m256i*>(q)));
            b = _mm256_xor_si256(b, _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 32)));
            c = _mm256_xor_si256(c, _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64)));
            d = _mm256_xor_si256(d, _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 96)));
        }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return _mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 2);
}

struct Variant {
    const char* name;
    int streams;
    long long (*fn)(const uint8_t*, size_t);
};
const Variant kVariants[] = {
    {"1 stream", 1, read_slice<1, false>},           {"1 stream + prefetch", 1, read_slice<1, true>},
    {"2 streams", 2, read_slice<2, false>},          {"2 streams + prefetch", 2, read_slice<2, true>},
    {"4 streams", 4, read_slice<4, false>},          {"4 streams + prefetch", 4, read_slice<4, true>},
    {"8 streams", 8, read_slice<8, false>},          {"8 streams + prefetch", 8, read_slice<8, true>},
};

}  // namespace

int main(int argc, char** argv) {
    int threads = 2;
    size_t mib = 1024;
    bool verbose = false;
    int pos = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--verbose") == 0) verbose = true;
        else if (pos++ == 0) threads = std::max(1, std::atoi(argv[i]));
        else mib = size_t(std::max(64LL, std::atoll(argv[i])));
    }
    if (!__builtin_cpu_supports("avx2")) {
        std::fprintf(stderr, "probe_membw: needs AVX2\n");
        return 1;
    }
    const size_t n = mib << 20;
    void* mem = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        std::fprintf(stderr, "probe_membw: cannot map %zu MiB\n", mib);
        return 1;
    }
    ::madvise(mem, n, MADV_HUGEPAGE);
    auto* buf = static_cast<uint8_t*>(mem);
    const size_t slice = n / size_t(threads) / 4096 * 4096;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)  // first touch by the reading thread
        pool.emplace_back([&, t] { std::memset(buf + slice * size_t(t), t + 1, slice); });
    for (auto& th : pool) th.join();

    constexpr int kVariantCount = int(sizeof(kVariants) / sizeof(kVariants[0]));
    double best[kVariantCount] = {};
    volatile long long sink = 0;
    for (int rep = 0; rep < 4; ++rep)
        for (int v = 0; v < kVariantCount; ++v) {
            pool.clear();
            std::vector<long long> out(static_cast<size_t>(threads));
            const auto t0 = std::chrono::steady_clock::now();
            for (int t = 0; t < threads; ++t)
                pool.emplace_back([&, t, v] { out[size_t(t)] = kVariants[v].fn(buf + slice * size_t(t), slice); });
            for (auto& th : pool) th.join();
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            for (long long x : out) sink = sink ^ x;
            best[v] = std::max(best[v], double(slice) * threads / s / 1e9);
        }
    int top = 0;
    for (int v = 0; v < kVariantCount; ++v) {
        if (verbose) std::fprintf(stderr, "%-22s %.2f GB/s\n", kVariants[v].name, best[v]);
        if (best[v] > best[top]) top = v;
    }
    std::printf("{\"probe\": \"membw\", \"threads\": %d, \"mib\": %zu, \"best_read_gbps\": %.2f, \"best_variant\": \"%s\"}\n",
                threads, mib, best[top], kVariants[top].name);
    ::munmap(mem, n);
    return 0;
}
