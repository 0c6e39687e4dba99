// The avx512bf16 kernel table: the avx512 table plus matmuls over BF16x16
// weights (kernels/repack.hpp) with VDPBF16PS. Compiled with the avx512 flags
// and -mavx512bf16 (CMakeLists.txt); chosen only on CPUs with AVX512-BF16
// (src/dispatch.cpp). Everything here is in an anonymous namespace inside the
// ISA's namespace, as in kernels/simd.hpp (tests/isa_symbols.cmake).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/repack.hpp"

#if !defined(__AVX512BF16__) || !defined(__AVX512F__)
#error "kernels_avx512bf16.cpp needs -mavx512f -mavx512bf16"
#endif

namespace ember::kernels {
const KernelTable& table_avx512();

namespace isa_avx512bf16 {
namespace {

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// R weight groups (16 rows each, `gs` bytes apart) x T activation rows (BF16,
// `xs` bytes apart), over `np` element pairs. Every output has one accumulator
// that takes the pairs in order, one VDPBF16PS each, whatever R and T: results
// do not depend on the tile (batch invariance).
//
// pf, pfs: each step also prefetches pf + p * pfs (pfs = 0: nothing), so that
// the weights the next tiles will read arrive from memory spread over this
// tile's work instead of stalling the first pass over them.
template <int R, int T>
inline void tile(const uint8_t* G, size_t gs, int64_t np, const uint8_t* X, size_t xs, float* Y, int64_t ldy,
                 const uint8_t* pf, size_t pfs) {
    __m512 acc[R][T];
    for (auto& a : acc)
        for (auto& b : a) b = _mm512_setzero_ps();
    const uint8_t* x[T];
    for (int j = 0; j < T; ++j) x[j] = X + size_t(j) * xs;
    for (int64_t p = 0; p < np; ++p) {
        if (pfs) _mm_prefetch(reinterpret_cast<const char*>(pf + size_t(p) * pfs), _MM_HINT_T0);
        __m512i w[R];
        for (int i = 0; i < R; ++i) w[i] = _mm512_loadu_si512(G + size_t(i) * gs + size_t(p) * 64);
        for (int j = 0; j < T; ++j) {
            int32_t pair;
            std::memcpy(&pair, x[j] + 4 * p, 4);
            const __m512i xb = _mm512_set1_epi32(pair);
            for (int i = 0; i < R; ++i) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], as_bh(w[i]), as_bh(xb));
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < T; ++j) _mm512_storeu_ps(Y + j * ldy + i * 16, acc[i][j]);
}

template <int R, int T>
inline void tile_rows(const uint8_t* G, size_t gs, int64_t np, const uint8_t* X, size_t xs, int64_t t, float* Y,
                      int64_t ldy, const uint8_t* pf = nullptr, size_t pfs = 0) {
    if constexpr (T > 1) {
        if (t < T) return tile_rows<R, T - 1>(G, gs, np, X, xs, t, Y, ldy, pf, pfs);
    }
    tile<R, T>(G, gs, np, X, xs, Y, ldy, pf, pfs);
}

// MatmulFn over BF16x16 weights and BF16 activations; r0, r1 multiples of 16,
// n even. Decode (one or two activation rows): four groups at a time, four
// or eight independent accumulators, at memory speed. Prefill: kR groups
// (16 kR rows) at a time serve every kT-row slice of the activation rows
// before the next are read, so weights stream from memory once per call (and
// are prefetched during the previous groups' slices) and the slices re-read
// them from L2; kR * kT accumulators per tile. (3 x 8 measured against 2 x 8,
// 2 x 12 and 4 x 6 on Zen 5: 3 x 8 and 4 x 6 best, within noise of each other.)
void matmul_bf16_x16(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                     int64_t nt, float* Y, int64_t ldy) {
    const size_t gs = 16 * ws;
    const int64_t np = n / 2, g1 = r1 / 16;
    int64_t g = r0 / 16;
    if (nt <= 2) {
        for (; g + 4 <= g1; g += 4) tile_rows<4, 2>(W + size_t(g) * gs, gs, np, X, xs, nt, Y + g * 16, ldy);
        for (; g < g1; ++g) tile_rows<1, 2>(W + size_t(g) * gs, gs, np, X, xs, nt, Y + g * 16, ldy);
        return;
    }
    constexpr int kR = 3, kT = 8;
    const int64_t slices = (nt + kT - 1) / kT;
    for (; g < g1; g += kR) {
        const int64_t here = g1 - g < kR ? g1 - g : kR;
        // the next groups (64 bytes a step each), a share of them per slice
        const int64_t next = g1 - g - here < kR ? g1 - g - here : kR;
        const size_t pfs = size_t(next * 64 + slices - 1) / size_t(slices);
        for (int64_t t = 0, s = 0; t < nt; t += kT, ++s) {
            const int64_t T = nt - t < kT ? nt - t : kT;
            const uint8_t* G = W + size_t(g) * gs;
            const uint8_t* pf = G + size_t(here) * gs + size_t(s) * pfs * size_t(np);
            const uint8_t* Xt = X + size_t(t) * xs;
            float* Yt = Y + t * ldy + g * 16;
            if (here == kR) tile_rows<kR, kT>(G, gs, np, Xt, xs, T, Yt, ldy, pf, pfs);
            else if (kR > 2 && here == 2) tile_rows<2, kT>(G, gs, np, Xt, xs, T, Yt, ldy);
            else for (int64_t i = 0; i < here; ++i) tile_rows<1, kT>(G + size_t(i) * gs, gs, np, Xt, xs, T, Yt + i * 16, ldy);
        }
    }
}

}  // namespace
}  // namespace isa_avx512bf16

const KernelTable& table_avx512bf16() {
    static const KernelTable t = [] {
        KernelTable k = table_avx512();
        k.name = "avx512bf16";
        k.rank = 4;
        k.matmul_x16[size_t(DType::BF16)] = isa_avx512bf16::matmul_bf16_x16;
        return k;
    }();
    return t;
}

}  // namespace ember::kernels
