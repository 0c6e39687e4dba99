// The amx kernel table: the avx512bf16 table plus Q4_0x16, Q8_0x16 and
// Q4_K/Q5_K/Q6_K x16 matmuls for 32 or more activation rows on the AMX tile
// unit (TDPBSSD), and BF16x16 matmuls for any number of rows (TDPBF16PS).
// Compiled with the avx512bf16 flags and -mamx-tile -mamx-int8 -mamx-bf16
// (CMakeLists.txt); chosen only where the CPU has AMX-INT8 and AMX-BF16 and
// the kernel lets the process use the tile registers (src/dispatch.cpp).
// Everything here is in an anonymous namespace inside the ISA's namespace
// (tests/isa_symbols.cmake).
//
// One tile multiply gives a unit's 16 x 16 int32 sums (a 32-element block,
// or a Q6_K half block), 16 activation rows by the 16 weight rows of a group
// (kernels/repack.hpp): Q8_0x16's weight bytes are already the B-tile layout
// (8 rows of 16 rows x 4 bytes); the other types' quants are unpacked into it
// once per group. The sums are then scaled and accumulated exactly as the
// avx512 kernels do it (x16_group in kernels/simd.hpp, x16_q45k and x16_q6k in
// kernels/simd_quants.hpp: the same float operations, units in order), so a
// row's result is the same bits whichever table, batch or thread computes it;
// fewer than 32 activation rows (a decode, a few batched sessions) go to the
// avx512 kernels, faster there. (BF16x16: see matmul_bf16_amx.)
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <utility>

#include "ember/kernels/dispatch.hpp"
#include "ember/tensor.hpp"

#if !defined(__AMX_INT8__) || !defined(__AMX_BF16__) || !defined(__AMX_TILE__) || !defined(__AVX512F__)
#error "kernels_amx.cpp needs -mamx-tile -mamx-int8 -mamx-bf16 and the avx512 flags"
#endif

