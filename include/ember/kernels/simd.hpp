// ember/kernels/simd.hpp — the kernels, written once as templates over the
// xsimd architecture `Arch`, compiled once per ISA.
//
// Include this only from a src/kernels_<isa>.cpp that defines EMBER_ISA_NS and
// EMBER_ISA_ARCH and is compiled with that ISA's flags. Everything here lives
// in an anonymous namespace inside ember::kernels::EMBER_ISA_NS, so no inline
// helper compiled for a wide ISA can be merged by the linker into a narrower
// table (the one-definition trap of per-ISA builds). Eigen stays out of here.
// Where xsimd lacks an operation (int8 dot products, half-float loads) the
// ISA's intrinsics are used under the compiler's feature macros.
#pragma once

#if !defined(EMBER_ISA_NS) || !defined(EMBER_ISA_ARCH)
#error "kernels/simd.hpp is included only from a per-ISA translation unit"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include <xsimd/xsimd.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/quant_ref.hpp"
#include "ember/kernels/repack.hpp"
#include "ember/tensor.hpp"

namespace ember::kernels::EMBER_ISA_NS {
namespace {

using Arch = EMBER_ISA_ARCH;
using fbatch = xsimd::batch<float, Arch>;
constexpr int64_t W = int64_t(fbatch::size);

// fp16 scalar to float: the F16C instruction where the ISA has it.
inline float h2f(uint16_t h) {
#if defined(__F16C__)
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32(h);
#endif
}

// ---- loads of half-precision rows as float batches ---------------------------

inline fbatch load_f16(const uint16_t* p) {
#if defined(__AVX512F__)
    static_assert(W == 16);
    return fbatch(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#elif defined(__F16C__) && defined(__AVX__)
    static_assert(W == 8);
    return fbatch(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
    alignas(64) float tmp[W];
    for (int64_t i = 0; i < W; ++i) tmp[i] = fp16_to_fp32(p[i]);
    return fbatch::load_aligned(tmp);
#endif
}

inline fbatch load_bf16(const uint16_t* p) {
#if defined(__AVX512F__)
    static_assert(W == 16);
    return fbatch(_mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16)));
#elif defined(__AVX2__)
    static_assert(W == 8);
    return fbatch(_mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16)));
#else
    alignas(64) float tmp[W];
    for (int64_t i = 0; i < W; ++i) tmp[i] = bf16_to_fp32(p[i]);
    return fbatch::load_aligned(tmp);
#endif
}

// ---- float dot products --------------------------------------------------------

inline float dot_f32(const float* a, const float* b, int64_t n) {
    fbatch acc0(0.0f), acc1(0.0f);
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        acc0 = xsimd::fma(fbatch::load_unaligned(a + i), fbatch::load_unaligned(b + i), acc0);
        acc1 = xsimd::fma(fbatch::load_unaligned(a + i + W), fbatch::load_unaligned(b + i + W), acc1);
    }
    for (; i + W <= n; i += W) acc0 = xsimd::fma(fbatch::load_unaligned(a + i), fbatch::load_unaligned(b + i), acc0);
    float s = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline float dot_f16_f32(const uint16_t* a, const float* b, int64_t n) {
    fbatch acc0(0.0f), acc1(0.0f);
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        acc0 = xsimd::fma(load_f16(a + i), fbatch::load_unaligned(b + i), acc0);
        acc1 = xsimd::fma(load_f16(a + i + W), fbatch::load_unaligned(b + i + W), acc1);
    }
    for (; i + W <= n; i += W) acc0 = xsimd::fma(load_f16(a + i), fbatch::load_unaligned(b + i), acc0);
    float s = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) s += h2f(a[i]) * b[i];
    return s;
}

inline float dot_bf16_f32(const uint16_t* a, const float* b, int64_t n) {
    fbatch acc0(0.0f), acc1(0.0f);
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        acc0 = xsimd::fma(load_bf16(a + i), fbatch::load_unaligned(b + i), acc0);
        acc1 = xsimd::fma(load_bf16(a + i + W), fbatch::load_unaligned(b + i + W), acc1);
    }
    for (; i + W <= n; i += W) acc0 = xsimd::fma(load_bf16(a + i), fbatch::load_unaligned(b + i), acc0);
    float s = xsimd::hadd(acc0 + acc1);
    for (; i < n; ++i) s += bf16_to_fp32(a[i]) * b[i];
    return s;
}

// ---- int8 block dot products (weights Q8_0 / Q4_0, activations Q8_0) -------------

#if defined(__AVX2__)
// 32 signed int8 weights (any range) times 32 int8 activations in [-127, 127],
// summed in pairs to 8 int32 lanes. The sign trick moves the weight's sign onto
// the activation so the unsigned-by-signed multiply-add applies.
inline __m256i dot32_i8(__m256i w, __m256i x) {
    const __m256i aw = _mm256_sign_epi8(w, w);
    const __m256i sx = _mm256_sign_epi8(x, w);
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), aw, sx);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), _mm256_set1_epi16(1));
#endif
}
inline __m256i unpack_q4_0(const uint8_t* qs) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m = _mm_set1_epi8(0x0f);
    const __m128i lo = _mm_and_si128(raw, m);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m);
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}
// Asks for `bytes` at p to be brought into L1, one request per cache line.
// Stream: bytes read once (a decode's weights), prefetched non-temporally.
// Which is faster depends on the CPU, so the Q4_0 / Q8_0 decode kernels ask
// stream_prefetch_nta() (kernels/dispatch.hpp): on a Zen 5 PREFETCHNTA read
// 0.80 / 0.93 of the bandwidth probe's rate against 0.74 / 0.79 with
// PREFETCHT0 (medians of 5 rounds, each against its own probe); on a Xeon
// with AMX, 12 GB/s against 30 (2 threads, probe 38). (The K-quant kernels:
// no difference on the Zen 5; F16x16: 9% less. They use PREFETCHT0.)
//
// One request per line that starts in [p, p + bytes): a walk through
// consecutive runs (a stream's blocks or columns, rarely line-aligned) asks
// for each line once. (A request at p, p + 64, ... asked for a straddled line
// twice; on the Xeon the aligned form read 4% faster.)
template <bool Stream = false>
inline void prefetch_column(const uint8_t* p, size_t bytes) {
    const uintptr_t e = reinterpret_cast<uintptr_t>(p) + bytes;
    for (uintptr_t a = (reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63); a < e; a += 64)
        _mm_prefetch(reinterpret_cast<const char*>(a), Stream ? _MM_HINT_NTA : _MM_HINT_T0);
}
// The sums of a Q8_0 block's two 16-element halves, exactly: PSADBW against
// zero of the bytes with their sign bit flipped (x + 128), less 16 * 128.
inline void half_sums(const int8_t* qs, int& s0, int& s1) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
    const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
    const __m128i lo = _mm256_castsi256_si128(sad), hi = _mm256_extracti128_si256(sad, 1);
    s0 = int(_mm_cvtsi128_si64(lo) + _mm_extract_epi64(lo, 1)) - 16 * 128;
    s1 = int(_mm_cvtsi128_si64(hi) + _mm_extract_epi64(hi, 1)) - 16 * 128;
}
// For a panel of P activation rows (Q8_0, `xs` bytes apart) of nb blocks:
// dx[j * nb + k] = block k's scale; with off != 0, sums[j * nb + k] =
// -off * (sum of block k's quants), the correction for weights stored as
// unsigned bytes w + off.
inline void x16_panel(const uint8_t* X, size_t xs, int P, int64_t nb, int32_t off, int32_t* sums, float* dx) {
    for (int j = 0; j < P; ++j) {
        const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(j) * xs);
        for (int64_t k = 0; k < nb; ++k) {
            if (off != 0) {
                int s0, s1;
                half_sums(xb[k].qs, s0, s1);
                sums[j * nb + k] = -off * (s0 + s1);
            }
            dx[j * nb + k] = h2f(xb[k].d);
        }
    }
}
inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#endif

inline float dot_q8_0_q8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps();
    for (int64_t k = 0; k < nb; ++k) {
        const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[k].qs));
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[k].qs));
        const __m256 d = _mm256_set1_ps(h2f(w[k].d) * h2f(x[k].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_i8(qw, qx)), d, acc);
    }
    return hsum256(acc);
#else
    float acc = 0;
    for (int64_t k = 0; k < nb; ++k) {
        int32_t s = 0;
        for (int j = 0; j < QK8_0; ++j) s += int32_t(w[k].qs[j]) * int32_t(x[k].qs[j]);
        acc += h2f(w[k].d) * h2f(x[k].d) * float(s);
    }
    return acc;
#endif
}

inline float dot_q4_0_q8_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
#if defined(__AVX2__)
    __m256 acc = _mm256_setzero_ps();
    for (int64_t k = 0; k < nb; ++k) {
        const __m256i qw = unpack_q4_0(w[k].qs);
        const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[k].qs));
        const __m256 d = _mm256_set1_ps(h2f(w[k].d) * h2f(x[k].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32_i8(qw, qx)), d, acc);
    }
    return hsum256(acc);
#else
    float acc = 0;
    for (int64_t k = 0; k < nb; ++k) {
        int32_t s = 0;
        for (int j = 0; j < QK4_0 / 2; ++j)
            s += ((w[k].qs[j] & 0x0f) - 8) * int32_t(x[k].qs[j]) + ((w[k].qs[j] >> 4) - 8) * int32_t(x[k].qs[j + 16]);
        acc += h2f(w[k].d) * h2f(x[k].d) * float(s);
    }
    return acc;
#endif
}


