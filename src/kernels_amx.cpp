// The amx kernel table: the avx512bf16 table plus Q4_0x16 / Q8_0x16 matmuls
// for several activation rows on the AMX tile unit (TDPBSSD / TDPBSUD).
// Compiled with the avx512bf16 flags and -mamx-tile -mamx-int8
// (CMakeLists.txt); chosen only where the CPU has AMX-INT8 and the kernel lets
// the process use the tile registers (src/dispatch.cpp). Everything here is in
// an anonymous namespace inside the ISA's namespace (tests/isa_symbols.cmake).
//
// One tile multiply gives a block column's 16 x 16 int32 sums, 16 activation
// rows by the 16 weight rows of a group (kernels/repack.hpp): Q8_0x16's weight
// bytes are already the B-tile layout (8 rows of 16 rows x 4 bytes), Q4_0x16's
// nibbles are split into it once per group. The sums are then scaled and
// accumulated exactly as the avx512 kernels do it (x16_group in
// kernels/simd.hpp: per block, acc = fma(float(sum), dw * dx, acc), blocks in
// order), so a row's result is the same bits whichever table, batch or thread
// computes it; fewer than 32 activation rows (a decode, a few batched
// sessions) go to the avx512 kernels, faster there.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ember/kernels/dispatch.hpp"
#include "ember/tensor.hpp"

#if !defined(__AMX_INT8__) || !defined(__AMX_TILE__) || !defined(__AVX512F__)
#error "kernels_amx.cpp needs -mamx-tile -mamx-int8 and the avx512 flags"
#endif

namespace ember::kernels {
const KernelTable& table_avx512bf16();

namespace isa_amx {
namespace {

// Tile loads and stores with their memory operands stated exactly (GCC's
// _tile_loadd names none, so an earlier store to the bytes it reads could be
// moved after it; its _tile_stored clobbers all memory, which kept the
// accumulators in memory, on the stack, through every block). Every tile here
// is 512 (loads) or 1024 (stores) contiguous bytes.
struct Bytes512 { uint8_t b[512]; };
struct Bytes1024 { uint8_t b[1024]; };
#define EMBER_TILE_LOAD(t, base, stride)                                                   \
    __asm__ volatile("tileloadd (%1,%2,1), %%tmm" #t                                       \
                     :                                                                     \
                     : "m"(*reinterpret_cast<const Bytes512*>(base)), "r"(base), "r"(long(stride)))
#define EMBER_TILE_STORE(t, base)                                                          \
    __asm__ volatile("tilestored %%tmm" #t ", (%1,%2,1)"                                   \
                     : "=m"(*reinterpret_cast<Bytes1024*>(base))                           \
                     : "r"(base), "r"(64L))

// Tiles: 0, 1: activation rows (16 x 32 bytes: one block of 16 rows);
// 2, 3: weight blocks (8 x 64 bytes); 4..7: int32 sums (16 x 64 bytes).
struct alignas(64) TileConfig {
    uint8_t palette = 1, start_row = 0, reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};
constexpr TileConfig make_config() {
    TileConfig c;
    c.colsb[0] = c.colsb[1] = 32, c.rows[0] = c.rows[1] = 16;
    c.colsb[2] = c.colsb[3] = 64, c.rows[2] = c.rows[3] = 8;
    for (int t = 4; t < 8; ++t) c.colsb[t] = 64, c.rows[t] = 16;
    return c;
}
constexpr TileConfig kConfig = make_config();

constexpr int kPanelRows = 128;                 // activation rows prepared at once
constexpr int kMinRows = 32;                    // fewer go to the avx512 kernels
constexpr size_t kQ4Block = 18, kQ8Block = 34;  // bytes per block and row

// The avx512 table's kernels, for fewer than kMinRows activation rows.
MatmulFn base_q4 = nullptr, base_q8 = nullptr;

// For a tile of 16 activation rows (Q8_0, `xs` apart; rows >= `valid` are
// zero padding) of nb blocks: the quants as A tiles (block k's 16 x 32 bytes
// at a + 512 k: one tile load reads 8 whole lines, where rows a whole row of
// blocks apart took 3-4x as long), dx[k * 16 + j], and for Q4_0 corr[k * 16 + j]
// = -8 * (sum of the block's quants): the weights enter as nibbles 0..15.
// (Block-major, so the 16 rows' values sit at fixed offsets from one pointer.)
template <bool Q4>
inline void prepare(const uint8_t* X, size_t xs, int valid, int64_t nb, uint8_t* a, float* dx, int32_t* corr) {
    for (int j = 0; j < 16; ++j) {
        for (int64_t k = 0; k < nb; ++k) {
            uint8_t* to = a + size_t(k) * 512 + 32 * j;
            if (j >= valid) {
                std::memset(to, 0, 32);
                dx[k * 16 + j] = 0;
                if (Q4) corr[k * 16 + j] = 0;
                continue;
            }
            const uint8_t* b = X + size_t(j) * xs + size_t(k) * kQ8Block;
            uint16_t h;
            std::memcpy(&h, b, 2);
            dx[k * 16 + j] = _cvtsh_ss(h);
            const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2));
            _mm256_store_si256(reinterpret_cast<__m256i*>(to), q);
            if constexpr (Q4) {
                // sum of int8: PSADBW of the sign-flipped bytes, less 32 * 128
                const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(char(0x80))), _mm256_setzero_si256());
                const int s = int(_mm256_extract_epi64(sad, 0) + _mm256_extract_epi64(sad, 1) + _mm256_extract_epi64(sad, 2) +
                                  _mm256_extract_epi64(sad, 3)) - 32 * 128;
                corr[k * 16 + j] = -8 * s;
            }
        }
    }
}