namespace ember::kernels {
const KernelTable& table_avx512bf16();

namespace isa_amx {
namespace {

#include "ember/kernels/x16_kquants_avx512.hpp"

// Tile loads and stores with their memory operands stated exactly (GCC's
// _tile_loadd names none, so an earlier store to the bytes it reads could be
// moved after it; its _tile_stored clobbers all memory, which kept the
// accumulators in memory, on the stack, through every block).
template <size_t N>
struct Bytes { uint8_t b[N]; };
#define EMBER_TILE_LOAD(t, N, base, stride)                                                \
    __asm__ volatile("tileloadd (%1,%2,1), %%tmm" #t                                       \
                     :                                                                     \
                     : "m"(*reinterpret_cast<const Bytes<N>*>(base)), "r"(base), "r"(long(stride)))
#define EMBER_TILE_STORE(t, base)                                                          \
    __asm__ volatile("tilestored %%tmm" #t ", (%1,%2,1)"                                   \
                     : "=m"(*reinterpret_cast<Bytes<1024>*>(base))                         \
                     : "r"(base), "r"(64L))

// The weight types, as the tile kernels see them. A "unit" is what one tile
// multiply covers: a 32-element block (Q4_0, Q8_0, Q4_K/Q5_K sub-blocks), or
// half of one (Q6_K, whose 16-element halves have their own scales).
enum class Kind { Q4_0, Q8_0, K45, Q6K };
constexpr bool kHalves(Kind k) { return k == Kind::Q6K; }

// Tiles: 0, 1: activation rows (16 x 32 bytes, one block of 16 rows; Q6_K:
// 16 x 16, a half block); 2, 3: weights (8 x 64 bytes; Q6_K: 4 x 64);
// 4..7: int32 sums (16 x 64 bytes).
struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};
constexpr TileConfig make_config(bool halves) {
    TileConfig c;
    c.colsb[0] = c.colsb[1] = halves ? 16 : 32, c.rows[0] = c.rows[1] = 16;
    c.colsb[2] = c.colsb[3] = 64, c.rows[2] = c.rows[3] = halves ? 4 : 8;
    for (int t = 4; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = 16;
    return c;
}
constexpr TileConfig kConfig = make_config(false), kConfigHalves = make_config(true);
// BF16x16: every tile 16 rows x 64 bytes (16 element pairs; 16 float sums).
constexpr TileConfig make_config_bf16() {
    TileConfig c;
    for (int t = 0; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = 16;
    return c;
}
constexpr TileConfig kConfigBf16 = make_config_bf16();

constexpr int kPanelRows = 128;                 // activation rows prepared at once (and the model's panel)
constexpr int kMinRows = 32;                    // fewer go to the avx512 kernels
constexpr size_t kQ4Block = 18, kQ8Block = 34;  // bytes per block and row

// The avx512 table's kernels, for fewer than kMinRows activation rows.
MatmulFn base[kMaxTypeId] = {};

// For a tile of 16 activation rows (Q8_0, `xs` apart; rows >= `valid` are
// zero padding) of nb blocks: the quants as A tiles (block k's 16 x 32 bytes
// at a + 512 k: one tile load reads 8 whole lines, where rows a whole row of
// blocks apart took 3-4x as long) and per block k and row j: dx[k * 16 + j];
// Q4_K/Q5_K: xsum[k * 16 + j] = dx * (sum of the block's quants), for the
// mins. (Block-major, so the 16 rows' values sit at fixed offsets from one
// pointer; row-major, GCC kept 16 pointers and spilled them.) Each value is
// computed as the avx512 kernels compute it.
template <Kind K>
inline void prepare(const uint8_t* X, size_t xs, int valid, int64_t nb, uint8_t* a, float* dx, float* xsum) {
    for (int j = 0; j < 16; ++j) {
        for (int64_t k = 0; k < nb; ++k) {
            uint8_t* to = a + size_t(k) * 512 + 32 * j;
            if (j >= valid) {
                std::memset(to, 0, 32);
                dx[k * 16 + j] = 0;
                if (K == Kind::K45) xsum[k * 16 + j] = 0;
                continue;
            }
            const uint8_t* b = X + size_t(j) * xs + size_t(k) * kQ8Block;
            uint16_t h;
            std::memcpy(&h, b, 2);
            const float d = _cvtsh_ss(h);
            dx[k * 16 + j] = d;
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
            _mm256_store_si256(reinterpret_cast<__m256i*>(to), q);
            if constexpr (K == Kind::K45) {
                // the halves' sums: PSADBW of the sign-flipped bytes, less 16 * 128 each
                const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
                const int s0 = int(_mm256_extract_epi64(sad, 0) + _mm256_extract_epi64(sad, 1)) - 16 * 128;
                const int s1 = int(_mm256_extract_epi64(sad, 2) + _mm256_extract_epi64(sad, 3)) - 16 * 128;
                xsum[k * 16 + j] = d * float(s0 + s1);
            }
        }
    }
}

// A 16-row weight group, as its units' tiles and scales (made by the unpack
// functions below): unit u's weight tile at B + u * bs (rows 64 bytes apart);
// its 16 rows' scales as fp16 at sc16 + u * gb (Q4_0, Q8_0) or as floats at
// D + 16 u (K types), the mins' at O + 16 u (Q4_K, Q5_K).
struct Group {
    const uint8_t* B;
    size_t bs;
    const uint8_t* sc16;
    size_t gb;
    const float* D;
    const float* O;
};

// A group against a tile of 16 activation rows (`a`, dx, xsum from
// prepare), over `units` units. Writes the `valid` first rows of the result
// to Y (row j at Y + j * ldy). c: room for four units' sums, 64-byte aligned
// (a local array there made GCC keep the accumulators in memory). pf, when
// not null, is the next group: each unit prefetches its share of it (pfs
// bytes), so the next group's weights arrive from memory while this one is
// multiplied (kernel alone, 64 rows: Q4_0 +13%, Q8_0 +5%, K types +2-5%).
template <Kind K>
inline void group_tile(const Group& g, const uint8_t* a, int64_t units, const float* dx, const float* xsum, int valid, float* Y, int64_t ldy, int32_t (*c)[256], const uint8_t* pf,
                       size_t pfs) {
    __m512 a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15;
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = _mm512_setzero_ps();
    const uint8_t* const B = g.B;
    const size_t bs = g.bs;
    // A ring of four sum tiles: units u, u+1 are multiplied into tiles 4, 5
    // while the sums of u-2, u-1 are taken from 6, 7 and scaled, and so on, so
    // the tile unit always has the next products queued (with two tiles each
    // new product waited for the last one's sums to be stored).
#define EMBER_ISSUE(TA, TB, TC, uu)                                                                   \
    do {                                                                                              \
        const int64_t u_ = (uu);                                                                      \
        if constexpr (kHalves(K)) {                                                                   \
            EMBER_TILE_LOAD(TA, 496, a + size_t(u_ >> 1) * 512 + 16 * (u_ & 1), 32);                  \
            EMBER_TILE_LOAD(TB, 256, B + size_t(u_) * bs, 64);                                        \
        } else {                                                                                      \
            EMBER_TILE_LOAD(TA, 512, a + size_t(u_) * 512, 32);                                       \
            EMBER_TILE_LOAD(TB, 512, B + size_t(u_) * bs, 64);                                        \
        }                                                                                             \
        _tile_zero(TC);                                                                               \
        _tile_dpbssd(TC, TA, TB);                                                                     \
    } while (0)
    // unit uu's sums into the accumulators, as the avx512 kernels do it:
    // sixteen named variables (as an array GCC kept them in memory)
#define EMBER_ROW(j, i)                                                                                    \
    do {                                                                                                   \
        __m512i p = _mm512_load_si512(c[i] + 16 * j);                                                      \
        a##j = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(dk[j])), a##j);     \
        if constexpr (K == Kind::K45) a##j = _mm512_fnmadd_ps(ov, _mm512_set1_ps(xk[j]), a##j);            \
    } while (0)
#define EMBER_DRAIN(TC, i, uu)                                                                             \
    do {                                                                                                   \
        EMBER_TILE_STORE(TC, c[i]);                                                                        \
        const int64_t u_ = (uu), b_ = kHalves(K) ? u_ >> 1 : u_;                                           \
        if (pf)                                                                                            \
            for (size_t o_ = 0; o_ < pfs; o_ += 64)                                                        \
                _mm_prefetch(reinterpret_cast<const char*>(pf + size_t(u_) * pfs + o_), _MM_HINT_T0);     \
        const __m512 dw = K == Kind::Q4_0 || K == Kind::Q8_0                                               \
                              ? _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.sc16 + size_t(u_) * g.gb))) \
                              : _mm512_loadu_ps(g.D + 16 * u_);                                            \
        const __m512 ov = K == Kind::K45 ? _mm512_loadu_ps(g.O + 16 * u_) : dw;                            \
        const float* dk = dx + b_ * 16;                                                                    \
        const float* xk = xsum + b_ * 16;                                                                  \
        (void)xk, (void)ov;                                                                                \
        EMBER_ROW(0, i); EMBER_ROW(1, i); EMBER_ROW(2, i); EMBER_ROW(3, i);                                \
        EMBER_ROW(4, i); EMBER_ROW(5, i); EMBER_ROW(6, i); EMBER_ROW(7, i);                                \
        EMBER_ROW(8, i); EMBER_ROW(9, i); EMBER_ROW(10, i); EMBER_ROW(11, i);                              \
        EMBER_ROW(12, i); EMBER_ROW(13, i); EMBER_ROW(14, i); EMBER_ROW(15, i);                            \
    } while (0)
    EMBER_ISSUE(0, 2, 4, 0);
    if (units > 1) EMBER_ISSUE(1, 3, 5, 1);
    int64_t u = 0;
    for (; u + 6 <= units; u += 4) {  // (the loop below without its tests)
        EMBER_ISSUE(0, 2, 6, u + 2);
        EMBER_ISSUE(1, 3, 7, u + 3);
        EMBER_DRAIN(4, 0, u);
        EMBER_DRAIN(5, 1, u + 1);
        EMBER_ISSUE(0, 2, 4, u + 4);
        EMBER_ISSUE(1, 3, 5, u + 5);
        EMBER_DRAIN(6, 2, u + 2);
        EMBER_DRAIN(7, 3, u + 3);
    }
    for (;; u += 4) {
        if (u + 2 < units) EMBER_ISSUE(0, 2, 6, u + 2);
        if (u + 3 < units) EMBER_ISSUE(1, 3, 7, u + 3);
        EMBER_DRAIN(4, 0, u);
        if (u + 1 < units) EMBER_DRAIN(5, 1, u + 1);
        if (u + 4 < units) EMBER_ISSUE(0, 2, 4, u + 4);
        if (u + 5 < units) EMBER_ISSUE(1, 3, 5, u + 5);
        if (u + 2 < units) EMBER_DRAIN(6, 2, u + 2);
        if (u + 3 < units) EMBER_DRAIN(7, 3, u + 3);
        if (u + 4 >= units) break;
    }
#undef EMBER_ISSUE
#undef EMBER_DRAIN
#undef EMBER_ROW
    const __m512 acc[16] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15};
    // Rows past `valid` are padding: a partial tile goes through c[0] (every
    // index constant either way, so acc stays in registers).
    float* const out = valid == 16 ? Y : reinterpret_cast<float*>(c[0]);
    const int64_t ld = valid == 16 ? ldy : 16;
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) _mm512_storeu_ps(out + j * ld, acc[j]);
    if (valid < 16)
        for (int j = 0; j < valid; ++j) std::memcpy(Y + j * ldy, out + 16 * j, 64);
}