// A decode's rows [r0, r1) (whole 16-row groups of W, `ws` bytes a row) as NS
// streams walked side by side: stream st takes the st-th of NS equal runs of
// groups, and f(g, y) gets, for each i in turn, g[st] = stream st's i-th group
// (as const T*) and y[st] = its first output in Y. Returns the first row left
// over (the last groups, fewer than NS).
template <int NS, class T = uint8_t, class F>
inline int64_t for_group_streams(const uint8_t* W, size_t ws, float* Y, int64_t r0, int64_t r1, F&& f) {
    const int64_t per = (r1 - r0) / 16 / NS;
    for (int64_t i = 0; i < per; ++i) {
        const T* g[NS];
        float* y[NS];
        for (int st = 0; st < NS; ++st) {
            const int64_t r = r0 + (st * per + i) * 16;
            g[st] = reinterpret_cast<const T*>(W + size_t(r) * ws);
            y[st] = Y + r;
        }
        f(static_cast<const T* const*>(g), static_cast<float* const*>(y));
    }
    return r0 + NS * per * 16;
}
// The same with stream counts in turn (say <4, 2, 1>: the chunk as four
// streams, the groups left over as a pair, then one): calls
// f.template operator()<N>(g, y) for each step of for_group_streams<N>, and
// returns the first row left over after the last count.
template <int... Ns, class F>
inline int64_t for_group_streams_each(const uint8_t* W, size_t ws, float* Y, int64_t r0, int64_t r1, F&& f) {
    ((r0 = for_group_streams<Ns>(W, ws, Y, r0, r1,
                                 [&](const uint8_t* const* g, float* const* y) { f.template operator()<Ns>(g, y); })),
     ...);
    return r0;
}

#if defined(__AVX2__) && !(defined(__AVX512VNNI__) && defined(__AVX512BW__))
// ---- AVX2 tiles: R weight rows x T activation rows ------------------------------
// Each weight block is unpacked once per tile and each activation block loaded
// once, instead of once per (row, activation) pair. Every output sees exactly
// the operations of dot_q4_0_q8_0 / dot_q8_0_q8_0 (same int32 lane sums, same
// scale product, same fused multiply-adds in block order, same final sum), so
// the tile shape never changes a result. Q4_0 enters maddubs unsigned (the
// nibbles 0..15); the zero point comes off as 8 * (the activation's sums per
// lane), computed once per activation block.
template <bool Q4, int R, int T>
inline void tile_avx2(const uint8_t* W_, size_t ws, const uint8_t* X, size_t xs, int64_t nb, float* Y, int64_t ldy,
                      int64_t r, int64_t t) {
    constexpr size_t WB = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    const __m256i ones = _mm256_set1_epi16(1), eight = _mm256_set1_epi8(8), m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[R][T];
    for (auto& a : acc)
        for (auto& b : a) b = _mm256_setzero_ps();
    for (int64_t k = 0; k < nb; ++k) {
        __m256i xv[T], corr[T];
        float dx[T];
        for (int j = 0; j < T; ++j) {
            const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(t + j) * xs) + k;
            xv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb->qs));
            dx[j] = h2f(xb->d);
            if constexpr (Q4) corr[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(eight, xv[j]), ones);
        }
        for (int i = 0; i < R; ++i) {
            const uint8_t* wb = W_ + size_t(r + i) * ws + size_t(k) * WB;
            uint16_t dbits;
            std::memcpy(&dbits, wb, 2);
            const float dw = h2f(dbits);
            __m256i wv;
            if constexpr (Q4) {
                const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + 2));
                wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
            } else {
                wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 2));
            }
            const __m256i aw = Q4 ? wv : _mm256_sign_epi8(wv, wv);
            for (int j = 0; j < T; ++j) {
                __m256i p;
                if constexpr (Q4) {
                    p = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(aw, xv[j]), ones), corr[j]);
                } else {
                    p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv[j], wv)), ones);
                }
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw * dx[j]), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < T; ++j) Y[(t + j) * ldy + r + i] = hsum256(acc[i][j]);
}

template <bool Q4>
__attribute__((noinline)) void matmul_avx2(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                        int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        int64_t t = 0;
        for (; t + 4 <= nt; t += 4) tile_avx2<Q4, 2, 4>(W_, ws, X, xs, nb, Y, ldy, r, t);
        for (; t < nt; ++t) tile_avx2<Q4, 2, 1>(W_, ws, X, xs, nb, Y, ldy, r, t);
    }
    for (; r < r1; ++r) {
        int64_t t = 0;
        for (; t + 4 <= nt; t += 4) tile_avx2<Q4, 1, 4>(W_, ws, X, xs, nb, Y, ldy, r, t);
        for (; t < nt; ++t) tile_avx2<Q4, 1, 1>(W_, ws, X, xs, nb, Y, ldy, r, t);
    }
}

// ---- AVX2 over 16-row interleaved weights (kernels/repack.hpp) --------------------
// Each 64-byte chunk of a block column holds four weight bytes of each of the
// 16 rows: its first 32 bytes are rows 0-7, its last 32 rows 8-15. One 256-bit
// register thus holds the same four weights of 8 rows, and one maddubs against
// four broadcast activation bytes advances 8 dot products. NH halves (8-row
// sets) starting at half h0 pass over the blocks together, against T activation
// rows; each unpacked weight vector serves all T.
//   Q4_0: nibbles enter maddubs unsigned (0..15); the eight int16 partial sums
//   of a block stay below 8 * 2 * 15 * 128 = 30720, so they add in int16 before
//   one madd to int32; -8 * sum(x), precomputed per activation block, removes
//   the zero point.
//   Q8_0: |w| unsigned, the weight's sign moved onto the activation (a pair of
//   products reaches 2 * 128 * 127, so each chunk goes to int32 on its own).
// Every output gets the exact integer block sum, then acc = fma(sum, dw * dx,
// acc) in block order: the same operations whatever T, NH and the panel, so a
// row's result does not depend on the other activation rows of the call.
// An empty asm that claims to change v: the compiler must have the running sum
// in a register here, so it cannot regroup a chain of adds into a tree whose
// many live products spill out of the 16 registers.
inline void in_register(__m256i& v) { asm("" : "+x"(v)); }

template <bool Q4, int T, int NH>
inline void x16_avx2(const uint8_t* G, int h0, int64_t nb, const int32_t* corr, const float* dx, float* Y,
                     int64_t ldy, const uint8_t* X, size_t xs, const uint8_t* next) {
    constexpr size_t B = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 acc[NH][T];
    for (auto& a : acc)
        for (auto& b : a) b = _mm256_setzero_ps();
    const uint8_t* xq[T];
    for (int j = 0; j < T; ++j) xq[j] = X + size_t(j) * xs + offsetof(BlockQ8_0, qs);
    const auto bcast = [](const uint8_t* p) {
        int32_t four;
        std::memcpy(&four, p, 4);
        return _mm256_set1_epi32(four);
    };
    for (int64_t k = 0; k < nb; ++k) {
        const uint8_t* blk = G + size_t(k) * 16 * B;
        if (next) prefetch_column(next + size_t(k) * 16 * B, 16 * B);
        const size_t xo = size_t(k) * sizeof(BlockQ8_0);
#pragma GCC unroll 2
        for (int hh = 0; hh < NH; ++hh) {
            const int h = h0 + hh;
            const uint8_t* q = blk + 32 + 32 * h;
            __m256i s[T];
            if constexpr (Q4) {
#pragma GCC unroll 4
                for (int b = 0; b < 4; ++b) {
                    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * b));
                    const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 8
                    for (int j = 0; j < T; ++j) {
                        const __m256i pl = _mm256_maddubs_epi16(lo, bcast(xq[j] + xo + 4 * b));
                        s[j] = b == 0 ? pl : _mm256_add_epi16(s[j], pl);
                        s[j] = _mm256_add_epi16(s[j], _mm256_maddubs_epi16(hi, bcast(xq[j] + xo + 16 + 4 * b)));
                        in_register(s[j]);
                    }
                }
#pragma GCC unroll 8
                for (int j = 0; j < T; ++j)
                    s[j] = _mm256_add_epi32(_mm256_madd_epi16(s[j], ones), _mm256_set1_epi32(corr[j * nb + k]));
            } else {
#pragma GCC unroll 8
                for (int g = 0; g < 8; ++g) {
                    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * g));
                    const __m256i aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 8
                    for (int j = 0; j < T; ++j) {
                        const __m256i p = _mm256_madd_epi16(
                            _mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast(xq[j] + xo + 4 * g), w)), ones);
                        s[j] = g == 0 ? p : _mm256_add_epi32(s[j], p);
                        in_register(s[j]);
                    }
                }
            }
            const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * h)));
#pragma GCC unroll 8
            for (int j = 0; j < T; ++j)
                acc[hh][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[j]), _mm256_mul_ps(dw, _mm256_set1_ps(dx[j * nb + k])),
                                             acc[hh][j]);
        }
    }
    for (int hh = 0; hh < NH; ++hh)
        for (int j = 0; j < T; ++j) _mm256_storeu_ps(Y + j * ldy + 8 * (h0 + hh), acc[hh][j]);
}

// One activation row (decode) against NS 16-row groups at once, far apart in
// memory (NS streams per thread, each prefetched non-temporally about 4.5 KiB
// ahead), both halves of each: every broadcast activation word serves 2 * NS
// weight vectors. The integer block sums are exact whatever their order, and
// the float steps are x16_avx2's, so each row's result is x16_avx2<Q4, 1, 2>'s
// bit for bit.
template <bool Q4, int NS, bool Nta = false>
inline void x16_streams_avx2(const uint8_t* const* G, int64_t nb, const int32_t* corr, const float* dx, float* const* Yo,
                             const uint8_t* X) {
    constexpr size_t B = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    constexpr size_t D = (Q4 ? 16 : 8) * 16 * B;
    const __m256i m4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 acc[NS][2];
#pragma GCC unroll 8
    for (int st = 0; st < NS; ++st) acc[st][0] = acc[st][1] = _mm256_setzero_ps();
    const auto* xb = reinterpret_cast<const BlockQ8_0*>(X);
    const auto bcast = [](const int8_t* p) {
        int32_t four;
        std::memcpy(&four, p, 4);
        return _mm256_set1_epi32(four);
    };
    for (int64_t k = 0; k < nb; ++k) {
        const int8_t* xq = xb[k].qs;
        const uint8_t* blk[NS];
#pragma GCC unroll 8
        for (int st = 0; st < NS; ++st) {
            blk[st] = G[st] + size_t(k) * 16 * B;
            prefetch_column<Nta>(blk[st] + D, 16 * B);
        }
        __m256i s[NS][2];
        if constexpr (Q4) {
#pragma GCC unroll 4
            for (int b = 0; b < 4; ++b) {
                const __m256i xl = bcast(xq + 4 * b), xh = bcast(xq + 16 + 4 * b);
#pragma GCC unroll 8
                for (int st = 0; st < NS; ++st)
#pragma GCC unroll 2
                    for (int h = 0; h < 2; ++h) {
                        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[st] + 32 + 32 * h + 64 * b));
                        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v, m4), xl),
                                                           _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), xh));
                        s[st][h] = b == 0 ? p : _mm256_add_epi16(s[st][h], p);
                        in_register(s[st][h]);
                    }
            }
