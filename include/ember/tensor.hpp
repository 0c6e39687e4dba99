// ember/tensor.hpp — element types, on-disk block layouts and tensor views.
//
// Type ids and block layouts are those of the GGUF format (facts of the file
// format, fixed by static_asserts below). A tensor is never copied out of the
// file mapping: a TensorView points into it. Dimensions follow GGUF order:
// ne[0] is the fastest-varying (row length), ne[1] the number of rows.
#pragma once

#include <array>
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

// ---- type traits ------------------------------------------------------------

struct TypeInfo {
    const char* name;
    uint32_t block_size;  // elements per block (1 for scalar types)
    uint32_t type_size;   // bytes per block
    bool supported;       // we have kernels for it (tensor data of other types is refused)
};

// Traits of every type id the file format defines; unknown ids give nullptr.
inline const TypeInfo* type_info(uint32_t id) {
    static const std::array<TypeInfo, 31> table = [] {
        std::array<TypeInfo, 31> t{};
        for (auto& e : t) e = {nullptr, 0, 0, false};
        t[0] = {"F32", 1, 4, true};
        t[1] = {"F16", 1, 2, true};
        t[2] = {"Q4_0", 32, 18, true};
        t[3] = {"Q4_1", 32, 20, false};
        t[6] = {"Q5_0", 32, 22, false};
        t[7] = {"Q5_1", 32, 24, false};
        t[8] = {"Q8_0", 32, 34, true};
        t[9] = {"Q8_1", 32, 36, false};
        t[10] = {"Q2_K", 256, 84, false};
        t[11] = {"Q3_K", 256, 110, false};
        t[12] = {"Q4_K", 256, 144, false};
        t[13] = {"Q5_K", 256, 176, false};
        t[14] = {"Q6_K", 256, 210, false};
        t[15] = {"Q8_K", 256, 292, false};
        t[20] = {"IQ4_NL", 32, 18, false};
        t[23] = {"IQ4_XS", 256, 136, false};
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

inline const TypeInfo& type_info(DType t) {
    const TypeInfo* i = type_info(uint32_t(t));
    if (!i) fail(Status::internal, "type_info: unknown dtype");
    return *i;
}

inline const char* dtype_name(DType t) {
    const TypeInfo* i = type_info(uint32_t(t));
    return i ? i->name : "?";
}

// Bytes of a row of n elements (n must be a multiple of the block size).
inline size_t row_bytes(DType t, int64_t n) {
    const TypeInfo& i = type_info(t);
    return size_t(n / i.block_size) * i.type_size;
}

// A read-only view of a tensor inside the model mapping.
struct TensorView {
    std::string_view name;
    DType type = DType::F32;
    int n_dims = 0;
    std::array<int64_t, 4> ne{1, 1, 1, 1};  // ne[0] = row length, ne[1] = rows, ...
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    // 0: rows as in the file. 16: repacked at load into groups of 16 rows
    // interleaved per block (kernels/repack.hpp); only matmul kernels read it.
    int interleave = 0;

    int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
    int64_t cols() const { return ne[0]; }
    size_t row_stride() const { return row_bytes(type, ne[0]); }
    const uint8_t* row(int64_t r) const { return data + size_t(r) * row_stride(); }
    int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

}  // namespace ember