// ---- a group's units, unpacked once per call (kernels/repack.hpp's layouts) ----

// The weights enter the tile multiplies as signed bytes, their offsets
// (Q4_0's 8, Q6_K's 32) already taken off: the int32 sums are then exactly
// the avx512 kernels' (which add -offset * sum(x) to unsigned products), with
// no correction to add per row.

// Q4_0x16: block k's weights as its B tile (512 bytes at out + 512 k): rows
// 0..3 from the low nibbles of the four 64-byte pieces (elements 4b..4b+3),
// rows 4..7 from the high ones (elements 16+4b..16+4b+3), nibble - 8.
inline void unpack_q4_0(const uint8_t* G, int64_t nb, uint8_t* out) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    for (int64_t k = 0; k < nb; ++k) {
        const uint8_t* blk = G + size_t(k) * 16 * kQ4Block + 32;
        uint8_t* o = out + size_t(k) * 512;
        for (int b = 0; b < 4; ++b) {
            const __m512i v = _mm512_loadu_si512(blk + 64 * b);
            _mm512_store_si512(o + 64 * b, _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
            _mm512_store_si512(o + 64 * (b + 4), _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), eight));
        }
    }
}

// Calls f.template operator()<I>() for I = 0..N-1 (constant sub-block indices).
template <int N, class F>
inline void unrolled(F&& f) {
    [&]<int... I>(std::integer_sequence<int, I...>) { (f.template operator()<I>(), ...); }(std::make_integer_sequence<int, N>{});
}