#pragma GCC unroll 8
            for (int st = 0; st < NS; ++st)
#pragma GCC unroll 2
                for (int h = 0; h < 2; ++h)
                    s[st][h] = _mm256_add_epi32(_mm256_madd_epi16(s[st][h], ones), _mm256_set1_epi32(corr[k]));
        } else {
#pragma GCC unroll 8
            for (int g = 0; g < 8; ++g) {
                const __m256i x = bcast(xq + 4 * g);
#pragma GCC unroll 8
                for (int st = 0; st < NS; ++st)
#pragma GCC unroll 2
                    for (int h = 0; h < 2; ++h) {
                        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[st] + 32 + 32 * h + 64 * g));
                        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), ones);
                        s[st][h] = g == 0 ? p : _mm256_add_epi32(s[st][h], p);
                        in_register(s[st][h]);
                    }
            }
        }
        const __m256 d = _mm256_set1_ps(dx[k]);
#pragma GCC unroll 8
        for (int st = 0; st < NS; ++st)
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk[st] + 16 * h)));
                acc[st][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[st][h]), _mm256_mul_ps(dw, d), acc[st][h]);
            }
    }
#pragma GCC unroll 8
    for (int st = 0; st < NS; ++st) {
        _mm256_storeu_ps(Yo[st], acc[st][0]);
        _mm256_storeu_ps(Yo[st] + 8, acc[st][1]);
    }
}

template <bool Q4>
__attribute__((noinline)) void matmul_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1,
                                               const uint8_t* X, size_t xs, int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32;
    // A panel of up to 64 activation rows is prepared once (scales, Q4_0's
    // zero-point sums); each 16-row weight group then serves every slice of the
    // panel while it is in L1/L2, and the next group is prefetched meanwhile.
    // Slices of kT rows take one 8-row half at a time (kT accumulators plus the
    // int16/int32 block sums fit the 16 registers); a single row (and two, for
    // Q8_0) takes both halves in one pass (measured faster on those shapes).
    constexpr int kT = Q4 ? 5 : 6, kPanelRows = 64;
    int32_t* sums = static_cast<int32_t*>(kernel_scratch(0, sizeof(int32_t) * size_t(kPanelRows * nb)));
    float* dx = static_cast<float*>(kernel_scratch(1, sizeof(float) * size_t(kPanelRows * nb)));
    if (nt == 1) {
        // A decode: the chunk's groups as streams side by side, then the rest
        // one by one. Where stream_prefetch_nta() (AMD), two PREFETCHNTA
        // streams; else four PREFETCHT0 streams, then pairs (on the Xeon, 1.1B
        // Q4_0 decode with EMBER_ISA=avx2 48.7 -> 51.0 tok/s over 4
        // interleaved rounds; kernel Q4_0 +5%, Q8_0 +6%).
        x16_panel(X, xs, 1, nb, Q4 ? 8 : 0, sums, dx);
        if (stream_prefetch_nta())
            r0 = for_group_streams_each<2>(W_, ws, Y, r0, r1, [&]<int N>(const uint8_t* const* g, float* const* y) {
                x16_streams_avx2<Q4, N, true>(g, nb, sums, dx, y, X);
            });
        else
            r0 = for_group_streams_each<4, 2>(W_, ws, Y, r0, r1, [&]<int N>(const uint8_t* const* g, float* const* y) {
                x16_streams_avx2<Q4, N>(g, nb, sums, dx, y, X);
            });
    }
    for (int64_t p0 = 0; p0 < nt; p0 += kPanelRows) {
        const int P = int(nt - p0 < kPanelRows ? nt - p0 : kPanelRows);
        x16_panel(X + size_t(p0) * xs, xs, P, nb, Q4 ? 8 : 0, sums, dx);
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t* G = W_ + size_t(r) * ws;
            const uint8_t* next = r + 16 < r1 ? G + 16 * ws : nullptr;
            for (int t0 = 0; t0 < P; t0 += kT) {
                const int T = P - t0 < kT ? P - t0 : kT;
                const int32_t* sm = sums + t0 * nb;
                const float* d = dx + t0 * nb;
                const uint8_t* x = X + size_t(p0 + t0) * xs;
                float* y = Y + (p0 + t0) * ldy + r;
                const uint8_t* pf = t0 == 0 ? next : nullptr;  // the first slice prefetches for all
                // TT rows, one 8-row half of the group at a time (the first prefetches)
                auto by_half = [&]<int TT>() {
                    x16_avx2<Q4, TT, 1>(G, 0, nb, sm, d, y, ldy, x, xs, pf);
                    x16_avx2<Q4, TT, 1>(G, 1, nb, sm, d, y, ldy, x, xs, nullptr);
                };
                switch (T) {
                    case 6: by_half.template operator()<6>(); break;
                    case 5: by_half.template operator()<5>(); break;
                    case 4: by_half.template operator()<4>(); break;
                    case 3: by_half.template operator()<3>(); break;
                    case 2:
                        if constexpr (Q4) by_half.template operator()<2>();
                        else x16_avx2<Q4, 2, 2>(G, 0, nb, sm, d, y, ldy, x, xs, pf);
                        break;
                    default: x16_avx2<Q4, 1, 2>(G, 0, nb, sm, d, y, ldy, x, xs, pf); break;
                }
            }
        }
    }
}
#endif


#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
// ---- AVX-512 VNNI tiles: R weight rows x T activation rows, two blocks per step.
// Weights enter VPDPBUSD as unsigned bytes: Q4_0 nibbles as they are (0..15),
// Q8_0 with the sign bit flipped (w + 128); the offset times the activation
// block sum is subtracted once per activation block, shared by every row.
template <bool Q4>
inline __m512i load_w2(const uint8_t* b0, const uint8_t* b1) {  // two blocks' 32 weights each, as u8
    if constexpr (Q4) {
        const __m256i raw = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + 2)),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2)));
        const __m256i m = _mm256_set1_epi8(0x0f);
        const __m256i lo = _mm256_and_si256(raw, m), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m);
        // block 0: lo0 hi0, block 1: lo1 hi1 (element j and j+16 of each block)
        const __m256i b0v = _mm256_permute2x128_si256(lo, hi, 0x20), b1v = _mm256_permute2x128_si256(lo, hi, 0x31);
        return _mm512_inserti64x4(_mm512_castsi256_si512(b0v), b1v, 1);
    } else {
        const __m512i v = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2))),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + 2)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8(char(0x80)));
    }
}
inline __m512 pair_ps(float a, float b) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(a)), _mm256_set1_ps(b), 1);
}
inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

template <bool Q4, int R, int T>
inline void tile_vnni(const uint8_t* W_, size_t ws, const uint8_t* X, size_t xs, int64_t nb, float* Y, int64_t ldy,
                      int64_t r, int64_t t) {
    constexpr size_t WB = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    const __m512i off = _mm512_set1_epi8(Q4 ? 8 : char(0x80));
    __m512 acc[R][T];
    for (auto& a : acc)
        for (auto& b : a) b = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 <= nb; k += 2) {
        __m512i xv[T], corr[T];
        __m512 dx[T];
        for (int j = 0; j < T; ++j) {
            const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(t + j) * xs) + k;
            xv[j] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[0].qs))),
                                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb[1].qs)), 1);
            corr[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, xv[j]);  // offset * sum(x), in lanes
            dx[j] = pair_ps(h2f(xb[0].d), h2f(xb[1].d));
        }
        for (int i = 0; i < R; ++i) {
            const uint8_t* wb = W_ + size_t(r + i) * ws + size_t(k) * WB;
            const __m512i wv = load_w2<Q4>(wb, wb + WB);
            uint16_t d0, d1;
            std::memcpy(&d0, wb, 2);
            std::memcpy(&d1, wb + WB, 2);
            const __m512 dw = pair_ps(h2f(d0), h2f(d1));
            for (int j = 0; j < T; ++j) {
                const __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[j]), corr[j]);
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[j]), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < T; ++j) {
            float s = hsum512(acc[i][j]);
            if (k < nb) {  // odd block count: the last block alone
                const auto* xb = reinterpret_cast<const BlockQ8_0*>(X + size_t(t + j) * xs) + k;
                const uint8_t* wb = W_ + size_t(r + i) * ws + size_t(k) * WB;
                if constexpr (Q4) s += dot_q4_0_q8_0(reinterpret_cast<const BlockQ4_0*>(wb), xb, 1);
                else s += dot_q8_0_q8_0(reinterpret_cast<const BlockQ8_0*>(wb), xb, 1);
            }
            Y[(t + j) * ldy + r + i] = s;
        }
}

// All rows [r0, r1) x all activation rows, in 4x4 tiles with narrower edges.
template <bool Q4>
inline void matmul_vnni(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                        int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        int64_t t = 0;
        for (; t + 4 <= nt; t += 4) tile_vnni<Q4, 4, 4>(W_, ws, X, xs, nb, Y, ldy, r, t);
        for (; t < nt; ++t) tile_vnni<Q4, 4, 1>(W_, ws, X, xs, nb, Y, ldy, r, t);
    }
    for (; r < r1; ++r) {
        int64_t t = 0;
        for (; t + 4 <= nt; t += 4) tile_vnni<Q4, 1, 4>(W_, ws, X, xs, nb, Y, ldy, r, t);
        for (; t < nt; ++t) tile_vnni<Q4, 1, 1>(W_, ws, X, xs, nb, Y, ldy, r, t);
    }
}

// ---- 16-row interleaved weights (kernels/repack.hpp): 16 dot products per VPDPBUSD
constexpr int64_t kMaxX16Blocks = 1024;  // rows up to 32768 weights (checked at repack time)

