// ember/kernels/repack.hpp — the 16-row interleaved layout of Q4_0, Q8_0 and
// the super-block types Q4_K, Q5_K, Q6_K.
//
// Decode and prefill are fastest when one SIMD register holds the same four
// weights of 16 different rows: a VPDPBUSD against four broadcast activation
// bytes then advances 16 dot products at once. Repacking permutes, in place,
// each group of 16 rows block by block; the bytes of a group stay within the
// group, so the tensor's size does not change. For block column k of a group:
//
//   Q4_0x16 (288 bytes = 16 x 18): d[16] fp16, then for b = 0..3 and row i =
//     0..15 the four bytes 4b..4b+3 of row i's nibbles (low nibbles: elements
//     4b..4b+3, high nibbles: elements 16+4b..16+4b+3).
//   Q8_0x16 (544 bytes = 16 x 34): d[16] fp16, then for g = 0..7 and row i the
//     four int8 weights 4g..4g+3 of row i.
//
// Group g of a tensor starts at byte g * 16 * row_bytes; block column k of the
// group at k * 16 * block_bytes within it. Rows must be a multiple of 16.
//
// F16x16: see repack_f16_x16 below.
//
// BF16x16 (for VDPBF16PS): BF16 weights, or F16 weights converted to BF16 at
// load (lossy: see ModelParams::repack_f16_to_bf16), as pairs of consecutive
// elements of 16 rows. For pair p (elements 2p, 2p+1) of a group, 64 bytes:
// row i's two bf16 values at 4 * i. One 64-byte load then holds one pair of
// every row, and a VDPBF16PS against a broadcast activation pair advances 16
// dot products by two elements. Rows have an even number of elements.
//
// The super-block types follow the same rule, field by field: each field of
// the block (in the order below) becomes `count` pieces of `width` bytes, and
// piece p of the 16 rows is stored together (16 * width bytes, row i at
// i * width), so one load gives the same piece of every row.
//   Q4_K (2304 = 16 x 144): d, dmin (2 bytes each), the 12 scale bytes as three
//     4-byte words, then qs in 32 pieces of 4 bytes.
//   Q5_K (2816 = 16 x 176): d, dmin, the three scale words, qh in 8 pieces of
//     4, qs in 32 pieces of 4.
//   Q6_K (3360 = 16 x 210): d, the 16 int8 scales one byte each, ql in 32
//     pieces of 4, qh in 16 pieces of 4.
#pragma once

#include <cstdint>
#include <cstring>

#include "ember/tensor.hpp"