// Q4_K/Q5_K x16: sub-block S of column k is unit 8k + S: its quants (0..15,
// Q5_K 0..31: signed bytes as they are) as a B tile at out + 512 u, d * scale and dmin * min of the 16
// rows at D + 16 u and O + 16 u (kernels/x16_kquants_avx512.hpp, as the
// avx512 kernel reads them).
template <bool Five>
inline void unpack_k45(const uint8_t* G, int64_t nsb, uint8_t* out, float* D, float* O) {
    constexpr size_t Bk = Five ? 176 : 144;
    for (int64_t k = 0; k < nsb; ++k) {
        const uint8_t* col = G + size_t(k) * 16 * Bk;
        const K45Column c = k45_column(col);
        unrolled<8>([&]<int S>() {
            const int64_t u = 8 * k + S;
            _mm512_storeu_ps(D + 16 * u, k45_D<S>(c));
            _mm512_storeu_ps(O + 16 * u, k45_O<S>(c));
            for (int g = 0; g < 8; ++g) _mm512_store_si512(out + 512 * u + 64 * g, k45_quants<Five, S>(col, g));
        });
    }
}

// Q6_K x16: half h of 32-block Bk of column k is unit 2 (8k + Bk) + h: its
// weights (quant - 32) as a B tile of 4 rows at out + 256 u, d * its scale at
// D + 16 u (as the avx512 kernel reads them).
inline void unpack_q6k(const uint8_t* G, int64_t nsb, uint8_t* out, float* D) {
    for (int64_t k = 0; k < nsb; ++k) {
        const uint8_t* col = G + size_t(k) * 16 * 210;
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(col)));
        for (int gr = 0; gr < 16; ++gr) _mm512_storeu_ps(D + 16 * (16 * k + gr), q6k_scale(col, d, gr));
        unrolled<8>([&]<int Bk>() {
            // pieces 0..3: unit 2 (8k + Bk), 4..7: the next
            for (int g = 0; g < 8; ++g)
                _mm512_store_si512(out + 256 * (2 * (8 * k + Bk)) + 64 * g,
                                   _mm512_sub_epi8(q6k_quants<Bk>(col, g), _mm512_set1_epi8(32)));
        });
    }
}