// Block column `blk` of a Q4_0x16 / Q8_0x16 group as the 8 vectors of
// unsigned weight bytes VPDPBUSD takes (Q4_0: the nibbles, 0..15; Q8_0: w + 128).
template <bool Q4>
inline void x16_unpack(const uint8_t* blk, __m512i* w) {
    if constexpr (Q4) {
        const __m512i m4 = _mm512_set1_epi8(0x0f);
        for (int b = 0; b < 4; ++b) {
            const __m512i v = _mm512_loadu_si512(blk + 32 + b * 64);
            w[b] = _mm512_and_si512(v, m4);
            w[b + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
    } else {
        for (int g = 0; g < 8; ++g)
            w[g] = _mm512_xor_si512(_mm512_loadu_si512(blk + 32 + g * 64), _mm512_set1_epi8(char(0x80)));
    }
}

// One 16-row weight group G against T (2..16) activation rows (one row goes
// to x16_streams, below). `next`, when not null,
// is the group to be read after this one: its blocks are prefetched one for
// one as these are used, so a group streamed from memory is already in cache
// when its turn comes (the hardware prefetcher alone left batched decode
// waiting on memory at a fifth of the bandwidth).
template <bool Q4, int T>
inline void x16_group(const uint8_t* G, int64_t nb, const int32_t* corr, const float* dx, float* Y, int64_t ldy,
                      int64_t t0, const uint8_t* X, size_t xs, const uint8_t* next) {
    static_assert(T >= 2);
    constexpr size_t B = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    __m512 acc[T];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (int64_t k = 0; k < nb; ++k) {
        const uint8_t* blk = G + size_t(k) * 16 * B;
        if (next) prefetch_column(next + size_t(k) * 16 * B, 16 * B);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
        __m512i w[8];
        x16_unpack<Q4>(blk, w);
#pragma GCC unroll 16
        for (int j = 0; j < T; ++j) {
            const int8_t* xq = reinterpret_cast<const BlockQ8_0*>(X + size_t(t0 + j) * xs)[k].qs;
            // starts from the offset's correction, -off * sum(x), precomputed
            __m512i p = _mm512_set1_epi32(corr[j * nb + k]);
#pragma GCC unroll 8
            for (int g = 0; g < 8; ++g) {
                int32_t four;
                std::memcpy(&four, xq + 4 * g, 4);
                p = _mm512_dpbusd_epi32(p, w[g], _mm512_set1_epi32(four));
            }
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(dx[j * nb + k])), acc[j]);
        }
    }
    for (int j = 0; j < T; ++j) _mm512_storeu_ps(Y + (t0 + j) * ldy, acc[j]);
}

// One activation row (decode) against NS 16-row groups at once, far apart in
// memory: NS streams per thread, each prefetched a fixed distance ahead
// (PREFETCHNTA about 4.5 KiB ahead where stream_prefetch_nta(), as measured
// on a Zen 5; else PREFETCHT0 about 2.2 KiB ahead: on the Xeon 4.5 KiB read
// 30.5 GB/s, 2.2 KiB 32.5, 1.1 KiB 31.5, none 28). Per block, the 8 products
// form two chains of 4, then added: one chain of 8 dependent VPDPBUSD made a
// decode wait on their latency rather than on memory (Q4_0, 2 threads:
// +11-20% GB/s). Integer sums, so the result is x16_group's for the same
// row, bit for bit.
template <bool Q4, int NS, bool Nta = false>
inline void x16_streams(const uint8_t* const* G, int64_t nb, const int32_t* corr, const float* dx, float* const* Yo,
                        const uint8_t* X) {
    constexpr size_t B = Q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    constexpr size_t D = (Q4 ? 16 : 8) * 16 * B / (Nta ? 1 : 2);
    __m512 acc[NS];
    for (auto& a : acc) a = _mm512_setzero_ps();
    const auto* xb = reinterpret_cast<const BlockQ8_0*>(X);
    for (int64_t k = 0; k < nb; ++k) {
        const int8_t* xq = xb[k].qs;
        const float d = dx[k];
        const int32_t c = corr[k];
#pragma GCC unroll 4
        for (int st = 0; st < NS; ++st) {
            const uint8_t* blk = G[st] + size_t(k) * 16 * B;
            prefetch_column<Nta>(blk + D, 16 * B);
            const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
            __m512i w[8];
            if constexpr (Q4) {
                // High nibbles stay in place (16 * w): one AND, no shift; the
                // chain's sum is shifted back once (exact: a multiple of 16).
                const __m512i lo = _mm512_set1_epi8(0x0f), hi = _mm512_set1_epi8(char(0xf0));
                for (int b = 0; b < 4; ++b) {
                    const __m512i v = _mm512_loadu_si512(blk + 32 + b * 64);
                    w[b] = _mm512_and_si512(v, lo);
                    w[b + 4] = _mm512_and_si512(v, hi);
                }
            } else {
                x16_unpack<Q4>(blk, w);
            }
            __m512i p = _mm512_set1_epi32(c), p1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int g = 0; g < 4; ++g) {
                int32_t f0, f1;
                std::memcpy(&f0, xq + 4 * g, 4);
                std::memcpy(&f1, xq + 16 + 4 * g, 4);
                p = _mm512_dpbusd_epi32(p, w[g], _mm512_set1_epi32(f0));
                p1 = _mm512_dpbusd_epi32(p1, w[g + 4], _mm512_set1_epi32(f1));
            }
            p = _mm512_add_epi32(p, Q4 ? _mm512_srai_epi32(p1, 4) : p1);
            acc[st] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(d)), acc[st]);
        }
    }
    for (int st = 0; st < NS; ++st) _mm512_storeu_ps(Yo[st], acc[st]);
}

template <bool Q4>
inline void matmul_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                       int64_t nt, float* Y, int64_t ldy) {
    const int64_t nb = n / 32;
    // Up to 16 activation rows per pass over a weight group: 16 accumulators
    // and the 8 unpacked weight vectors fit the 32 registers, and each weight
    // group is unpacked once for all of them (16 rather than 8: +4-7% on 16
    // batched decodes, +2-4% on a 64-row prefill, one core). A panel of up to
    // 64 activation rows is prepared once; then each 16-row weight group (at
    // most 288 bytes a block, so L1/L2-resident) serves every 16-row slice of
    // the panel before the next group is read: the weights stream from memory
    // once per panel, not once per slice.
    constexpr int kT = 16, kPanelRows = 64;
    // Per-thread scratch on the heap (a host's thread may have a small stack).
    int32_t* sums = static_cast<int32_t*>(kernel_scratch(0, sizeof(int32_t) * size_t(kPanelRows * nb)));
    float* dx = static_cast<float*>(kernel_scratch(1, sizeof(float) * size_t(kPanelRows * nb)));
    for (int64_t p0 = 0; p0 < nt; p0 += kPanelRows) {
        const int P = int(nt - p0 < kPanelRows ? nt - p0 : kPanelRows);
        // per activation block: its scale and off * the sum of its quants (weights are stored w + off)
        x16_panel(X + size_t(p0) * xs, xs, P, nb, Q4 ? 8 : 128, sums, dx);
        // Decode: the chunk's groups in NS runs, walked side by side (NS
        // streams per thread; one stream left the memory system idle part of
        // the time: 1.1B Q4_0 decode 62 -> 74 tok/s, Q8_0 +15%, on 2 threads
        // on a Zen 5, where three or four streams were no faster; on the Xeon
        // four streams with PREFETCHT0: kernel +3-5%, 1.1B Q4_0 decode 51 ->
        // 52.6 tok/s, 4 interleaved rounds); the groups left over in pairs,
        // then one by one.
        if (P == 1) {
            const uint8_t* x = X + size_t(p0) * xs;  // (the last row of a batch of 64k + 1, or the one of a decode)
            float* const Yp = Y + p0 * ldy;
            if (stream_prefetch_nta())
                for_group_streams_each<2, 1>(W_, ws, Yp, r0, r1, [&]<int N>(const uint8_t* const* g, float* const* y) {
                    x16_streams<Q4, N, true>(g, nb, sums, dx, y, x);
                });
            else
                for_group_streams_each<4, 2, 1>(W_, ws, Yp, r0, r1, [&]<int N>(const uint8_t* const* g, float* const* y) {
                    x16_streams<Q4, N>(g, nb, sums, dx, y, x);
                });
            continue;
        }
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t* G = W_ + size_t(r) * ws;  // a group's 16 rows are contiguous
            const uint8_t* next = r + 16 < r1 ? G + 16 * ws : nullptr;
            float* y = Y + r;
            for (int t0 = 0; t0 < P; t0 += kT) {
                const int T = P - t0 < kT ? P - t0 : kT;
                const int32_t* sm = sums + t0 * nb;
                const float* d = dx + t0 * nb;
                const int64_t ta = p0 + t0;
                const uint8_t* pf = t0 == 0 ? next : nullptr;  // the first slice prefetches for all
                switch (T) {
                    case 16: x16_group<Q4, 16>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 15: x16_group<Q4, 15>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 14: x16_group<Q4, 14>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 13: x16_group<Q4, 13>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 12: x16_group<Q4, 12>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 11: x16_group<Q4, 11>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 10: x16_group<Q4, 10>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 9: x16_group<Q4, 9>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 8: x16_group<Q4, 8>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 7: x16_group<Q4, 7>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 6: x16_group<Q4, 6>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 5: x16_group<Q4, 5>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 4: x16_group<Q4, 4>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 3: x16_group<Q4, 3>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    case 2: x16_group<Q4, 2>(G, nb, sm, d, y, ldy, ta, X, xs, pf); break;
                    default: {
                        float* y1 = y + ta * ldy;
                        x16_streams<Q4, 1>(&G, nb, sm, d, &y1, X + size_t(ta) * xs);
                        break;
                    }
                }
            }
        }
    }
}
#endif

