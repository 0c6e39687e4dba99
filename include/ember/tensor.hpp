// ember/tensor.hpp — element types, on-disk block layouts and tensor views.
//
// Type ids and block layouts are those of the GGUF format (facts of the file
// format, fixed by static_asserts below). A tensor is never copied out of the
// file mapping: a TensorView points into it. Dimensions follow GGUF order:
// ne[0] is the fastest-varying (row length), ne[1] the number of rows.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ember/common.hpp"

namespace ember {

// GGUF/ggml type ids (the values are the file format's).
enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ4_NL = 20,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
};

// ---- half-precision scalars -------------------------------------------------
// static inline on purpose: per-ISA kernel TUs use these, and internal linkage
// keeps a copy compiled with AVX-512 flags from replacing the baseline one.

// IEEE 754 binary16 <-> binary32, exact for every value (denormals, inf, NaN).
static inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            int e = -1;
            uint32_t m = man;
            do { m <<= 1; ++e; } while ((m & 0x400u) == 0);
            bits = sign | uint32_t(127 - 15 - e) << 23 | (m & 0x3ffu) << 13;
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// Round-to-nearest-even, overflow to inf, NaN kept NaN.
static inline uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return uint16_t(sign | 0x7e00u);          // NaN
    if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00u);         // >= 65520 -> inf
    if (absx < 0x38800000u) {                                          // subnormal or zero in fp16
        if (absx < 0x33000000u) return uint16_t(sign);                 // < 2^-25 rounds to 0
        const uint32_t e = absx >> 23;                                 // biased exponent, < 113
        const uint32_t m = (absx & 0x7fffffu) | 0x800000u;             // value = m * 2^(e-150)
        const uint32_t sh = 126 - e;                                   // fp16 unit 2^-24: q = m >> sh, sh in [14, 24]
        uint32_t q = m >> sh;
        const uint32_t rem = m & ((1u << sh) - 1);
        const uint32_t half = 1u << (sh - 1);
        if (rem > half || (rem == half && (q & 1))) ++q;
        return uint16_t(sign | q);
    }
    uint32_t r = absx + 0xc8000fffu + ((absx >> 13) & 1);                // rebias exponent and round
    return uint16_t(sign | (r >> 13));
}

static inline float bf16_to_fp32(uint16_t h) {
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);  // quiet NaN
    return uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);                  // nearest even
}

// ---- block layouts ----------------------------------------------------------
// Q8_0: 32 weights = d * q[i], q int8.                                 34 bytes
// Q4_0: 32 weights = d * (nibble - 8); qs[j] holds weight j in its low
//       nibble and weight j+16 in its high nibble.                      18 bytes

constexpr int QK8_0 = 32;
constexpr int QK4_0 = 32;

struct BlockQ8_0 {
    uint16_t d;  // fp16 scale
    int8_t qs[QK8_0];
};
struct BlockQ4_0 {
    uint16_t d;  // fp16 scale
    uint8_t qs[QK4_0 / 2];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block layout is fixed by GGUF");
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block layout is fixed by GGUF");

// ---- more 32-element blocks ----------------------------------------------------
// Nibbles are stored as in Q4_0: byte j holds element j (low) and j+16 (high).
// Q4_1: weight = d * q + m,          q = nibble in [0, 15].                20 bytes
// Q5_0: weight = d * (q - 16),       q = nibble | bit j of qh << 4 (element
//       j's fifth bit is bit j of the little-endian 32-bit qh).          22 bytes
// Q5_1: weight = d * q + m,          q as in Q5_0.                         24 bytes
// IQ4_NL: weight = d * kIq4nlValues[nibble] (a fixed non-uniform grid).   18 bytes

constexpr int QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK4_NL = 32;

struct BlockQ4_1 {
    uint16_t d, m;  // fp16 scale and offset
    uint8_t qs[QK4_1 / 2];
};
struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4];  // fifth bits, element j at bit j
    uint8_t qs[QK5_0 / 2];
};
struct BlockQ5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
};
struct BlockIQ4_NL {
    uint16_t d;
    uint8_t qs[QK4_NL / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block layout is fixed by GGUF");
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block layout is fixed by GGUF");
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block layout is fixed by GGUF");
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block layout is fixed by GGUF");

// The IQ4_NL / IQ4_XS grid: sixteen int8 levels, denser near zero.
static constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// ---- super-blocks of 256 ("K" types) --------------------------------------------
// A row length must be a multiple of 256 (the GGUF reader refuses others).
// Sub-block scales are small integers times one fp16 super-block scale.
//
// Q4_K: 8 sub-blocks of 32; weight = d*sc[s]*q - dmin*m[s], q a nibble.
//       scales[12] packs eight 6-bit sc and eight 6-bit m: for s < 4,
//       sc = scales[s] & 63 and m = scales[s+4] & 63; for s >= 4, the low
//       four bits are the nibbles of scales[s+4] (sc low, m high) and the top
//       two bits are the top bits of scales[s-4] (sc) and scales[s] (m).
//       qs: 64-element chunk c (32 bytes) holds sub-block 2c in its low and
//       2c+1 in its high nibbles.                                         144 bytes
// Q5_K: as Q4_K plus a fifth bit: element l of sub-block s has it at bit s of
//       qh[l] (l in [0, 32)).                                             176 bytes
// Q6_K: 16 sub-blocks of 16; weight = d*scales[g]*(q - 32), q 6 bits. In each
//       128-element half h (ql += 64h, qh += 32h), for l in [0, 32):
//       element l     : ql[l] low nibble,    qh[l] bits 0-1
//       element l+32  : ql[l+32] low nibble, qh[l] bits 2-3
//       element l+64  : ql[l] high nibble,   qh[l] bits 4-5
//       element l+96  : ql[l+32] high nibble, qh[l] bits 6-7              210 bytes
// Q2_K: 16 sub-blocks of 16; weight = d*(scales[g]&15)*q - dmin*(scales[g]>>4),
//       q 2 bits: element 128h + 32j + l (h < 2, j < 4, l < 32) is bits 2j..2j+1
//       of qs[32h + l].                                                    84 bytes
// Q3_K: 16 sub-blocks of 16; weight = d*(sc[g]-32)*(q - 4 + 4*hbit), the low
//       two bits of q placed as in Q2_K and hbit = bit (4h + j) of hmask[l];
//       sc are 6-bit: low four bits = the nibbles of scales[0..7] (g < 8: low,
//       g >= 8: high nibble of scales[g-8]), top two bits = bits 2*(g/4) of
//       scales[8 + g%4].                                                  110 bytes
// IQ4_XS: 8 sub-blocks of 32; weight = d*(ls[s]-32)*kIq4nlValues[nibble],
//       ls 6 bits: low four from scales_l (s even: low nibble of
//       scales_l[s/2]), top two = bits 2s..2s+1 of scales_h; nibbles per
//       sub-block as in IQ4_NL.                                           136 bytes

constexpr int QK_K = 256;

struct BlockQ4_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
};
struct BlockQ5_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
struct BlockQ6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
struct BlockQ2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d, dmin;
};
struct BlockQ3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};
struct BlockIQ4_XS {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QK_K / 64];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block layout is fixed by GGUF");
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block layout is fixed by GGUF");
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block layout is fixed by GGUF");
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block layout is fixed by GGUF");
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block layout is fixed by GGUF");
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block layout is fixed by GGUF");