constexpr Kind kind_of(DType t) {
    return t == DType::Q4_0 ? Kind::Q4_0 : t == DType::Q8_0 ? Kind::Q8_0 : t == DType::Q6_K ? Kind::Q6K : Kind::K45;
}

// MatmulFn over x16 weights of type T; r0, r1 multiples of 16.
template <DType T>
void matmul_amx(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs, int64_t nt,
                float* Y, int64_t ldy) {
    // Below 32 activation rows (a decode, a few batched sessions) the avx512
    // kernels are faster: bench_kernels, 2 threads, 5632 x 2048, GOPS avx512 /
    // amx: Q4_0 at 16 rows 700 / 590, at 32 rows 650 / 750, at 64 rows 720 /
    // 940; Q8_0 at 16 rows 610 / 560, at 32 rows 650 / 770, at 64 rows 690 / 910.
    if (nt < kMinRows) return base[size_t(T)](n, W, ws, r0, r1, X, xs, nt, Y, ldy);
    constexpr Kind K = kind_of(T);
    const int64_t nb = n / 32, units = kHalves(K) ? 2 * nb : nb;
    float* const dx = static_cast<float*>(kernel_scratch(10, sizeof(float) * size_t(kPanelRows * nb)));
    float* const xsum = static_cast<float*>(kernel_scratch(2, sizeof(float) * size_t(kPanelRows * nb)));
    uint8_t* const xa = static_cast<uint8_t*>(kernel_scratch(13, size_t(kPanelRows / 16) * size_t(nb) * 512));
    auto* const cbuf = static_cast<int32_t(*)[256]>(kernel_scratch(14, 4 * 256 * sizeof(int32_t)));
    // the group's unpacked units (all kinds but Q8_0, whose blocks are B tiles as stored)
    uint8_t* const bt = K != Kind::Q8_0 ? static_cast<uint8_t*>(kernel_scratch(12, size_t(nb) * 512)) : nullptr;
    float* const sc = K == Kind::K45 || K == Kind::Q6K ? static_cast<float*>(kernel_scratch(15, sizeof(float) * 32 * size_t(units)))
                                                       : nullptr;
    _tile_loadconfig(kHalves(K) ? &kConfigHalves : &kConfig);
    for (int64_t p0 = 0; p0 < nt; p0 += kPanelRows) {
        const int P = int(nt - p0 < kPanelRows ? nt - p0 : kPanelRows);
        const int tiles = (P + 15) / 16;
        for (int t = 0; t < tiles; ++t)
            prepare<K>(X + size_t(p0 + 16 * t) * xs, xs, P - 16 * t < 16 ? P - 16 * t : 16, nb,
                       xa + size_t(t) * size_t(nb) * 512, dx + size_t(t) * 16 * nb, xsum + size_t(t) * 16 * nb);
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t* G = W + size_t(r) * ws;  // a group's 16 rows are contiguous
            Group g{};
            if constexpr (K == Kind::Q4_0) {
                unpack_q4_0(G, nb, bt);
                g = Group{bt, 512, G, 16 * kQ4Block, nullptr, nullptr};
            } else if constexpr (K == Kind::Q8_0) {
                g = Group{G + 32, 16 * kQ8Block, G, 16 * kQ8Block, nullptr, nullptr};
            } else if constexpr (K == Kind::K45) {
                unpack_k45<T == DType::Q5_K>(G, nb / 8, bt, sc, sc + 16 * units);
                g = Group{bt, 512, nullptr, 0, sc, sc + 16 * units};
            } else {
                unpack_q6k(G, nb / 8, bt, sc);
                g = Group{bt, 256, nullptr, 0, sc, nullptr};
            }
            for (int t = 0; t < tiles; ++t)
                group_tile<K>(g, xa + size_t(t) * size_t(nb) * 512, units, dx + size_t(t) * 16 * nb,
                              xsum + size_t(t) * 16 * nb, P - 16 * t < 16 ? P - 16 * t : 16,
                              Y + (p0 + 16 * t) * ldy + r, ldy, cbuf, t == 0 && r + 16 < r1 ? G + 16 * ws : nullptr,
                              16 * ws / size_t(units));
        }
    }
    _tile_release();
}