#if defined(__AVX512F__) && defined(__F16C__)
// ---- F16x16: exact F16 weights repacked 16 rows at a time (kernels/repack.hpp)
// T activation rows (F32) against one 16-row group: per row four partial sums
// (elements k mod 4, so a decode has four independent FMA chains), added as
// (s0 + s1) + (s2 + s3) at the end, the tail (n mod 4) into s0 first. The same
// operations whatever T: results are batch- and thread-invariant. `pf`: this
// slice reads the group from memory, so it prefetches 2 KiB ahead in the
// contiguous groups (the next group included).
template <int T>
inline void f16x16_group(const uint16_t* G, int64_t n, const float* X, size_t xs, float* Y, int64_t ldy, bool pf) {
    __m512 acc[T][4];
    for (auto& a : acc)
        for (auto& b : a) b = _mm512_setzero_ps();
    const auto* base = reinterpret_cast<const uint8_t*>(G);
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
        if (pf) {  // 4 elements = 128 bytes = 2 lines
            __builtin_prefetch(base + size_t(k) * 32 + 2048);
            __builtin_prefetch(base + size_t(k) * 32 + 2048 + 64);
        }
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) {
            const __m512 w = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(G + (k + u) * 16)));
#pragma GCC unroll 8
            for (int j = 0; j < T; ++j)
                acc[j][u] = _mm512_fmadd_ps(w, _mm512_set1_ps(reinterpret_cast<const float*>(
                                                   reinterpret_cast<const uint8_t*>(X) + size_t(j) * xs)[k + u]),
                                            acc[j][u]);
        }
    }
    for (; k < n; ++k) {
        const __m512 w = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(G + k * 16)));
        for (int j = 0; j < T; ++j)
            acc[j][0] = _mm512_fmadd_ps(
                w, _mm512_set1_ps(reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(X) + size_t(j) * xs)[k]),
                acc[j][0]);
    }
    for (int j = 0; j < T; ++j)
        _mm512_storeu_ps(Y + j * ldy,
                         _mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]), _mm512_add_ps(acc[j][2], acc[j][3])));
}

// One activation row (decode) against NS groups side by side (NS streams from
// memory, each prefetched 1 KiB ahead), each with f16x16_group<1>'s
// operations: the same results. Four streams per thread: the kernel alone
// read 39 (one), 52 (two), 67-71 (four) and 38 GB/s (eight) on 2 threads.
template <int NS>
inline void f16x16_streams(const uint16_t* const* G, int64_t n, const float* x, float* const* Y) {
    __m512 acc[NS][4];
    for (auto& a : acc)
        for (auto& b : a) b = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 4 <= n; k += 4) {
#pragma GCC unroll 4
        for (int st = 0; st < NS; ++st) {
            const auto* base = reinterpret_cast<const uint8_t*>(G[st]);
            __builtin_prefetch(base + size_t(k) * 32 + 1024);  // (T0: non-temporal read 9% less here)
            __builtin_prefetch(base + size_t(k) * 32 + 1024 + 64);
#pragma GCC unroll 4
            for (int u = 0; u < 4; ++u)
                acc[st][u] = _mm512_fmadd_ps(
                    _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(G[st] + (k + u) * 16))),
                    _mm512_set1_ps(x[k + u]), acc[st][u]);
        }
    }
    for (; k < n; ++k)
        for (int st = 0; st < NS; ++st)
            acc[st][0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(G[st] + k * 16))),
                                         _mm512_set1_ps(x[k]), acc[st][0]);
    for (int st = 0; st < NS; ++st)
        _mm512_storeu_ps(Y[st], _mm512_add_ps(_mm512_add_ps(acc[st][0], acc[st][1]), _mm512_add_ps(acc[st][2], acc[st][3])));
}

void matmul_f16_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                    int64_t nt, float* Y, int64_t ldy) {
    if (nt == 1)
        r0 = for_group_streams<4, uint16_t>(W_, ws, Y, r0, r1, [&](const uint16_t* const* g, float* const* y) {
            f16x16_streams<4>(g, n, reinterpret_cast<const float*>(X), y);
        });
    // Slices of up to 6 activation rows: 24 accumulators plus the weights fit
    // the 32 registers. Each 16-row group (2n bytes a row) serves every slice
    // while it is in L1/L2; the first slice reads it from memory.
    constexpr int kT = 6;
    for (int64_t r = r0; r < r1; r += 16) {
        const auto* G = reinterpret_cast<const uint16_t*>(W_ + size_t(r) * ws);
        for (int64_t t0 = 0; t0 < nt; t0 += kT) {
            const uint8_t* x = X + size_t(t0) * xs;
            float* y = Y + t0 * ldy + r;
            const bool pf = t0 == 0;
            switch (nt - t0 < kT ? nt - t0 : kT) {
                case 6: f16x16_group<6>(G, n, reinterpret_cast<const float*>(x), xs, y, ldy, pf); break;
                case 5: f16x16_group<5>(G, n, reinterpret_cast<const float*>(x), xs, y, ldy, pf); break;
                case 4: f16x16_group<4>(G, n, reinterpret_cast<const float*>(x), xs, y, ldy, pf); break;
                case 3: f16x16_group<3>(G, n, reinterpret_cast<const float*>(x), xs, y, ldy, pf); break;
                case 2: f16x16_group<2>(G, n, reinterpret_cast<const float*>(x), xs, y, ldy, pf); break;
                default: f16x16_group<1>(G, n, reinterpret_cast<const float*>(x), xs, y, ldy, pf); break;
            }
        }
    }
}
#endif

#if defined(__AVX2__) && defined(__F16C__) && !defined(__AVX512F__)
// ---- F16x16 on AVX2 (kernels/repack.hpp's layout, as on AVX-512) ---------------
// Element k of a group is 32 bytes: rows 0-7, then rows 8-15; one vcvtph2ps
// turns each half into 8 floats, exactly. Each output is one FMA chain over
// k in order: the same operations for a decode (f16x16_streams_avx2) and any
// slice of a prefill (f16x16_group_avx2), so results are batch- and
// thread-invariant. (Zen 3 converts one vector per cycle and multiplies two:
// a slice of 6 activation rows gives each conversion 6 FMAs and keeps 12
// independent chains in flight; partial sums per row, as on AVX-512, would
// leave room for 3 rows only.)
inline __m256 f16x8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// T activation rows (F32, xs bytes apart) against one 16-row group, both
// halves at once: 2T accumulators (12 for T = 6) plus two weight vectors and a
// broadcast fit the 16 registers. `pf`: this slice reads the group from
// memory, so it prefetches 2 KiB ahead (the next group included).
// `resume`: the chains continue from the values in Y (a later block of k).
template <int T>
inline void f16x16_group_avx2(const uint16_t* G, int64_t n, const float* X, size_t xs, float* Y, int64_t ldy, bool pf,
                              bool resume) {
    // (every loop over the accumulators fully unrolled: otherwise GCC keeps
    // the array in memory and stores it back on every step, a third of the speed)
    __m256 acc[T][2];
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
        acc[j][0] = resume ? _mm256_loadu_ps(Y + j * ldy) : _mm256_setzero_ps();
        acc[j][1] = resume ? _mm256_loadu_ps(Y + j * ldy + 8) : _mm256_setzero_ps();
    }
    const float* x[T];
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) x[j] = reinterpret_cast<const float*>(reinterpret_cast<const uint8_t*>(X) + size_t(j) * xs);
    const auto* base = reinterpret_cast<const uint8_t*>(G);
    for (int64_t k = 0; k < n; ++k) {
        if (pf && (k & 1) == 0) __builtin_prefetch(base + size_t(k) * 32 + 2048);  // 2 elements = one line
        const __m256 w0 = f16x8(G + k * 16), w1 = f16x8(G + k * 16 + 8);
#pragma GCC unroll 8
        for (int j = 0; j < T; ++j) {
            const __m256 xv = _mm256_broadcast_ss(x[j] + k);
            acc[j][0] = _mm256_fmadd_ps(w0, xv, acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(w1, xv, acc[j][1]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < T; ++j) {
        _mm256_storeu_ps(Y + j * ldy, acc[j][0]);
        _mm256_storeu_ps(Y + j * ldy + 8, acc[j][1]);
    }
}

// One activation row (decode) against NS groups side by side (NS memory
// streams, each prefetched 1 KiB ahead), each with f16x16_group_avx2<1>'s
// operations: the same results.
template <int NS>
inline void f16x16_streams_avx2(const uint16_t* const* G, int64_t n, const float* x, float* const* Y) {
    __m256 acc[NS][2];
    for (auto& a : acc)
        for (auto& b : a) b = _mm256_setzero_ps();
    for (int64_t k = 0; k < n; ++k) {
        const __m256 xv = _mm256_broadcast_ss(x + k);
#pragma GCC unroll 4
        for (int st = 0; st < NS; ++st) {
            if ((k & 1) == 0) __builtin_prefetch(reinterpret_cast<const uint8_t*>(G[st]) + size_t(k) * 32 + 1024);
            acc[st][0] = _mm256_fmadd_ps(f16x8(G[st] + k * 16), xv, acc[st][0]);
            acc[st][1] = _mm256_fmadd_ps(f16x8(G[st] + k * 16 + 8), xv, acc[st][1]);
        }
    }
    for (int st = 0; st < NS; ++st) {
        _mm256_storeu_ps(Y[st], acc[st][0]);
        _mm256_storeu_ps(Y[st] + 8, acc[st][1]);
    }
}

void matmul_f16_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                    int64_t nt, float* Y, int64_t ldy) {
    constexpr int NS = 4;
    if (nt == 1)
        r0 = for_group_streams<NS, uint16_t>(W_, ws, Y, r0, r1, [&](const uint16_t* const* g, float* const* y) {
            f16x16_streams_avx2<NS>(g, n, reinterpret_cast<const float*>(X), y);
        });
    // Slices of up to 6 activation rows. Each 16-row group is walked in
    // blocks of kKB elements (8 KiB of weights, in L1, and 1 KiB of each
    // activation row), every slice over a block before the next block: the
    // panel's block stays in L2 instead of all its rows streaming through
    // for every group. The first slice reads the weights from memory.
    constexpr int kT = 6;
    constexpr int64_t kKB = 256;
    for (int64_t r = r0; r < r1; r += 16) {
        const auto* G = reinterpret_cast<const uint16_t*>(W_ + size_t(r) * ws);
        for (int64_t k0 = 0; k0 < n; k0 += kKB) {
            const int64_t kn = n - k0 < kKB ? n - k0 : kKB;
            for (int64_t t0 = 0; t0 < nt; t0 += kT) {
                const auto* x = reinterpret_cast<const float*>(X + size_t(t0) * xs) + k0;
                float* y = Y + t0 * ldy + r;
                const bool pf = t0 == 0, resume = k0 > 0;
                const uint16_t* g = G + k0 * 16;
                switch (nt - t0 < kT ? nt - t0 : kT) {
                    case 6: f16x16_group_avx2<6>(g, kn, x, xs, y, ldy, pf, resume); break;
                    case 5: f16x16_group_avx2<5>(g, kn, x, xs, y, ldy, pf, resume); break;
                    case 4: f16x16_group_avx2<4>(g, kn, x, xs, y, ldy, pf, resume); break;
                    case 3: f16x16_group_avx2<3>(g, kn, x, xs, y, ldy, pf, resume); break;
                    case 2: f16x16_group_avx2<2>(g, kn, x, xs, y, ldy, pf, resume); break;
                    default: f16x16_group_avx2<1>(g, kn, x, xs, y, ldy, pf, resume); break;
                }
            }
        }
    }
}
#endif

#if defined(__AVX2__)  // over the x16 walker of this ISA (AVX-512 VNNI or AVX2, above)
void matmul_q4_0_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                     int64_t nt, float* Y, int64_t ldy) {
    matmul_x16<true>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}