// A 16-row weight group G against a tile of 16 activation rows (`a`, from
// prepare): block column k's weight tile at B + k * bs (rows 64 bytes apart),
// its scales at G + k * gb. Writes the `valid` first rows of the result to Y
// (row j at Y + j * ldy). c: room for four blocks' sums, 64-byte aligned (a
// local array there made GCC keep the accumulators in memory).
template <bool Q4>
inline void group_tile(const uint8_t* G, size_t gb, const uint8_t* B, size_t bs, const uint8_t* a, int64_t nb,
                       const float* dx, const int32_t* corr, int valid, float* Y, int64_t ldy, int32_t (*c)[256]) {
    __m512 a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15;
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = _mm512_setzero_ps();
    // A ring of four sum tiles: blocks k, k+1 are multiplied into tiles 4, 5
    // while the sums of k-2, k-1 are taken from 6, 7 and scaled, and so on, so
    // the tile unit always has the next products queued (with two tiles each
    // new product waited for the last one's sums to be stored).
#define EMBER_ISSUE(TA, TB, TC, kk)                                  \
    do {                                                             \
        EMBER_TILE_LOAD(TA, a + size_t(kk) * 512, 32);               \
        EMBER_TILE_LOAD(TB, B + size_t(kk) * bs, 64);                \
        _tile_zero(TC);                                              \
        if constexpr (Q4) _tile_dpbsud(TC, TA, TB);                  \
        else _tile_dpbssd(TC, TA, TB);                               \
    } while (0)
    // block kk's sums into the accumulators: sixteen named variables (as an
    // array GCC kept them in memory)
#define EMBER_ROW(j, i)                                                                                    \
    do {                                                                                                   \
        __m512i p = _mm512_load_si512(c[i] + 16 * j);                                                      \
        if constexpr (Q4) p = _mm512_add_epi32(p, _mm512_set1_epi32(ck[j]));                               \
        a##j = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(dk[j])), a##j);     \
    } while (0)
#define EMBER_DRAIN(TC, i, kk)                                                                              \
    do {                                                                                                    \
        EMBER_TILE_STORE(TC, c[i]);                                                                         \
        const int64_t k_ = (kk);                                                                            \
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(G + size_t(k_) * gb))); \
        const float* dk = dx + k_ * 16;                                                                     \
        const int32_t* ck = corr + k_ * 16;                                                                 \
        (void)ck;                                                                                           \
        EMBER_ROW(0, i); EMBER_ROW(1, i); EMBER_ROW(2, i); EMBER_ROW(3, i);                                 \
        EMBER_ROW(4, i); EMBER_ROW(5, i); EMBER_ROW(6, i); EMBER_ROW(7, i);                                 \
        EMBER_ROW(8, i); EMBER_ROW(9, i); EMBER_ROW(10, i); EMBER_ROW(11, i);                               \
        EMBER_ROW(12, i); EMBER_ROW(13, i); EMBER_ROW(14, i); EMBER_ROW(15, i);                             \
    } while (0)
    EMBER_ISSUE(0, 2, 4, 0);
    if (nb > 1) EMBER_ISSUE(1, 3, 5, 1);
    int64_t k = 0;
    for (; k + 6 <= nb; k += 4) {  // the same without the tests
        EMBER_ISSUE(0, 2, 6, k + 2);
        EMBER_ISSUE(1, 3, 7, k + 3);
        EMBER_DRAIN(4, 0, k);
        EMBER_DRAIN(5, 1, k + 1);
        EMBER_ISSUE(0, 2, 4, k + 4);
        EMBER_ISSUE(1, 3, 5, k + 5);
        EMBER_DRAIN(6, 2, k + 2);
        EMBER_DRAIN(7, 3, k + 3);
    }
    for (;; k += 4) {
        if (k + 2 < nb) EMBER_ISSUE(0, 2, 6, k + 2);
        if (k + 3 < nb) EMBER_ISSUE(1, 3, 7, k + 3);
        EMBER_DRAIN(4, 0, k);
        if (k + 1 < nb) EMBER_DRAIN(5, 1, k + 1);
        if (k + 4 < nb) EMBER_ISSUE(0, 2, 4, k + 4);
        if (k + 5 < nb) EMBER_ISSUE(1, 3, 5, k + 5);
        if (k + 2 < nb) EMBER_DRAIN(6, 2, k + 2);
        if (k + 3 < nb) EMBER_DRAIN(7, 3, k + 3);
        if (k + 4 >= nb) break;
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

// Q4_0x16 group G's nibbles as B tiles, 512 bytes a block: rows 0..3 the low
// nibbles of the four 64-byte pieces (elements 4b..4b+3), rows 4..7 the high
// ones (elements 16+4b..16+4b+3), bytes 0..15.
inline void split_nibbles(const uint8_t* G, int64_t nb, uint8_t* out) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    for (int64_t k = 0; k < nb; ++k) {
        const uint8_t* blk = G + size_t(k) * 16 * kQ4Block + 32;
        uint8_t* o = out + size_t(k) * 512;
        for (int b = 0; b < 4; ++b) {
            const __m512i v = _mm512_loadu_si512(blk + 64 * b);
            _mm512_store_si512(o + 64 * b, _mm512_and_si512(v, m4));
            _mm512_store_si512(o + 64 * (b + 4), _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
        }
    }
}

// MatmulFn over Q4_0x16 / Q8_0x16 weights; r0, r1 multiples of 16.
template <bool Q4>
void matmul_amx(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X, size_t xs, int64_t nt,
                float* Y, int64_t ldy) {
    // Below 32 activation rows (a decode, a few batched sessions) the avx512
    // kernels are faster: bench_kernels, 2 threads, 5632 x 2048, GOPS avx512 /
    // amx: Q4_0 at 16 rows 700 / 590, at 32 rows 650 / 750, at 64 rows 720 /
    // 940; Q8_0 at 16 rows 610 / 560, at 32 rows 650 / 770, at 64 rows 690 / 910.
    if (nt < kMinRows) return (Q4 ? base_q4 : base_q8)(n, W, ws, r0, r1, X, xs, nt, Y, ldy);
    const int64_t nb = n / 32;
    const size_t gb = 16 * (Q4 ? kQ4Block : kQ8Block);  // a block column of a group
    float* const dx = static_cast<float*>(kernel_scratch(10, sizeof(float) * size_t(kPanelRows * nb)));
    int32_t* const corr = static_cast<int32_t*>(kernel_scratch(11, sizeof(int32_t) * size_t(kPanelRows * nb)));
    uint8_t* const nib = Q4 ? static_cast<uint8_t*>(kernel_scratch(12, size_t(nb) * 512)) : nullptr;
    uint8_t* const xa = static_cast<uint8_t*>(kernel_scratch(13, size_t(kPanelRows / 16) * size_t(nb) * 512));
    auto* const cbuf = static_cast<int32_t(*)[256]>(kernel_scratch(14, 4 * 256 * sizeof(int32_t)));
    _tile_loadconfig(&kConfig);
    for (int64_t p0 = 0; p0 < nt; p0 += kPanelRows) {
        const int P = int(nt - p0 < kPanelRows ? nt - p0 : kPanelRows);
        const int tiles = (P + 15) / 16;
        for (int t = 0; t < tiles; ++t)
            prepare<Q4>(X + size_t(p0 + 16 * t) * xs, xs, P - 16 * t < 16 ? P - 16 * t : 16, nb,
                        xa + size_t(t) * size_t(nb) * 512, dx + size_t(t) * 16 * nb, corr + size_t(t) * 16 * nb);
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t* G = W + size_t(r) * ws;  // a group's 16 rows are contiguous
            if constexpr (Q4) split_nibbles(G, nb, nib);
            const uint8_t* B = Q4 ? nib : G + 32;
            const size_t bs = Q4 ? 512 : gb;
            for (int t = 0; t < tiles; ++t)
                group_tile<Q4>(G, gb, B, bs, xa + size_t(t) * size_t(nb) * 512, nb, dx + size_t(t) * 16 * nb,
                               corr + size_t(t) * 16 * nb, P - 16 * t < 16 ? P - 16 * t : 16, Y + (p0 + 16 * t) * ldy + r, ldy, cbuf);
        }
    }
    _tile_release();
}

}  // namespace
}  // namespace isa_amx

const KernelTable& table_amx() {
    static const KernelTable t = [] {
        KernelTable k = table_avx512bf16();
        isa_amx::base_q4 = k.matmul_x16[size_t(DType::Q4_0)];
        isa_amx::base_q8 = k.matmul_x16[size_t(DType::Q8_0)];
        k.name = "amx";
        k.rank = 5;
        k.matmul_x16[size_t(DType::Q4_0)] = isa_amx::matmul_amx<true>;
        k.matmul_x16[size_t(DType::Q8_0)] = isa_amx::matmul_amx<false>;
        return k;
    }();
    return t;
}

}  // namespace ember::kernels