// ---- BF16x16 weights (kernels/repack.hpp) on TDPBF16PS --------------------------
// A BF16x16 group's 16 consecutive element pairs (64 bytes each: one pair of
// every row) are a B tile as stored, and there are no block scales: each
// output accumulates its whole row in its tile, in pair order, 16 pairs per
// multiply from pair 0, and is stored once. Every activation row count takes
// this path (a decode too: a tile of 16 rows, one of them used), so a row's
// result is the same bits whatever the batch, tile or thread (TDPBF16PS
// computes each output from its own row and column only). The last, partial
// step of pairs reads zero-padded copies of both operands.

// Activation rows (BF16, `xs` apart) as A tiles of 16 rows x 16 pairs: step
// kk's 1 KiB at a + 1024 kk, pairs past np zero. Rows >= `valid` are left as
// they are: an output row depends on its own activation row only, and those
// outputs are never stored (a decode would otherwise clear 15 rows per call).
inline void bf16_prepare(const uint8_t* X, size_t xs, int valid, int64_t np, int64_t steps, uint8_t* a) {
    for (int j = 0; j < valid; ++j)
        for (int64_t kk = 0; kk < steps; ++kk) {
            uint8_t* to = a + size_t(kk) * 1024 + 64 * j;
            const int64_t here = np - 16 * kk < 16 ? np - 16 * kk : 16;
            std::memcpy(to, X + size_t(j) * xs + size_t(kk) * 64, size_t(here) * 4);
            if (here < 16) std::memset(to + here * 4, 0, size_t(16 - here) * 4);
        }
}

// Group G's last, partial step of pairs (from pair 16 * full to np) as a
// B tile padded with zero pairs, at out.
inline void bf16_tail(const uint8_t* G, int64_t np, int64_t full, uint8_t* out) {
    const size_t here = size_t(np - 16 * full) * 64;
    std::memcpy(out, G + size_t(full) * 1024, here);
    std::memset(out + here, 0, 1024 - here);
}

// Weight steps (1 KiB each) prefetched ahead of the tile loads: 2 read the
// most (decode kernel alone, 2 threads: 32 GB/s against 28 with none, 30-31
// with 4-16).
constexpr int64_t kAhead = 2;