void matmul_q8_0_x16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                     int64_t nt, float* Y, int64_t ldy) {
    matmul_x16<false>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}
#endif

// ---- matmul over a range of weight rows, for every activation row --------------

template <class Dot>
inline void matmul_rows(int64_t r0, int64_t r1, int64_t nt, const uint8_t* W_, size_t ws, const uint8_t* X, size_t xs,
                        float* Y, int64_t ldy, Dot dot) {
    // Tiles of rows: a tile of weight rows stays in cache while every activation
    // row streams past it, so prefill reads each weight once per tile.
    constexpr int64_t kTile = 16;
    for (int64_t rt = r0; rt < r1; rt += kTile) {
        const int64_t re = rt + kTile < r1 ? rt + kTile : r1;
        for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = rt; r < re; ++r) Y[t * ldy + r] = dot(W_ + size_t(r) * ws, X + size_t(t) * xs);
    }
}

// ---- float weights: register tiles of R rows x T activation rows -------------------
// Every output has its own accumulator and sees the same sequence of fused
// multiply-adds whatever the tile shape, so results do not depend on how many
// activation rows share a call (batch invariance).
struct LoadF32 { static constexpr int64_t bytes = 4;
                 static fbatch at(const uint8_t* p, int64_t k) { return fbatch::load_unaligned(reinterpret_cast<const float*>(p) + k); }
                 static float one(const uint8_t* p, int64_t k) { return reinterpret_cast<const float*>(p)[k]; } };
struct LoadF16 { static constexpr int64_t bytes = 2;
                 static fbatch at(const uint8_t* p, int64_t k) { return load_f16(reinterpret_cast<const uint16_t*>(p) + k); }
                 static float one(const uint8_t* p, int64_t k) { return h2f(reinterpret_cast<const uint16_t*>(p)[k]); } };
struct LoadBF16 { static constexpr int64_t bytes = 2;
                  static fbatch at(const uint8_t* p, int64_t k) { return load_bf16(reinterpret_cast<const uint16_t*>(p) + k); }
                  static float one(const uint8_t* p, int64_t k) { return bf16_to_fp32(reinterpret_cast<const uint16_t*>(p)[k]); } };

// pf: this is the first tile over rows r..r+R-1, which it reads from memory;
// `next` (or null): the rows of the tile after this one (see the prefetch in
// the loop). Each row of a 2048-wide F16 matrix is one 4 KiB page, where the
// hardware prefetcher stops; without software prefetch a decode read the
// weights at two thirds of the memory's speed.
template <class L, int R, int T>
inline void ftile(int64_t n, const uint8_t* W_, size_t ws, const uint8_t* X, size_t xs, float* Y, int64_t ldy,
                  int64_t r, int64_t t, bool pf = false, const uint8_t* next = nullptr) {
    fbatch acc[R][T];
    for (auto& a : acc)
        for (auto& b : a) b = fbatch(0.0f);
    int64_t k = 0;
    for (; k + W <= n; k += W) {
        // The first tile over these rows (pf) reads them from memory: it asks
        // for the line 1 KiB ahead in each row, then for the start of the
        // next R rows as the row ends run out. (The hardware prefetcher stops
        // at each 4 KiB page, and a 2048-wide F16 row is one page; prefetching
        // the next rows at the same offset instead left exact F16 decode at
        // 44 GB/s, this reaches 49-53 on 2 threads.)
        if (pf && size_t(k * L::bytes) % 64 == 0) {
            const size_t off = size_t(k * L::bytes) + 1024, rb = size_t(n) * L::bytes;
            for (int i = 0; i < R; ++i) {
                if (off < rb) __builtin_prefetch(W_ + size_t(r + i) * ws + off);
                else if (next) __builtin_prefetch(next + size_t(i) * ws + (off - rb));
            }
        }
        fbatch xv[T];
        for (int j = 0; j < T; ++j) xv[j] = fbatch::load_unaligned(reinterpret_cast<const float*>(X + size_t(t + j) * xs) + k);
        for (int i = 0; i < R; ++i) {
            const fbatch wv = L::at(W_ + size_t(r + i) * ws, k);
            for (int j = 0; j < T; ++j) acc[i][j] = xsimd::fma(wv, xv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < T; ++j) {
            float sum = xsimd::hadd(acc[i][j]);
            const float* x = reinterpret_cast<const float*>(X + size_t(t + j) * xs);
            for (int64_t q = k; q < n; ++q) sum += L::one(W_ + size_t(r + i) * ws, q) * x[q];
            Y[(t + j) * ldy + r + i] = sum;
        }
}

template <class L>
inline void matmul_float(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                         int64_t nt, float* Y, int64_t ldy) {
    constexpr int R = W >= 16 ? 4 : 2, T = 4;  // 16 or 8 accumulators: within the register file
    int64_t r = r0;
    for (; r + R <= r1; r += R) {
        // The first tile over these rows prefetches the next R rows (later
        // tiles find these rows in cache).
        const uint8_t* next = r + 2 * R <= r1 ? W_ + size_t(r + R) * ws : nullptr;
        int64_t t = 0;
        for (; t + T <= nt; t += T) ftile<L, R, T>(n, W_, ws, X, xs, Y, ldy, r, t, t == 0, next);
        for (; t < nt; ++t) ftile<L, R, 1>(n, W_, ws, X, xs, Y, ldy, r, t, t == 0, next);
    }
    for (; r < r1; ++r) {
        int64_t t = 0;
        for (; t + T <= nt; t += T) ftile<L, 1, T>(n, W_, ws, X, xs, Y, ldy, r, t);
        for (; t < nt; ++t) ftile<L, 1, 1>(n, W_, ws, X, xs, Y, ldy, r, t);
    }
}

void matmul_f32(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                int64_t nt, float* Y, int64_t ldy) {
    matmul_float<LoadF32>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}
void matmul_f16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                int64_t nt, float* Y, int64_t ldy) {
    matmul_float<LoadF16>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}
void matmul_bf16(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                 int64_t nt, float* Y, int64_t ldy) {
    matmul_float<LoadBF16>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}
// One dot product per (row, activation row), each in its own function so the
// row loop keeps its registers (merged into a dispatcher it spilled, 10% slower).
__attribute__((noinline)) void rows_q8_0(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1,
                                         const uint8_t* X, size_t xs, int64_t nt, float* Y, int64_t ldy) {
    matmul_rows(r0, r1, nt, W_, ws, X, xs, Y, ldy, [n](const uint8_t* w, const uint8_t* x) {
        return dot_q8_0_q8_0(reinterpret_cast<const BlockQ8_0*>(w), reinterpret_cast<const BlockQ8_0*>(x), n / QK8_0);
    });
}
__attribute__((noinline)) void rows_q4_0(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1,
                                         const uint8_t* X, size_t xs, int64_t nt, float* Y, int64_t ldy) {
    matmul_rows(r0, r1, nt, W_, ws, X, xs, Y, ldy, [n](const uint8_t* w, const uint8_t* x) {
        return dot_q4_0_q8_0(reinterpret_cast<const BlockQ4_0*>(w), reinterpret_cast<const BlockQ8_0*>(x), n / QK4_0);
    });
}

void matmul_q8_0(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                 int64_t nt, float* Y, int64_t ldy) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    return matmul_vnni<false>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
#elif defined(__AVX2__)
    if (nt >= 4) return matmul_avx2<false>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);  // (decode: the row loop is faster)
#endif
    rows_q8_0(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}
void matmul_q4_0(int64_t n, const uint8_t* W_, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                 int64_t nt, float* Y, int64_t ldy) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    return matmul_vnni<true>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
#elif defined(__AVX2__)
    if (nt >= 4) return matmul_avx2<true>(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);  // (decode: the row loop is faster)
#endif
    rows_q4_0(n, W_, ws, r0, r1, X, xs, nt, Y, ldy);
}

// Q4_1, Q5_0, Q5_1, IQ4_NL and the super-block types: matmul_quant_type<T>.
#include "ember/kernels/simd_quants.hpp"

// ---- activation quantization and float ops ---------------------------------------

void quantize_q8_0(const float* x, void* out, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(out);
    for (int64_t b = 0; b < n / QK8_0; ++b) {
        const float* xb = x + b * QK8_0;
        fbatch amax(0.0f);
        for (int64_t j = 0; j < QK8_0; j += W) amax = xsimd::max(amax, xsimd::abs(fbatch::load_unaligned(xb + j)));
        alignas(64) float lanes[W];
        amax.store_aligned(lanes);
        float m = 0;
        for (int64_t j = 0; j < W; ++j) m = m > lanes[j] ? m : lanes[j];
        const float d = m / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
#if defined(__AVX512F__)
        const __m512 vid = _mm512_set1_ps(id);
        for (int j = 0; j < QK8_0; j += 16)  // convert rounds half to even, as the reference's nearbyint does
            _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + j),
                             _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + j), vid))));
