// ember/kernels/quant_ref_blocks.hpp — scalar references for the block types
// beyond Q8_0/Q4_0: Q4_1, Q5_0, Q5_1, IQ4_NL (blocks of 32) and the 256-element
// super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS (layouts in tensor.hpp).
//
// One decomposition serves every type: a block decodes to integers q[e], and a
// scale D[g] and an offset O[g] per group of 16 elements, with
//
//     weight[e] = D[g] * q[e] - O[g],   g = e / 16.
//
// decode_block_ref() is the only place that knows each layout; dequantize and
// the dot product against Q8_0 activations are written once over it. D and O
// are computed in float exactly as the format defines them, so dequantized
// values are the format's. The SIMD kernels (kernels/simd_quants.hpp) use the
// same decomposition with their own vectorised decoders.
//
// The encoders are our own: per group they search a few candidate scales (and
// offsets), refit each by least squares, keep the best, then quantize the
// group scales to the super-block's integer scales and re-round the weights
// with the scales actually stored. Non-finite inputs never reach an integer
// conversion unclamped. Reached through quantize_ref / dequantize_ref /
// dot_ref in kernels/quant_ref.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "ember/tensor.hpp"

namespace ember::kernels {

// The types this header handles.
inline bool is_block_type_ref(DType t) {
    switch (t) {
        case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::IQ4_NL: case DType::Q2_K:
        case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::IQ4_XS:
            return true;
        default: return false;
    }
}

// One block, decoded: n = 32 or 256 elements, n/16 groups.
struct DecodedBlock {
    int n = 0;
    int q[QK_K];
    float D[QK_K / 16];
    float O[QK_K / 16];
};

namespace detail {

inline uint16_t load_u16(const uint8_t* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }

// Q4_K / Q5_K: the j-th 6-bit scale and min of the 12 packed bytes.
inline void k4_scale_min(const uint8_t* s, int j, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}
inline void k4_pack(const int sc[8], const int m[8], uint8_t s[12]) {
    for (int j = 0; j < 4; ++j) {
        s[j] = uint8_t((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = uint8_t((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        s[j + 8] = uint8_t((sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4));
    }
}

// Q3_K: the g-th 6-bit scale (0..63; the weight uses sc - 32).
inline int k3_scale(const uint8_t* s, int g) {
    const int lo = g < 8 ? (s[g] & 0x0f) : (s[g - 8] >> 4);
    const int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
    return lo | hi << 4;
}
inline void k3_pack(const int sc[16], uint8_t s[12]) {
    std::memset(s, 0, 12);
    for (int g = 0; g < 16; ++g) {
        if (g < 8) s[g] |= uint8_t(sc[g] & 0x0f);
        else s[g - 8] |= uint8_t((sc[g] & 0x0f) << 4);
        s[8 + g % 4] |= uint8_t(((sc[g] >> 4) & 3) << (2 * (g / 4)));
    }
}

}  // namespace detail

// Decodes block `blk` of type t (see the layouts in tensor.hpp).
static inline void decode_block_ref(DType t, const uint8_t* blk, DecodedBlock& o) {
    using detail::load_u16;
    switch (t) {
        case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::IQ4_NL: {
            o.n = 32;
            const bool has_m = t == DType::Q4_1 || t == DType::Q5_1;
            const bool has_h = t == DType::Q5_0 || t == DType::Q5_1;
            const float d = fp16_to_fp32(load_u16(blk));
            const float m = has_m ? fp16_to_fp32(load_u16(blk + 2)) : 0.0f;
            const uint8_t* p = blk + (has_m ? 4 : 2);
            uint32_t qh = 0;
            if (has_h) { std::memcpy(&qh, p, 4); p += 4; }
            for (int j = 0; j < 16; ++j) {
                int lo = p[j] & 0x0f, hi = p[j] >> 4;
                if (has_h) { lo |= int((qh >> j) & 1) << 4; hi |= int((qh >> (j + 16)) & 1) << 4; }
                if (t == DType::IQ4_NL) { lo = kIq4nlValues[lo]; hi = kIq4nlValues[hi]; }
                if (t == DType::Q5_0) { lo -= 16; hi -= 16; }
                o.q[j] = lo;
                o.q[j + 16] = hi;
            }
            for (int g = 0; g < 2; ++g) { o.D[g] = d; o.O[g] = -m; }  // Q4_1/Q5_1: d*q + m
            return;
        }
        case DType::Q4_K: case DType::Q5_K: {
            o.n = QK_K;
            const bool five = t == DType::Q5_K;
            const float d = fp16_to_fp32(load_u16(blk)), dmin = fp16_to_fp32(load_u16(blk + 2));
            const uint8_t* sc = blk + 4;
            const uint8_t* qh = blk + 16;
            const uint8_t* qs = blk + (five ? 48 : 16);
            for (int s = 0; s < 8; ++s) {
                int scale, mn;
                detail::k4_scale_min(sc, s, scale, mn);
                const float D = d * float(scale), O = dmin * float(mn);
                o.D[2 * s] = o.D[2 * s + 1] = D;
                o.O[2 * s] = o.O[2 * s + 1] = O;
                const uint8_t* c = qs + 32 * (s / 2);
                for (int l = 0; l < 32; ++l) {
                    int q = s % 2 ? c[l] >> 4 : c[l] & 0x0f;
                    if (five) q |= ((qh[l] >> s) & 1) << 4;
                    o.q[32 * s + l] = q;
                }
            }
            return;
        }
        case DType::Q6_K: {
            o.n = QK_K;
            const auto* b = reinterpret_cast<const uint8_t*>(blk);
            const uint8_t* ql = b;
            const uint8_t* qh = b + 128;
            const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
            const float d = fp16_to_fp32(load_u16(b + 208));
            for (int g = 0; g < 16; ++g) { o.D[g] = d * float(scales[g]); o.O[g] = 0; }
            for (int h = 0; h < 2; ++h) {
                const uint8_t* L = ql + 64 * h;
                const uint8_t* H = qh + 32 * h;
                int* q = o.q + 128 * h;
                for (int l = 0; l < 32; ++l) {
                    q[l] = ((L[l] & 0x0f) | ((H[l] & 3) << 4)) - 32;
                    q[l + 32] = ((L[l + 32] & 0x0f) | (((H[l] >> 2) & 3) << 4)) - 32;
                    q[l + 64] = ((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32;
                    q[l + 96] = ((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32;
                }
            }
            return;
        }
        case DType::Q2_K: case DType::Q3_K: {
            o.n = QK_K;
            const bool three = t == DType::Q3_K;
            const uint8_t* hm = blk;                       // Q3_K only
            const uint8_t* qs = blk + (three ? 32 : 16);
            const uint8_t* sc = three ? blk + 96 : blk;
            const float d = fp16_to_fp32(load_u16(blk + (three ? 108 : 80)));
            const float dmin = three ? 0.0f : fp16_to_fp32(load_u16(blk + 82));
            for (int g = 0; g < 16; ++g) {
                if (three) {
                    o.D[g] = d * float(detail::k3_scale(sc, g) - 32);
                    o.O[g] = 0;
                } else {
                    o.D[g] = d * float(sc[g] & 0x0f);
                    o.O[g] = dmin * float(sc[g] >> 4);
                }
            }
            for (int h = 0; h < 2; ++h)
                for (int j = 0; j < 4; ++j)
                    for (int l = 0; l < 32; ++l) {
                        int q = (qs[32 * h + l] >> (2 * j)) & 3;
                        if (three) q -= (hm[l] >> (4 * h + j)) & 1 ? 0 : 4;
                        o.q[128 * h + 32 * j + l] = q;
                    }
            return;
        }
        case DType::IQ4_XS: {
            o.n = QK_K;
            const float d = fp16_to_fp32(load_u16(blk));
            const uint16_t sh = load_u16(blk + 2);
            const uint8_t* sl = blk + 4;
            const uint8_t* qs = blk + 8;
            for (int s = 0; s < 8; ++s) {
                const int ls = ((sl[s / 2] >> (4 * (s % 2))) & 0x0f) | (((sh >> (2 * s)) & 3) << 4);
                o.D[2 * s] = o.D[2 * s + 1] = d * float(ls - 32);
                o.O[2 * s] = o.O[2 * s + 1] = 0;
                for (int j = 0; j < 16; ++j) {
                    o.q[32 * s + j] = kIq4nlValues[qs[16 * s + j] & 0x0f];
                    o.q[32 * s + j + 16] = kIq4nlValues[qs[16 * s + j] >> 4];
                }
            }
            return;
        }
        default: fail(Status::internal, "decode_block_ref: not a block type");
    }
}

inline void dequantize_blocks_ref(DType t, const uint8_t* in, float* y, int64_t n) {
    const TypeInfo& ti = type_info(t);
    DecodedBlock b;
    for (int64_t k = 0; k < n / int64_t(ti.block_size); ++k) {
        decode_block_ref(t, in + size_t(k) * ti.type_size, b);
        float* out = y + k * ti.block_size;
        for (int e = 0; e < b.n; ++e) out[e] = b.D[e / 16] * float(b.q[e]) - b.O[e / 16];
    }
}

// Dot product with a Q8_0 activation row, in double: per group of 16,
// D * sum(q * x) - O * sum(x), times the activation block's scale.
inline float dot_blocks_ref(DType t, int64_t n, const uint8_t* w, const BlockQ8_0* x) {
    const TypeInfo& ti = type_info(t);
    DecodedBlock b;
    double acc = 0;
    for (int64_t k = 0; k < n / int64_t(ti.block_size); ++k) {
        decode_block_ref(t, w + size_t(k) * ti.type_size, b);
        for (int a = 0; a < b.n / 32; ++a) {
            const BlockQ8_0& xb = x[k * (ti.block_size / 32) + a];
            double blk = 0;
            for (int h = 0; h < 2; ++h) {
                const int g = 2 * a + h;
                int64_t sqx = 0, sx = 0;
                for (int j = 0; j < 16; ++j) {
                    sqx += int64_t(b.q[16 * g + j]) * xb.qs[16 * h + j];
                    sx += xb.qs[16 * h + j];
                }
                blk += double(b.D[g]) * double(sqx) - double(b.O[g]) * double(sx);
            }
            acc += blk * double(fp16_to_fp32(xb.d));
        }
    }
    return float(acc);
}

// ---- encoders ----------------------------------------------------------------------

namespace detail {

// round(v) clamped to [lo, hi]; NaN goes to lo (never an undefined conversion).
// Rounds half to even as nearbyint does, without a library call: adding and
// subtracting 1.5 * 2^23 leaves the nearest integer of any |v| < 2^22.
inline int qround(float v, int lo, int hi) {
    if (!(v > float(lo))) return lo;
    if (!(v < float(hi))) return hi;
    constexpr float kBig = 12582912.0f;  // (IEEE arithmetic: the round trip is not folded away)
    return int((v + kBig) - kBig);
}

// Symmetric fit on an integer grid [qmin, qmax] (qmin = -qmax - 1): the scale s
// (any sign) minimising sum (x - s*q)^2 with q = round(x/s) clamped. Candidates
// map the value of largest magnitude near either end of the grid; each is
// refined by the least-squares scale for its rounding.
inline float fit_symmetric(const float* x, int n, int qmin, int qmax) {
    float vmax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > std::fabs(vmax)) vmax = x[i];
    if (!(std::fabs(vmax) > 1e-30f)) return 0.0f;  // zero (or non-finite) group
    float best_s = vmax / float(qmin), best_err = INFINITY;
    for (int side = 0; side < 2; ++side) {
        const float end = side == 0 ? float(qmin) : float(qmax);
        for (int k = -4; k <= 4; ++k) {
            const float s0 = vmax / (end + (side == 0 ? -0.1f : 0.1f) * float(k));
            const float inv0 = 1.0f / s0;
            double sxq = 0, sqq = 0;
            for (int i = 0; i < n; ++i) {
                const int q = qround(x[i] * inv0, qmin, qmax);
                sxq += double(x[i]) * q;
                sqq += double(q) * q;
            }
            if (sqq <= 0) continue;
            const float s = float(sxq / sqq);
            const float inv = 1.0f / s;
            float err = 0;
            for (int i = 0; i < n; ++i) {
                const float e = x[i] - s * float(qround(x[i] * inv, qmin, qmax));
                err += e * e;
            }
            if (err < best_err) { best_err = err; best_s = s; }
        }
    }
    return best_s;
}

// Asymmetric fit: x ~ s*q + mn with q in [0, qmax], s >= 0. With min_le_zero
// (the K types store -mn as an unsigned integer) mn is kept <= 0.
inline void fit_asymmetric(const float* x, int n, int qmax, bool min_le_zero, float& s_out, float& mn_out) {
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; ++i) { lo = std::min(lo, x[i]); hi = std::max(hi, x[i]); }
    if (min_le_zero) lo = std::min(lo, 0.0f);
    s_out = 0;
    mn_out = lo;
    if (!(hi - lo > 1e-30f)) return;  // constant (or non-finite) group
    float best_err = INFINITY;
    for (int k = -6; k <= 6; ++k) {
        const float s0 = (hi - lo) / (float(qmax) + 0.1f * float(k));
        float mn0 = lo;
        // two rounds: round with the current (s, mn), refit both by least squares
        float s = s0, mn = mn0;
        for (int it = 0; it < 2; ++it) {
            double sq = 0, sqq = 0, sx = 0, sxq = 0;
            const float inv = 1.0f / s;
            for (int i = 0; i < n; ++i) {
                const int q = qround((x[i] - mn) * inv, 0, qmax);
                sq += q; sqq += double(q) * q; sx += x[i]; sxq += double(x[i]) * q;
            }
            const double det = double(n) * sqq - sq * sq;
            if (det <= 0) break;
            double ns = (double(n) * sxq - sq * sx) / det;
            double nmn = (sqq * sx - sq * sxq) / det;
            if (min_le_zero && nmn > 0) { nmn = 0; ns = sqq > 0 ? sxq / sqq : 0; }
            if (!(ns > 0)) break;
            s = float(ns);
            mn = float(nmn);
        }
        float err = 0;
        const float inv = 1.0f / s;
        for (int i = 0; i < n; ++i) {
            const float e = x[i] - (s * float(qround((x[i] - mn) * inv, 0, qmax)) + mn);
            err += e * e;
        }
        if (err < best_err) { best_err = err; s_out = s; mn_out = mn; }
    }
}

inline int nearest_iq4(float v) {  // index of the grid level nearest v (ties to the lower; NaN: 0)
    // the midpoints between neighbouring levels: the index is how many lie below v
    static constexpr float kMid[15] = {-115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f,
                                       7.0f,    19.0f,  31.5f,  45.5f,  61.0f,  79.0f,  101.0f};
    int i = 0;
    for (float m : kMid) i += v > m;
    return i;
}

// Scale for the IQ4 grid: x ~ s * grid[idx].
inline float fit_iq4(const float* x, int n) {
    float vmax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > std::fabs(vmax)) vmax = x[i];
    if (!(std::fabs(vmax) > 1e-30f)) return 0.0f;
    float best_s = vmax / -127.0f, best_err = INFINITY;
    for (int side = 0; side < 2; ++side) {
        const float end = side == 0 ? -127.0f : 113.0f;
        for (int k = -6; k <= 6; ++k) {
            const float s0 = vmax / (end * (1.0f + 0.02f * float(k)));
            const float inv0 = 1.0f / s0;
            double sxt = 0, stt = 0;
            for (int i = 0; i < n; ++i) {
                const float tv = kIq4nlValues[nearest_iq4(x[i] * inv0)];
                sxt += double(x[i]) * tv;
                stt += double(tv) * tv;
            }
            if (stt <= 0) continue;
            const float s = float(sxt / stt);
            const float inv = 1.0f / s;
            float err = 0;
            for (int i = 0; i < n; ++i) {
                const float e = x[i] - s * float(kIq4nlValues[nearest_iq4(x[i] * inv)]);
                err += e * e;
            }
            if (err < best_err) { best_err = err; best_s = s; }
        }
    }
    return best_s;
}

inline float fp16_round(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }
inline void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Packs 32 values of `q` (0..15) as nibbles: byte j = q[j] | q[j+16] << 4.
inline void pack_nibbles32(const int* q, uint8_t* out) {
    for (int j = 0; j < 16; ++j) out[j] = uint8_t((q[j] & 15) | (q[j + 16] & 15) << 4);
}

}  // namespace detail

// Encodes n elements (a multiple of the block size) of type t.
inline void quantize_blocks_ref(DType t, const float* x, uint8_t* out, int64_t n) {
    using namespace detail;
    const TypeInfo& ti = type_info(t);
    for (int64_t k = 0; k < n / int64_t(ti.block_size); ++k) {
        const float* xb = x + k * ti.block_size;
        uint8_t* b = out + size_t(k) * ti.type_size;
        std::memset(b, 0, ti.type_size);
        int q[QK_K];
        switch (t) {
            case DType::Q4_1: case DType::Q5_1: {
                const int qmax = t == DType::Q4_1 ? 15 : 31;
                float s, mn;
                fit_asymmetric(xb, 32, qmax, false, s, mn);
                store_u16(b, fp32_to_fp16(s));
                store_u16(b + 2, fp32_to_fp16(mn));
                const float sd = fp16_round(s), md = fp16_round(mn);
                const float inv = sd != 0 ? 1.0f / sd : 0.0f;
                uint32_t qh = 0;
                for (int j = 0; j < 32; ++j) {
                    q[j] = qround((xb[j] - md) * inv, 0, qmax);
                    qh |= uint32_t(q[j] >> 4) << j;
                }
                if (t == DType::Q5_1) std::memcpy(b + 4, &qh, 4);
                pack_nibbles32(q, b + (t == DType::Q4_1 ? 4 : 8));
                break;
            }
            case DType::Q5_0: {
                const float sd = fp16_round(fit_symmetric(xb, 32, -16, 15));
                store_u16(b, fp32_to_fp16(sd));
                const float inv = sd != 0 ? 1.0f / sd : 0.0f;
                uint32_t qh = 0;
                for (int j = 0; j < 32; ++j) {
                    q[j] = qround(xb[j] * inv, -16, 15) + 16;
                    qh |= uint32_t(q[j] >> 4) << j;
                }
                std::memcpy(b + 2, &qh, 4);
                pack_nibbles32(q, b + 6);
                break;
            }
            case DType::IQ4_NL: {
                const float sd = fp16_round(fit_iq4(xb, 32));
                store_u16(b, fp32_to_fp16(sd));
                const float inv = sd != 0 ? 1.0f / sd : 0.0f;
                for (int j = 0; j < 32; ++j) q[j] = nearest_iq4(xb[j] * inv);
                pack_nibbles32(q, b + 2);
                break;
            }
            case DType::Q4_K: case DType::Q5_K: {
                const bool five = t == DType::Q5_K;
                const int qmax = five ? 31 : 15;
                float s[8], m[8], smax = 0, mmax = 0;
                for (int j = 0; j < 8; ++j) {
                    float mn;
                    fit_asymmetric(xb + 32 * j, 32, qmax, true, s[j], mn);
                    m[j] = -mn;
                    smax = std::max(smax, s[j]);
                    mmax = std::max(mmax, m[j]);
                }
                const float d = fp16_round(smax / 63.0f), dmin = fp16_round(mmax / 63.0f);
                store_u16(b, fp32_to_fp16(d));
                store_u16(b + 2, fp32_to_fp16(dmin));
                int sc[8], mi[8];
                for (int j = 0; j < 8; ++j) {
                    sc[j] = d > 0 ? qround(s[j] / d, 0, 63) : 0;
                    mi[j] = dmin > 0 ? qround(m[j] / dmin, 0, 63) : 0;
                }
                k4_pack(sc, mi, b + 4);
                uint8_t* qh = b + 16;
                uint8_t* qs = b + (five ? 48 : 16);
                for (int j = 0; j < 8; ++j) {
                    const float D = d * float(sc[j]), M = dmin * float(mi[j]);
                    const float inv = D != 0 ? 1.0f / D : 0.0f;
                    for (int l = 0; l < 32; ++l) {
                        const int v = qround((xb[32 * j + l] + M) * inv, 0, qmax);
                        qs[32 * (j / 2) + l] |= uint8_t((v & 15) << (4 * (j % 2)));
                        if (five) qh[l] |= uint8_t((v >> 4) << j);
                    }
                }
                break;
            }
            case DType::Q6_K: {
                float s[16], smax = 0;
                for (int g = 0; g < 16; ++g) {
                    s[g] = fit_symmetric(xb + 16 * g, 16, -32, 31);
                    smax = std::max(smax, std::fabs(s[g]));
                }
                const float d = fp16_round(smax / 127.0f);
                store_u16(b + 208, fp32_to_fp16(d));
                auto* scales = reinterpret_cast<int8_t*>(b + 192);
                for (int g = 0; g < 16; ++g) {
                    const int sc = d > 0 ? qround(s[g] / d, -127, 127) : 0;
                    scales[g] = int8_t(sc);
                    const float D = d * float(sc);
                    const float inv = D != 0 ? 1.0f / D : 0.0f;
                    for (int j = 0; j < 16; ++j) q[16 * g + j] = qround(xb[16 * g + j] * inv, -32, 31) + 32;
                }
                for (int h = 0; h < 2; ++h) {
                    uint8_t* L = b + 64 * h;
                    uint8_t* H = b + 128 + 32 * h;
                    const int* v = q + 128 * h;
                    for (int l = 0; l < 32; ++l) {
                        L[l] = uint8_t((v[l] & 15) | (v[l + 64] & 15) << 4);
                        L[l + 32] = uint8_t((v[l + 32] & 15) | (v[l + 96] & 15) << 4);
                        H[l] = uint8_t((v[l] >> 4) | (v[l + 32] >> 4) << 2 | (v[l + 64] >> 4) << 4 | (v[l + 96] >> 4) << 6);
                    }
                }
                break;
            }
            case DType::Q2_K: {
                float s[16], m[16], smax = 0, mmax = 0;
                for (int g = 0; g < 16; ++g) {
                    float mn;
                    fit_asymmetric(xb + 16 * g, 16, 3, true, s[g], mn);
                    m[g] = -mn;
                    smax = std::max(smax, s[g]);
                    mmax = std::max(mmax, m[g]);
                }
                const float d = fp16_round(smax / 15.0f), dmin = fp16_round(mmax / 15.0f);
                store_u16(b + 80, fp32_to_fp16(d));
                store_u16(b + 82, fp32_to_fp16(dmin));
                for (int g = 0; g < 16; ++g) {
                    const int sc = d > 0 ? qround(s[g] / d, 0, 15) : 0;
                    const int mi = dmin > 0 ? qround(m[g] / dmin, 0, 15) : 0;
                    b[g] = uint8_t(sc | mi << 4);
                    const float D = d * float(sc), M = dmin * float(mi);
                    const float inv = D != 0 ? 1.0f / D : 0.0f;
                    for (int j = 0; j < 16; ++j) q[16 * g + j] = qround((xb[16 * g + j] + M) * inv, 0, 3);
                }
                for (int h = 0; h < 2; ++h)
                    for (int j = 0; j < 4; ++j)
                        for (int l = 0; l < 32; ++l) b[16 + 32 * h + l] |= uint8_t(q[128 * h + 32 * j + l] << (2 * j));
                break;
            }
            case DType::Q3_K: {
                float s[16], smax = 0;
                for (int g = 0; g < 16; ++g) {
                    s[g] = fit_symmetric(xb + 16 * g, 16, -4, 3);
                    smax = std::max(smax, std::fabs(s[g]));
                }
                const float d = fp16_round(smax / 31.0f);
                store_u16(b + 108, fp32_to_fp16(d));
                int sc[16];
                for (int g = 0; g < 16; ++g) {
                    const int v = d > 0 ? qround(s[g] / d, -31, 31) : 0;
                    sc[g] = v + 32;
                    const float D = d * float(v);
                    const float inv = D != 0 ? 1.0f / D : 0.0f;
                    for (int j = 0; j < 16; ++j) q[16 * g + j] = qround(xb[16 * g + j] * inv, -4, 3) + 4;
                }
                k3_pack(sc, b + 96);
                for (int h = 0; h < 2; ++h)
                    for (int j = 0; j < 4; ++j)
                        for (int l = 0; l < 32; ++l) {
                            const int v = q[128 * h + 32 * j + l];
                            b[32 + 32 * h + l] |= uint8_t((v & 3) << (2 * j));
                            b[l] |= uint8_t((v >> 2) << (4 * h + j));
                        }
                break;
            }
            case DType::IQ4_XS: {
                float s[8], vmax = 0;
                for (int j = 0; j < 8; ++j) {
                    s[j] = fit_iq4(xb + 32 * j, 32);
                    if (std::fabs(s[j]) > std::fabs(vmax)) vmax = s[j];
                }
                // the sub-block scale of largest magnitude maps to -32, the grid's long side
                const float d = fp16_round(vmax / -32.0f);
                store_u16(b, fp32_to_fp16(d));
                uint16_t sh = 0;
                for (int j = 0; j < 8; ++j) {
                    const int ls = (d != 0 ? qround(s[j] / d, -32, 31) : 0) + 32;
                    b[4 + j / 2] |= uint8_t((ls & 15) << (4 * (j % 2)));
                    sh |= uint16_t((ls >> 4) << (2 * j));
                    const float D = d * float(ls - 32);
                    const float inv = D != 0 ? 1.0f / D : 0.0f;
                    for (int l = 0; l < 32; ++l) q[l] = nearest_iq4(xb[32 * j + l] * inv);
                    pack_nibbles32(q, b + 8 + 16 * j);
                }
                store_u16(b + 2, sh);
                break;
            }
            default: fail(Status::internal, "quantize_blocks_ref: not a block type");
        }
    }
}

}  // namespace ember::kernels