// One tile of activation rows (a decode or a few rows, `valid` of them, at
// xa) against the groups of rows [r0, r1), four a pass: the tile unit then
// reads four weight streams at once (with two, decode was 5-6% slower than
// the VDPBF16PS kernel's four).
inline void bf16_one_tile(const uint8_t* W, size_t gs, int64_t r0, int64_t r1, int64_t np, int64_t steps, int64_t full,
                          const uint8_t* xa, int valid, float* Y, int64_t ldy, uint8_t* tail, float (*cbuf)[256]) {
    for (int64_t r = r0; r < r1; r += 64) {
        const int ng = int((r1 - r) / 16 < 4 ? (r1 - r) / 16 : 4);
        const uint8_t* G[4];
        for (int i = 0; i < 4; ++i) G[i] = W + size_t(r / 16 + (i < ng ? i : 0)) * gs;  // (spares repeat the first)
        if (full < steps)
            for (int i = 0; i < 4; ++i) bf16_tail(G[i], np, full, tail + 1024 * i);
        _tile_zero(4);
        _tile_zero(5);
        _tile_zero(6);
        _tile_zero(7);
        for (int64_t kk = 0; kk < steps; ++kk) {
            const uint8_t* b[4];
            for (int i = 0; i < 4; ++i) b[i] = kk < full ? G[i] + size_t(kk) * 1024 : tail + 1024 * i;
            if (kk + kAhead < full)
                for (int i = 0; i < ng; ++i)
                    for (int o = 0; o < 1024; o += 64)
                        _mm_prefetch(reinterpret_cast<const char*>(b[i] + kAhead * 1024 + o), _MM_HINT_T0);
            EMBER_TILE_LOAD(0, 1024, xa + size_t(kk) * 1024, 64);
            EMBER_TILE_LOAD(1, 1024, b[0], 64);
            _tile_dpbf16ps(4, 0, 1);
            EMBER_TILE_LOAD(2, 1024, b[1], 64);
            _tile_dpbf16ps(5, 0, 2);
            EMBER_TILE_LOAD(1, 1024, b[2], 64);
            _tile_dpbf16ps(6, 0, 1);
            EMBER_TILE_LOAD(2, 1024, b[3], 64);
            _tile_dpbf16ps(7, 0, 2);
        }
        EMBER_TILE_STORE(4, cbuf[0]);
        EMBER_TILE_STORE(5, cbuf[1]);
        EMBER_TILE_STORE(6, cbuf[2]);
        EMBER_TILE_STORE(7, cbuf[3]);
        for (int i = 0; i < ng; ++i)
            for (int j = 0; j < valid; ++j) std::memcpy(Y + j * ldy + r + 16 * i, cbuf[i] + 16 * j, 64);
    }
}