namespace ember::kernels {

inline bool repackable(DType t) {
    return t == DType::Q4_0 || t == DType::Q8_0 || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K;
}

// The fields of a super-block type, as (offset in the block, width, count).
struct X16Field { uint16_t offset, width, count; };
inline const X16Field* x16_fields(DType t, int& n) {
    static const X16Field q4k[] = {{0, 2, 1}, {2, 2, 1}, {4, 4, 3}, {16, 4, 32}};
    static const X16Field q5k[] = {{0, 2, 1}, {2, 2, 1}, {4, 4, 3}, {16, 4, 8}, {48, 4, 32}};
    static const X16Field q6k[] = {{208, 2, 1}, {192, 1, 16}, {0, 4, 32}, {128, 4, 16}};
    switch (t) {
        case DType::Q4_K: n = 4; return q4k;
        case DType::Q5_K: n = 5; return q5k;
        case DType::Q6_K: n = 4; return q6k;
        default: n = 0; return nullptr;
    }
}

// Calls f(offset in the 16 plain rows, offset in the packed column, width)
// for every piece of one block column (plain rows `row` bytes apart).
template <class F>
inline void x16_for_each_piece(DType t, size_t row, F&& f) {
    int nf;
    const X16Field* fl = x16_fields(t, nf);
    size_t out = 0;
    for (int k = 0; k < nf; ++k)
        for (int p = 0; p < fl[k].count; ++p)
            for (int i = 0; i < 16; ++i, out += fl[k].width) f(i * row + fl[k].offset + p * fl[k].width, out, fl[k].width);
}

// A piece's bytes (1, 2 or 4: constant-size copies the compiler inlines).
inline void copy_piece(uint8_t* dst, const uint8_t* src, size_t w) {
    if (w == 4) std::memcpy(dst, src, 4);
    else if (w == 2) std::memcpy(dst, src, 2);
    else std::memcpy(dst, src, w);
}

// Repacks one group of 16 rows of `nb` blocks from `src` (plain) to `dst`
// (interleaved). dst and src must not overlap.
inline void repack_x16_ref(DType t, const uint8_t* src, uint8_t* dst, int64_t nb) {
    const size_t B = type_info(t).type_size;
    if (type_info(t).block_size == 256) {  // nb counts 32-element blocks: nb / 8 super-blocks
        const size_t row = size_t(nb / 8) * B;
        for (int64_t k = 0; k < nb / 8; ++k)
            x16_for_each_piece(t, row, [&](size_t plain, size_t packed, size_t w) {
                copy_piece(dst + size_t(k) * 16 * B + packed, src + size_t(k) * B + plain, w);
            });
        return;
    }
    const size_t row = size_t(nb) * B;
    for (int64_t k = 0; k < nb; ++k) {
        uint8_t* out = dst + size_t(k) * 16 * B;
        for (int i = 0; i < 16; ++i) std::memcpy(out + 2 * i, src + i * row + k * B, 2);  // scales
        const int groups = t == DType::Q4_0 ? 4 : 8;
        for (int g = 0; g < groups; ++g)
            for (int i = 0; i < 16; ++i) std::memcpy(out + 32 + (g * 16 + i) * 4, src + i * row + k * B + 2 + g * 4, 4);
    }
}

// BF16x16: one group of 16 plain rows of n (even) 2-byte elements at `src`
// (BF16, or F16 when `f16_to_bf16` is given: a table of the BF16 nearest to
// every F16 pattern, see f16_to_bf16_ref) into `dst`.
inline void repack_bf16_x16(const uint16_t* src, uint16_t* dst, int64_t n, const uint16_t* f16_to_bf16 = nullptr) {
    for (int64_t p = 0; p < n / 2; ++p)
        for (int i = 0; i < 16; ++i)
            for (int e = 0; e < 2; ++e) {
                const uint16_t v = src[i * n + 2 * p + e];
                dst[(p * 16 + i) * 2 + e] = f16_to_bf16 ? f16_to_bf16[v] : v;
            }
}
inline void unpack_bf16_x16(const uint16_t* src, uint16_t* dst, int64_t n) {
    for (int64_t p = 0; p < n / 2; ++p)
        for (int i = 0; i < 16; ++i)
            for (int e = 0; e < 2; ++e) dst[i * n + 2 * p + e] = src[(p * 16 + i) * 2 + e];
}
// F16x16 (exact F16 weights, AVX-512): element k of the group's 16 rows as 16
// consecutive halves (32 bytes, row i at 2 * i), for k = 0..n-1. One 256-bit
// load converted to float (exactly) holds element k of every row, and an FMA
// against the broadcast activation k advances 16 dot products.
inline void repack_f16_x16(const uint16_t* src, uint16_t* dst, int64_t n) {
    for (int64_t k = 0; k < n; ++k)
        for (int i = 0; i < 16; ++i) dst[k * 16 + i] = src[i * n + k];
}
inline void unpack_f16_x16(const uint16_t* src, uint16_t* dst, int64_t n) {
    for (int64_t k = 0; k < n; ++k)
        for (int i = 0; i < 16; ++i) dst[i * n + k] = src[k * 16 + i];
}
// The reference for F16x16 matmuls (weights in groups of 16 rows, X rows in
// F32): each output is the double-accumulated dot product, rounded once. The
// kernel differs from it only by its float32 accumulation (four partial sums
// per row, over elements k mod 4, added as (s0 + s1) + (s2 + s3)).
inline void matmul_f16_x16_ref(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X,
                               size_t xs, int64_t nt, float* Y, int64_t ldy) {
    for (int64_t t = 0; t < nt; ++t) {
        const auto* x = reinterpret_cast<const float*>(X + size_t(t) * xs);
        for (int64_t r = r0; r < r1; ++r) {
            const auto* g = reinterpret_cast<const uint16_t*>(W + size_t(r / 16) * 16 * ws);
            double acc = 0;
            for (int64_t k = 0; k < n; ++k) acc += double(fp16_to_fp32(g[k * 16 + r % 16])) * double(x[k]);
            Y[t * ldy + r] = float(acc);
        }
    }
}

// The BF16 nearest (ties to even) to an F16 value; exact for NaN and infinities.
inline uint16_t f16_to_bf16_ref(uint16_t h) { return fp32_to_bf16(fp16_to_fp32(h)); }

// The reference for BF16x16 matmuls (the MatmulFn contract, weights in groups
// of 16 rows, X rows in BF16): each output is the double-accumulated dot
// product of the BF16 weights and BF16 activations, rounded once to float.
// The VDPBF16PS kernels differ from it only by float32 accumulation order.
inline void matmul_bf16_x16_ref(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X,
                                size_t xs, int64_t nt, float* Y, int64_t ldy) {
    for (int64_t t = 0; t < nt; ++t) {
        const auto* x = reinterpret_cast<const uint16_t*>(X + size_t(t) * xs);
        for (int64_t r = r0; r < r1; ++r) {
            const auto* g = reinterpret_cast<const uint16_t*>(W + size_t(r / 16) * 16 * ws);
            const int64_t i = r % 16;
            double acc = 0;
            for (int64_t p = 0; p < n / 2; ++p)
                for (int e = 0; e < 2; ++e)
                    acc += double(bf16_to_fp32(g[(p * 16 + i) * 2 + e])) * double(bf16_to_fp32(x[2 * p + e]));
            Y[t * ldy + r] = float(acc);
        }
    }
}

// One group of 16 plain rows of `w` at src into the layout of its repacked
// copy (w.repacked) at dst: what the background copy and a matmul that finds
// the copy not ready yet both write, byte for byte.
inline void repack_group(const TensorView& w, const uint8_t* src, uint8_t* dst) {
    const RepackedCopy& c = *w.repacked;
    if (c.type == DType::F16)
        repack_f16_x16(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<uint16_t*>(dst), w.cols());
    else if (c.type == DType::BF16)
        repack_bf16_x16(reinterpret_cast<const uint16_t*>(src), reinterpret_cast<uint16_t*>(dst), w.cols(),
                        c.f16_to_bf16);
    else
        repack_x16_ref(w.type, src, dst, w.cols() / 32);
}

// The inverse: one group back to 16 plain rows.
inline void unpack_x16_ref(DType t, const uint8_t* src, uint8_t* dst, int64_t nb) {
    const size_t B = type_info(t).type_size;
    if (type_info(t).block_size == 256) {
        const size_t row = size_t(nb / 8) * B;
        for (int64_t k = 0; k < nb / 8; ++k)
            x16_for_each_piece(t, row, [&](size_t plain, size_t packed, size_t w) {
                copy_piece(dst + size_t(k) * B + plain, src + size_t(k) * 16 * B + packed, w);
            });
        return;
    }
    const size_t row = size_t(nb) * B;
    for (int64_t k = 0; k < nb; ++k) {
        const uint8_t* in = src + size_t(k) * 16 * B;
        for (int i = 0; i < 16; ++i) std::memcpy(dst + i * row + k * B, in + 2 * i, 2);
        const int groups = t == DType::Q4_0 ? 4 : 8;
        for (int g = 0; g < groups; ++g)
            for (int i = 0; i < 16; ++i) std::memcpy(dst + i * row + k * B + 2 + g * 4, in + 32 + (g * 16 + i) * 4, 4);
    }
}

}  // namespace ember::kernels