#else
        for (int j = 0; j < QK8_0; ++j) y[b].qs[j] = int8_t(std::nearbyint(xb[j] * id));
#endif
    }
}

// Activations for BF16x16 weights: fp32_to_bf16 on every element, 16 at a
// time with the same integer rounding (add 0x7fff plus the kept lowest bit,
// keep the high half; NaN: the high half with the quiet bit set).
void encode_bf16(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512BW__)
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000), quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {
        const __m512i v = _mm512_loadu_si512(x + i);
        const __m512i hi = _mm512_srli_epi32(v, 16);
        const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(v, _mm512_add_epi32(bias, _mm512_and_si512(hi, one))), 16);
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(v, absm), inf);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i),
                            _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, quiet))));
    }
#endif
    for (; i < n; ++i) y[i] = fp32_to_bf16(x[i]);
}

// Activations to IEEE float16 for the F16 KV cache: F16C's conversion
// (round to nearest even, like fp32_to_fp16), with NaN lanes set to the
// reference's quiet NaN (F16C would keep part of the payload).
void encode_f16(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        if (nan) {
            const __m256i q = _mm256_or_si256(_mm256_and_si256(h, _mm256_set1_epi16(short(0x8000))), _mm256_set1_epi16(0x7e00));
            h = _mm256_mask_mov_epi16(h, nan, q);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), h);
    }
#elif defined(__F16C__) && defined(__AVX2__)
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) break;  // NaN: the rest in scalar
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#endif
    for (; i < n; ++i) y[i] = fp32_to_fp16(x[i]);
}

float dot_f32_fn(const float* a, const float* b, int64_t n) { return dot_f32(a, b, n); }