void matmul_bf16_amx(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs,
                     int64_t nt, float* Y, int64_t ldy) {
    const int64_t np = n / 2, steps = (np + 15) / 16, full = np / 16;
    const size_t gs = 16 * ws;  // bytes per group
    const int tiles_max = kPanelRows / 16;
    uint8_t* const xa = static_cast<uint8_t*>(kernel_scratch(13, size_t(tiles_max) * size_t(steps) * 1024));
    uint8_t* const tail = static_cast<uint8_t*>(kernel_scratch(12, 4 * 1024));  // up to four groups' last steps, padded
    auto* const cbuf = static_cast<float(*)[256]>(kernel_scratch(14, 4 * 256 * sizeof(float)));
    _tile_loadconfig(&kConfigBf16);
    for (int64_t p0 = 0; p0 < nt; p0 += kPanelRows) {
        const int P = int(nt - p0 < kPanelRows ? nt - p0 : kPanelRows);
        const int tiles = (P + 15) / 16;
        for (int t = 0; t < tiles; ++t)
            bf16_prepare(X + size_t(p0 + 16 * t) * xs, xs, P - 16 * t < 16 ? P - 16 * t : 16, np, steps,
                         xa + size_t(t) * size_t(steps) * 1024);
        if (tiles == 1) {  // a decode or a few rows: four groups a pass, four weight streams
            bf16_one_tile(W, gs, r0, r1, np, steps, full, xa, P, Y + p0 * ldy, ldy, tail, cbuf);
            continue;
        }
        for (int64_t r = r0; r < r1; r += 32) {
            // two groups at a time (the second the first again when only one is left: its sums unused)
            const bool two = r + 16 < r1;
            const uint8_t* G0 = W + size_t(r / 16) * gs;
            const uint8_t* G1 = two ? G0 + gs : G0;
            if (full < steps)
                for (int i = 0; i < 2; ++i) bf16_tail(i ? G1 : G0, np, full, tail + 1024 * i);
            for (int t = 0; t < tiles; t += 2) {
                // two activation tiles at a time (likewise)
                const bool two_t = t + 1 < tiles;
                const uint8_t* a0 = xa + size_t(t) * size_t(steps) * 1024;
                const uint8_t* a1 = two_t ? a0 + size_t(steps) * 1024 : a0;
                _tile_zero(4);
                _tile_zero(5);
                _tile_zero(6);
                _tile_zero(7);
                for (int64_t kk = 0; kk < steps; ++kk) {
                    const uint8_t* b0 = kk < full ? G0 + size_t(kk) * 1024 : tail;
                    const uint8_t* b1 = kk < full ? G1 + size_t(kk) * 1024 : tail + 1024;
                    if (t == 0 && kk + kAhead < full)  // the weights kAhead steps ahead, from memory
                        for (int o = 0; o < 1024; o += 64) {
                            _mm_prefetch(reinterpret_cast<const char*>(b0 + kAhead * 1024 + o), _MM_HINT_T0);
                            if (two) _mm_prefetch(reinterpret_cast<const char*>(b1 + kAhead * 1024 + o), _MM_HINT_T0);
                        }
                    EMBER_TILE_LOAD(0, 1024, a0 + size_t(kk) * 1024, 64);
                    EMBER_TILE_LOAD(1, 1024, a1 + size_t(kk) * 1024, 64);
                    EMBER_TILE_LOAD(2, 1024, b0, 64);
                    EMBER_TILE_LOAD(3, 1024, b1, 64);
                    _tile_dpbf16ps(4, 0, 2);
                    _tile_dpbf16ps(5, 0, 3);
                    _tile_dpbf16ps(6, 1, 2);
                    _tile_dpbf16ps(7, 1, 3);
                }
                EMBER_TILE_STORE(4, cbuf[0]);
                EMBER_TILE_STORE(5, cbuf[1]);
                EMBER_TILE_STORE(6, cbuf[2]);
                EMBER_TILE_STORE(7, cbuf[3]);
                for (int tt = 0; tt < (two_t ? 2 : 1); ++tt) {
                    const int t_abs = t + tt;
                    const int valid = P - 16 * t_abs < 16 ? P - 16 * t_abs : 16;
                    for (int gg = 0; gg < (two ? 2 : 1); ++gg) {
                        const float* c = cbuf[2 * tt + gg];
                        float* y = Y + (p0 + 16 * t_abs) * ldy + r + 16 * gg;
                        for (int j = 0; j < valid; ++j) std::memcpy(y + j * ldy, c + 16 * j, 64);
                    }
                }
            }
        }
    }
    _tile_release();
}

}  // namespace
}  // namespace isa_amx

const KernelTable& table_amx() {
    static const KernelTable t = [] {
        KernelTable k = table_avx512bf16();
        for (size_t i = 0; i < kMaxTypeId; ++i) isa_amx::base[i] = k.matmul_x16[i];
        k.name = "amx";
        k.rank = 5;
        k.x16_panel_rows = isa_amx::kPanelRows;
        k.bf16_x16_rows = 64;
        k.matmul_x16[size_t(DType::Q4_0)] = isa_amx::matmul_amx<DType::Q4_0>;
        k.matmul_x16[size_t(DType::Q8_0)] = isa_amx::matmul_amx<DType::Q8_0>;
        k.matmul_x16[size_t(DType::Q4_K)] = isa_amx::matmul_amx<DType::Q4_K>;
        k.matmul_x16[size_t(DType::Q5_K)] = isa_amx::matmul_amx<DType::Q5_K>;
        k.matmul_x16[size_t(DType::Q6_K)] = isa_amx::matmul_amx<DType::Q6_K>;
        k.matmul_x16[size_t(DType::BF16)] = isa_amx::matmul_bf16_amx;
        return k;
    }();
    return t;
}

}  // namespace ember::kernels
