// ember/kernels/repack.hpp — the 16-row interleaved layout of Q4_0 and Q8_0.
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
#pragma once

#include <cstdint>
#include <cstring>

#include "ember/tensor.hpp"

namespace ember::kernels {

inline bool repackable(DType t) { return t == DType::Q4_0 || t == DType::Q8_0; }

// Repacks one group of 16 rows of `nb` blocks from `src` (plain) to `dst`
// (interleaved). dst and src must not overlap.
inline void repack_x16_ref(DType t, const uint8_t* src, uint8_t* dst, int64_t nb) {
    const size_t B = type_info(t).type_size, row = size_t(nb) * B;
    for (int64_t k = 0; k < nb; ++k) {
        uint8_t* out = dst + size_t(k) * 16 * B;
        for (int i = 0; i < 16; ++i) std::memcpy(out + 2 * i, src + i * row + k * B, 2);  // scales
        const int groups = t == DType::Q4_0 ? 4 : 8;
        for (int g = 0; g < groups; ++g)
            for (int i = 0; i < 16; ++i) std::memcpy(out + 32 + (g * 16 + i) * 4, src + i * row + k * B + 2 + g * 4, 4);
    }
}

// The inverse: one group back to 16 plain rows.
inline void unpack_x16_ref(DType t, const uint8_t* src, uint8_t* dst, int64_t nb) {
    const size_t B = type_info(t).type_size, row = size_t(nb) * B;
    for (int64_t k = 0; k < nb; ++k) {
        const uint8_t* in = src + size_t(k) * 16 * B;
        for (int i = 0; i < 16; ++i) std::memcpy(dst + i * row + k * B, in + 2 * i, 2);
        const int groups = t == DType::Q4_0 ? 4 : 8;
        for (int g = 0; g < groups; ++g)
            for (int i = 0; i < 16; ++i) std::memcpy(dst + i * row + k * B + 2 + g * 4, in + 32 + (g * 16 + i) * 4, 4);
    }
}

}  // namespace ember::kernels