// ---- type traits ------------------------------------------------------------

struct TypeInfo {
    const char* name;
    uint32_t block_size;  // elements per block (1 for scalar types)
    uint32_t type_size;   // bytes per block
    bool supported;       // we have kernels for it (tensor data of other types is refused)
};

// Traits of every type id the file format defines; unknown ids give nullptr.
static inline const TypeInfo* type_info(uint32_t id) {
    static const std::array<TypeInfo, 31> table = [] {
        std::array<TypeInfo, 31> t{};
        for (auto& e : t) e = {nullptr, 0, 0, false};
        t[0] = {"F32", 1, 4, true};
        t[1] = {"F16", 1, 2, true};
        t[2] = {"Q4_0", 32, 18, true};
        t[3] = {"Q4_1", 32, 20, true};
        t[6] = {"Q5_0", 32, 22, true};
        t[7] = {"Q5_1", 32, 24, true};
        t[8] = {"Q8_0", 32, 34, true};
        t[9] = {"Q8_1", 32, 36, false};
        t[10] = {"Q2_K", 256, 84, true};
        t[11] = {"Q3_K", 256, 110, true};
        t[12] = {"Q4_K", 256, 144, true};
        t[13] = {"Q5_K", 256, 176, true};
        t[14] = {"Q6_K", 256, 210, true};
        t[15] = {"Q8_K", 256, 292, false};
        t[20] = {"IQ4_NL", 32, 18, true};
        t[23] = {"IQ4_XS", 256, 136, true};
        t[24] = {"I8", 1, 1, false};
        t[25] = {"I16", 1, 2, false};
        t[26] = {"I32", 1, 4, false};
        t[27] = {"I64", 1, 8, false};
        t[28] = {"F64", 1, 8, false};
        t[30] = {"BF16", 1, 2, true};
        return t;
    }();
    if (id >= table.size() || table[id].name == nullptr) return nullptr;
    return &table[id];
}

static inline const TypeInfo& type_info(DType t) {
    const TypeInfo* i = type_info(uint32_t(t));
    if (!i) fail(Status::internal, "type_info: unknown dtype");
    return *i;
}

static inline const char* dtype_name(DType t) {
    const TypeInfo* i = type_info(uint32_t(t));
    return i ? i->name : "?";
}

// Bytes of a row of n elements (n must be a multiple of the block size).
inline size_t row_bytes(DType t, int64_t n) {
    const TypeInfo& i = type_info(t);
    return size_t(n / i.block_size) * i.type_size;
}

// A copy of a matmul weight in the 16-row interleaved layout
// (kernels/repack.hpp), made in the background after load. Until `ready`, the
// matmul interleaves the rows it needs on the fly, byte for byte the same, so
// results never depend on how far the copy has got.
struct RepackedCopy {
    std::atomic<bool> ready{false};
    uint8_t* data = nullptr;
    DType type = DType::F32;                // the copy's type: the weight's, or BF16 (BF16x16)
    const uint16_t* f16_to_bf16 = nullptr;  // F16 weights going to BF16x16: the conversion table
};

// A read-only view of a tensor inside the model mapping.
struct TensorView {
    std::string_view name;
    DType type = DType::F32;
    int n_dims = 0;
    std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] = row length, ne[1] = rows, ...
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    // Set on a matmul weight the model repacks in the background; data stays
    // the file's rows.
    const RepackedCopy* repacked = nullptr;

    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    int64_t cols() const { return ne[0]; }
    size_t row_stride() const { return row_bytes(type, ne[0]); }
    const uint8_t* row(int64_t r) const { return data + size_t(r) * row_stride(); }
    int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

}  // namespace ember