void axpy_f32(float a, const float* x, float* y, int64_t n) {
    const fbatch va(a);
    int64_t i = 0;
    for (; i + W <= n; i += W) xsimd::fma(va, fbatch::load_unaligned(x + i), fbatch::load_unaligned(y + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] += a * x[i];
}

void scale_f32(float a, float* y, int64_t n) {
    const fbatch va(a);
    int64_t i = 0;
    for (; i + W <= n; i += W) (va * fbatch::load_unaligned(y + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] *= a;
}

void rmsnorm(const float* x, const float* w, float* y, int64_t n, float eps) {
    const float ss = dot_f32(x, x, n);
    const float scale = 1.0f / std::sqrt(ss / float(n) + eps);
    const fbatch vs(scale);
    int64_t i = 0;
    for (; i + W <= n; i += W)
        (fbatch::load_unaligned(x + i) * vs * fbatch::load_unaligned(w + i)).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void swiglu(const float* g, const float* u, float* y, int64_t n) {
    const fbatch one(1.0f);
    int64_t i = 0;
    for (; i + W <= n; i += W) {
        const fbatch vg = fbatch::load_unaligned(g + i);
        (vg / (one + xsimd::exp(-vg)) * fbatch::load_unaligned(u + i)).store_unaligned(y + i);
    }
    for (; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// ---- attention -----------------------------------------------------------------

// Grouped-query attention (AttendFn) over a tile of rows: the G heads of T
// consecutive queries, all reading the same keys and values, so each key and
// value row is read once for every row of the tile while it is in L1.
// Scores: W positions at a time, one per lane (the keys are stored
// transposed), for up to 8 rows at once; softmax unnormalised (max, exp, sum);
// values accumulated in registers, H rows x NV vectors at a time; the 1/sum
// applied at the end. Every row gets the same operations in the same order
// whatever the tile: a row's last, partial block of W positions is computed
// like a full one (reading positions past its end inside the page, their
// scores unused), and positions past a row's own end get score 0 in the value sum
// (acc + 0*v leaves acc as it was).
constexpr int kAttendMaxRows = 256;

// K/V elements: float, or uint16_t for IEEE float16 (converted exactly on load).
inline fbatch load_kv(const float* p) { return fbatch::load_unaligned(p); }
inline fbatch load_kv(const uint16_t* p) { return load_f16(p); }
inline float kv_one(const float* p) { return *p; }
inline float kv_one(const uint16_t* p) { return h2f(*p); }

// A decode's keys and values come from memory, a page's run at a time and
// pages far apart, where the hardware prefetcher alone left the attention
// waiting on them. So the loops ask for what comes next with PREFETCHT0:
// each block of scores a share of the next page's keys, the values the row
// kAttendAhead positions on (into the next page). On the Xeon, one thread, 8
// heads sharing each of 4 KV heads, 1056 positions from memory, rows of all
// heads side by side: 336 -> 236-250 us a layer (in cache: 134 -> 110-117);
// with head-major pages and transposed keys (bench_kernels --attend, 4096
// positions, one thread), without either prefetch 1128-1150 us, with both
// 877-930.
constexpr int kAttendAhead = 16;
template <class E>
inline void prefetch_kv_row(const E* p, int elems) {
    for (int b = 0; b < elems * int(sizeof(E)); b += 64) __builtin_prefetch(reinterpret_cast<const char*>(p) + b);
}
// Row j + ahead of page pg (pages[pg] + j * stride), or the same row of the
// next page when past this one (null past the last page, or further ahead
// than the next page's rows).
template <class E>
inline const E* kv_row_ahead(const E* const* pages, int pg, int n_pages, int j, int ahead, int page, size_t stride) {
    if (j + ahead < page) return pages[pg] + size_t(j + ahead) * stride;
    return pg + 1 < n_pages && j + ahead - page < page ? pages[pg + 1] + size_t(j + ahead - page) * stride : nullptr;
}

// H rows (score rows srow, output rows orow) x NV vectors of values from d0,
// over positions [p0, p0 + np) of one page (its rows vb, `stride` apart):
// every accumulator a register (H, NV constants), starting from 0 on the
// first page and from orow otherwise, stored to orow at the end. Prefetching
// (pf) asks for the row kAttendAhead positions on.
template <int NV, int H, class E>
void attend_values_page(const float* const* srow, int p0, int np, const E* const* vpages, int pg, int n_pages,
                        int page, size_t stride, int d0, float* const* orow, bool pf) {
    fbatch acc[H][NV];
    for (int i = 0; i < H; ++i)
        for (int u = 0; u < NV; ++u) acc[i][u] = p0 == 0 ? fbatch(0.0f) : fbatch::load_unaligned(orow[i] + d0 + u * W);
    const E* vb = vpages[pg] + d0;
    for (int j = 0; j < np; ++j) {
        if (pf)
            if (const E* a = kv_row_ahead(vpages, pg, n_pages, j, kAttendAhead, page, stride)) prefetch_kv_row(a + d0, NV * int(W));
        const E* v = vb + size_t(j) * stride;
        fbatch vv[NV];
        for (int u = 0; u < NV; ++u) vv[u] = load_kv(v + u * W);
        for (int i = 0; i < H; ++i) {
            const fbatch s(srow[i][p0 + j]);
            for (int u = 0; u < NV; ++u) acc[i][u] = xsimd::fma(s, vv[u], acc[i][u]);
        }
    }
    for (int i = 0; i < H; ++i)
        for (int u = 0; u < NV; ++u) acc[i][u].store_unaligned(orow[i] + d0 + u * W);
}

// out_r = sum_p e_rp v_p for all R rows (rows in order of their end, nrow):
// page by page, and in a page NV vectors of HC rows at a time, so a page's
// values are read from memory once, then from L1 for the other rows (a
// pass over all positions per HC rows read them from memory, or L2, again
// for each). The first row pass of a page prefetches ahead. Each (row, d)
// takes the same operations in the same order as in one long pass.
template <int NV, class E>
void attend_values(const float* const* srow, const int* nrow, int R, const E* const* vpages, int page,
                   size_t stride, int d0, int d1, float* const* orow) {
    constexpr int HC = 4;  // rows per pass: HC*NV accumulators
    const int n_pos = nrow[R - 1];
    const int n_pages = (n_pos + page - 1) / page;
    for (int p0 = 0, pg = 0; p0 < n_pos; p0 += page, ++pg)
        for (int d = d0; d + NV * int(W) <= d1; d += NV * int(W)) {
            bool pf = true;
            for (int i0 = 0; i0 < R; i0 += HC) {
                const int h = R - i0 < HC ? R - i0 : HC;
                const int n = nrow[i0 + h - 1];  // this pass's end: its last row's
                if (n <= p0) continue;
                const int np = n - p0 < page ? n - p0 : page;
                switch (h) {
                    case HC: attend_values_page<NV, HC, E>(srow + i0, p0, np, vpages, pg, n_pages, page, stride, d, orow + i0, pf); break;
                    case 3: attend_values_page<NV, 3, E>(srow + i0, p0, np, vpages, pg, n_pages, page, stride, d, orow + i0, pf); break;
                    case 2: attend_values_page<NV, 2, E>(srow + i0, p0, np, vpages, pg, n_pages, page, stride, d, orow + i0, pf); break;
                    default: attend_values_page<NV, 1, E>(srow + i0, p0, np, vpages, pg, n_pages, page, stride, d, orow + i0, pf); break;
                }
                pf = false;
            }
        }
}

// scale * (q_i . k_p) for H rows (q[i], scores s[i] + p) and the W
// positions of k (keys transposed: element d of the W positions at
// k + d * page): one accumulator per row, a position per lane, the head's
// elements in order. Each (row, position) score takes the same steps whatever
// H and whichever lane, so a row's scores do not depend on its tile.
// Meanwhile it asks for the `pf_lines` cache lines from pf, one per element
// step (a burst of them stalled the loop on fill buffers).
template <int H, class E>
inline void score_rows(const float* const* q, const E* k, int page, int hd, const fbatch& vscale, float* const* s,
                       int p, const char* pf, int pf_lines) {
    fbatch acc[H];
    for (int i = 0; i < H; ++i) acc[i] = fbatch(0.0f);
    for (int d = 0; d < hd; ++d) {
        if (d < pf_lines) __builtin_prefetch(pf + size_t(d) * 64);
        const fbatch kv = load_kv(k + size_t(d) * size_t(page));
        for (int i = 0; i < H; ++i) acc[i] = xsimd::fma(fbatch(q[i][d]), kv, acc[i]);
    }
    for (int d = hd; d < pf_lines; ++d) __builtin_prefetch(pf + size_t(d) * 64);
    for (int i = 0; i < H; ++i) (acc[i] * vscale).store_unaligned(s[i] + p);
}

template <class E>
void attend(const float* q, size_t ldq, int T, int G, int hd, const E* const* kpages, const E* const* vpages,
            int page, size_t stride, int n_pos, float scale, float* scores, float* out, size_t ldo) {
    const size_t lds = attend_score_stride(n_pos);
    if (G > kAttendMaxRows) {  // wider groups (huge multi-query models): each query alone, in slices of heads
        for (int t = 0; t < T; ++t)
            for (int i = 0; i < G; i += kAttendMaxRows) {
                const int g = G - i < kAttendMaxRows ? G - i : kAttendMaxRows;
                attend(q + size_t(t) * ldq + size_t(i) * size_t(hd), ldq, 1, g, hd, kpages, vpages, page, stride,
                       n_pos - (T - 1) + t, scale, scores, out + size_t(t) * ldo + size_t(i) * size_t(hd), ldo);
            }
        return;
    }
    if (T * G > kAttendMaxRows) {  // long tiles in shorter ones (each row's result is the same)
        const int tc = kAttendMaxRows / G;
        for (int t0 = 0; t0 < T; t0 += tc) {
            const int tn = T - t0 < tc ? T - t0 : tc;
            attend(q + size_t(t0) * ldq, ldq, tn, G, hd, kpages, vpages, page, stride, n_pos - (T - 1) + t0 + tn - 1,
                   scale, scores, out + size_t(t0) * ldo, ldo);
        }
        return;
    }
    const int R = T * G;
    const float* qrow[kAttendMaxRows];
    float* orow[kAttendMaxRows];
    float* srow[kAttendMaxRows];
    int nrow[kAttendMaxRows];
    for (int t = 0; t < T; ++t)
        for (int i = 0; i < G; ++i) {
            const int r = t * G + i;
            qrow[r] = q + size_t(t) * ldq + size_t(i) * size_t(hd);
            orow[r] = out + size_t(t) * ldo + size_t(i) * size_t(hd);
            srow[r] = scores + size_t(r) * lds;
            nrow[r] = n_pos - (T - 1) + t;
        }
    // scores[r][p] = scale * q_r . k_p for p < nrow[r]
    const fbatch vscale(scale);
    const bool blocks = page % int(W) == 0;
    const int n_pages = (n_pos + page - 1) / page;
    const size_t page_k_bytes = size_t(page) * size_t(hd) * sizeof(E);  // one page's keys: one run
    for (int p0 = 0, pg = 0; p0 < n_pos; p0 += page, ++pg) {
        const int np = n_pos - p0 < page ? n_pos - p0 : page;
        const E* kb = kpages[pg];
        if (blocks) {
            for (int j = 0; j < np; j += int(W)) {
                // a share of the next page's keys, W / page of them per block,
                // asked for by the first group of rows computed
                const char* pf = nullptr;
                int pf_lines = 0;
                if (pg + 1 < n_pages) {
                    const size_t b = page_k_bytes * size_t(j) / size_t(page) / 64 * 64;
                    pf = reinterpret_cast<const char*>(kpages[pg + 1]) + b;
                    pf_lines = int((page_k_bytes * size_t(j + int(W)) / size_t(page) - b + 63) / 64);
                }
                const E* k = kb + j;
                // rows 8 at a time, then 4, 2, 1 (rows are in order of their end:
                // a group's last sees the furthest)
                int r = 0;
                const int pj = p0 + j;
                auto group = [&]<int H>() {  // rows [r, r + H), if its last still sees pj
                    if (nrow[r + H - 1] > pj) score_rows<H>(qrow + r, k, page, hd, vscale, srow + r, pj, pf, pf_lines), pf_lines = 0;
                    r += H;
                };
                while (r + 8 <= R) group.template operator()<8>();
                if (r + 4 <= R) group.template operator()<4>();
                if (r + 2 <= R) group.template operator()<2>();
                if (r < R) group.template operator()<1>();
                for (int i = 0; i < pf_lines; ++i) __builtin_prefetch(pf + size_t(i) * 64);  // (no row computed)
            }
        } else {
            for (int j = 0; j < np; ++j) {
                const E* k = kb + j;
                for (int r = 0; r < R; ++r)
                    if (nrow[r] > p0 + j) {
                        float a = 0.0f;
                        for (int d = 0; d < hd; ++d) a += qrow[r][d] * kv_one(k + size_t(d) * size_t(page));
                        srow[r][p0 + j] = a * scale;
                    }
            }
        }
    }
    float inv[kAttendMaxRows];
    for (int r = 0; r < R; ++r) {
        float* sc = srow[r];
        const int n = nrow[r];
        fbatch vm(sc[0]);
        int p = 0;
        for (; p + W <= n; p += W) vm = xsimd::max(vm, fbatch::load_unaligned(sc + p));
        alignas(64) float lanes[W];
        vm.store_aligned(lanes);
        float mx = lanes[0];
        for (int64_t u = 1; u < W; ++u) mx = lanes[u] > mx ? lanes[u] : mx;
        for (; p < n; ++p) mx = sc[p] > mx ? sc[p] : mx;
        const fbatch vmx(mx);
        fbatch vs(0.0f);
        p = 0;
        for (; p + W <= n; p += W) {
            const fbatch e = xsimd::exp(fbatch::load_unaligned(sc + p) - vmx);
            e.store_unaligned(sc + p);
            vs += e;
        }
        float sum = xsimd::hadd(vs);
        for (; p < n; ++p) {
            sc[p] = std::exp(sc[p] - mx);
            sum += sc[p];
        }
        inv[r] = 1.0f / sum;
        for (; p < n_pos; ++p) sc[p] = 0.0f;  // past this row's end: no weight in the value sum
    }
    // out_r = sum_p e_rp v_p (attend_values: page by page), then * 1/sum_r
    const int d4 = hd / (4 * int(W)) * (4 * int(W)), d1 = hd / int(W) * int(W);
    attend_values<4>(srow, nrow, R, vpages, page, stride, 0, d4, orow);
    attend_values<1>(srow, nrow, R, vpages, page, stride, d4, d1, orow);
    int d0 = d1;
    for (; d0 < hd; ++d0)
        for (int r = 0; r < R; ++r) {
            float o = 0;
            for (int p = 0; p < nrow[r]; ++p) o += srow[r][p] * kv_one(vpages[p / page] + size_t(p % page) * stride + size_t(d0));
            orow[r][d0] = o;
        }
    for (int r = 0; r < R; ++r) {
        float* o = orow[r];
        const fbatch vi(inv[r]);
        int d = 0;
        for (; d + W <= hd; d += W) (fbatch::load_unaligned(o + d) * vi).store_unaligned(o + d);
        for (; d < hd; ++d) o[d] *= inv[r];
    }
}

}  // namespace

KernelTable make_table(const char* name, int rank) {
    KernelTable t;
    t.name = name;
    t.rank = rank;
    t.matmul[size_t(DType::F32)] = matmul_f32;
    t.matmul[size_t(DType::F16)] = matmul_f16;
    t.matmul[size_t(DType::BF16)] = matmul_bf16;
    t.matmul[size_t(DType::Q8_0)] = matmul_q8_0;
    t.matmul[size_t(DType::Q4_0)] = matmul_q4_0;
    t.matmul[size_t(DType::Q4_1)] = matmul_quant_type<DType::Q4_1>;
    t.matmul[size_t(DType::Q5_0)] = matmul_quant_type<DType::Q5_0>;
    t.matmul[size_t(DType::Q5_1)] = matmul_quant_type<DType::Q5_1>;
    t.matmul[size_t(DType::IQ4_NL)] = matmul_quant_type<DType::IQ4_NL>;
    t.matmul[size_t(DType::Q2_K)] = matmul_quant_type<DType::Q2_K>;
    t.matmul[size_t(DType::Q3_K)] = matmul_quant_type<DType::Q3_K>;
    t.matmul[size_t(DType::Q4_K)] = matmul_quant_type<DType::Q4_K>;
    t.matmul[size_t(DType::Q5_K)] = matmul_quant_type<DType::Q5_K>;
    t.matmul[size_t(DType::Q6_K)] = matmul_quant_type<DType::Q6_K>;
    t.matmul[size_t(DType::IQ4_XS)] = matmul_quant_type<DType::IQ4_XS>;
#if defined(__AVX2__)  // AVX-512 VNNI or AVX2 (+FMA, F16C) kernels over the same layout
    t.matmul_x16[size_t(DType::Q4_0)] = matmul_q4_0_x16;
    t.matmul_x16[size_t(DType::Q8_0)] = matmul_q8_0_x16;
    t.matmul_x16[size_t(DType::Q4_K)] = matmul_k_x16<DType::Q4_K>;
    t.matmul_x16[size_t(DType::Q5_K)] = matmul_k_x16<DType::Q5_K>;
    t.matmul_x16[size_t(DType::Q6_K)] = matmul_k_x16<DType::Q6_K>;
#endif
#if defined(__AVX2__) && defined(__F16C__)
    t.matmul_x16[size_t(DType::F16)] = matmul_f16_x16;  // exact F16 in the F16x16 layout (AVX-512 or AVX2)
#endif
    t.quantize_q8_0 = quantize_q8_0;
    t.encode_bf16 = encode_bf16;
    t.dot_f32 = dot_f32_fn;
    t.axpy_f32 = axpy_f32;
    t.scale_f32 = scale_f32;
    t.rmsnorm = rmsnorm;
    t.swiglu = swiglu;
    t.attend = attend<float>;
    t.attend_f16 = attend<uint16_t>;
    t.encode_f16 = encode_f16;
    return t;
}

}  // namespace ember::kernels::EMBER_ISA_NS
