// ember/kernels/quant_ref.hpp — scalar reference encoders, decoders and dot
// products for every supported type. These are the definitions the SIMD paths
// (kernels/simd.hpp) are tested against; they favour clarity over speed.
//
// Dot products take the weight row in its own type and the activation row in
// the weight type's "activation type" (vec_dot_type): F32 for float weights,
// Q8_0 for quantized weights, so integer kernels can multiply int8 by int8,
// and BF16 for BF16 weights in the BF16x16 layout (VDPBF16PS).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/quant_ref_blocks.hpp"
#include "ember/tensor.hpp"

namespace ember::kernels {

// The type activations are encoded in before a dot product with a row of `w`
// stored with `interleave` (16: a repacked copy, TensorView::repacked). BF16 weights repacked for
// VDPBF16PS (BF16x16, kernels/repack.hpp) take activations rounded to BF16
// once per row; plain BF16 and F16 rows take F32.
inline DType vec_dot_type(DType w, int interleave = 0) {
    switch (w) {
        case DType::BF16: return interleave == 16 ? DType::BF16 : DType::F32;
        case DType::Q8_0: case DType::Q4_0: return DType::Q8_0;
        default: return is_block_type_ref(w) ? DType::Q8_0 : DType::F32;  // every quantized type
    }
}

inline size_t encoded_bytes(DType t, int64_t n) { return row_bytes(t, n); }

// ---- encoders (n is a multiple of the block size) ----------------------------

inline void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; ++b) {
        const float* xb = x + b * QK8_0;
        float amax = 0;
        for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        // round half to even (the FPU's default mode, so SIMD conversions agree exactly)
        for (int j = 0; j < QK8_0; ++j) y[b].qs[j] = int8_t(std::nearbyint(xb[j] * id));
    }
}

// Scale chosen so the value of largest magnitude maps to -8 exactly (the
// asymmetric int4 range [-8, 7] then covers the other sign with one step less).
inline void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; ++b) {
        const float* xb = x + b * QK4_0;
        float amax = 0, vmax = 0;
        for (int j = 0; j < QK4_0; ++j)
            if (std::fabs(xb[j]) > amax) { amax = std::fabs(xb[j]); vmax = xb[j]; }
        const float d = vmax / -8.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = fp32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const int lo = std::min(15, int(xb[j] * id + 8.5f));
            const int hi = std::min(15, int(xb[j + QK4_0 / 2] * id + 8.5f));
            y[b].qs[j] = uint8_t(lo | hi << 4);
        }
    }
}

inline void quantize_ref(DType t, const float* x, void* out, int64_t n) {
    switch (t) {
        case DType::F32: std::copy(x, x + n, static_cast<float*>(out)); return;
        case DType::F16: { auto* o = static_cast<uint16_t*>(out); for (int64_t i = 0; i < n; ++i) o[i] = fp32_to_fp16(x[i]); return; }
        case DType::BF16: { auto* o = static_cast<uint16_t*>(out); for (int64_t i = 0; i < n; ++i) o[i] = fp32_to_bf16(x[i]); return; }
        case DType::Q8_0: quantize_row_q8_0_ref(x, static_cast<BlockQ8_0*>(out), n); return;
        case DType::Q4_0: quantize_row_q4_0_ref(x, static_cast<BlockQ4_0*>(out), n); return;
        default:
            if (is_block_type_ref(t)) return quantize_blocks_ref(t, x, static_cast<uint8_t*>(out), n);
            fail(Status::unsupported, std::string("quantize: type ") + dtype_name(t) + " is not supported");
    }
}

// ---- decoders ---------------------------------------------------------------

inline void dequantize_ref(DType t, const void* in, float* y, int64_t n) {
    switch (t) {
        case DType::F32: { auto* p = static_cast<const float*>(in); std::copy(p, p + n, y); return; }
        case DType::F16: { auto* p = static_cast<const uint16_t*>(in); for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(p[i]); return; }
        case DType::BF16: { auto* p = static_cast<const uint16_t*>(in); for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(p[i]); return; }
        case DType::Q8_0: {
            auto* b = static_cast<const BlockQ8_0*>(in);
            for (int64_t k = 0; k < n / QK8_0; ++k) {
                const float d = fp16_to_fp32(b[k].d);
                for (int j = 0; j < QK8_0; ++j) y[k * QK8_0 + j] = d * float(b[k].qs[j]);
            }
            return;
        }
        case DType::Q4_0: {
            auto* b = static_cast<const BlockQ4_0*>(in);
            for (int64_t k = 0; k < n / QK4_0; ++k) {
                const float d = fp16_to_fp32(b[k].d);
                for (int j = 0; j < QK4_0 / 2; ++j) {
                    y[k * QK4_0 + j] = d * float((b[k].qs[j] & 0x0f) - 8);
                    y[k * QK4_0 + j + QK4_0 / 2] = d * float((b[k].qs[j] >> 4) - 8);
                }
            }
            return;
        }
        default:
            if (is_block_type_ref(t)) return dequantize_blocks_ref(t, static_cast<const uint8_t*>(in), y, n);
            fail(Status::unsupported, std::string("dequantize: type ") + dtype_name(t) + " is not supported");
    }
}

// ---- dot products: weight row (type w) · activation row (vec_dot_type(w)) -----

inline float dot_ref(DType w, int64_t n, const void* wrow, const void* xrow) {
    switch (w) {
        case DType::F32: case DType::F16: case DType::BF16: {
            const float* x = static_cast<const float*>(xrow);
            double acc = 0;  // double: the reference should not carry float rounding order
            if (w == DType::F32) { auto* p = static_cast<const float*>(wrow); for (int64_t i = 0; i < n; ++i) acc += double(p[i]) * x[i]; }
            if (w == DType::F16) { auto* p = static_cast<const uint16_t*>(wrow); for (int64_t i = 0; i < n; ++i) acc += double(fp16_to_fp32(p[i])) * x[i]; }
            if (w == DType::BF16) { auto* p = static_cast<const uint16_t*>(wrow); for (int64_t i = 0; i < n; ++i) acc += double(bf16_to_fp32(p[i])) * x[i]; }
            return float(acc);
        }
        case DType::Q8_0: case DType::Q4_0: {
            const auto* xb = static_cast<const BlockQ8_0*>(xrow);
            double acc = 0;
            for (int64_t k = 0; k < n / 32; ++k) {
                int32_t s = 0;
                float dw;
                if (w == DType::Q8_0) {
                    const auto& b = static_cast<const BlockQ8_0*>(wrow)[k];
                    dw = fp16_to_fp32(b.d);
                    for (int j = 0; j < 32; ++j) s += int32_t(b.qs[j]) * xb[k].qs[j];
                } else {
                    const auto& b = static_cast<const BlockQ4_0*>(wrow)[k];
                    dw = fp16_to_fp32(b.d);
                    for (int j = 0; j < 16; ++j)
                        s += ((b.qs[j] & 0x0f) - 8) * xb[k].qs[j] + ((b.qs[j] >> 4) - 8) * xb[k].qs[j + 16];
                }
                acc += double(dw) * double(fp16_to_fp32(xb[k].d)) * double(s);
            }
            return float(acc);
        }
        default:
            if (is_block_type_ref(w))
                return dot_blocks_ref(w, n, static_cast<const uint8_t*>(wrow), static_cast<const BlockQ8_0*>(xrow));
            fail(Status::unsupported, std::string("dot: type ") + dtype_name(w) + " is not supported");
    }
}

// ---- float ops used by the forward pass ---------------------------------------

inline void rmsnorm_ref(const float* x, const float* w, float* y, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(ss / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

// y[i] = silu(g[i]) * u[i]
inline void swiglu_ref(const float* g, const float* u, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// In-place softmax; returns nothing. n >= 1.
inline void softmax_ref(float* x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) { x[i] = std::exp(x[i] - mx); sum += x[i]; }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// Grouped-query attention over paged K/V (see AttendFn in kernels/dispatch.hpp):
// per query and head, scores in double, softmax, then the weighted sum of values.
// E: float, or uint16_t for float16 K/V.
inline float kv_elem(const float* p) { return *p; }
inline float kv_elem(const uint16_t* p) { return fp16_to_fp32(*p); }
template <class E>
inline void attend_ref(const float* q, size_t ldq, int T, int G, int hd, const E* const* kpages,
                       const E* const* vpages, int page, size_t stride, int n_pos, float scale, float* scores,
                       float* out, size_t ldo) {
    for (int t = 0; t < T; ++t) {
        const int n = n_pos - (T - 1) + t;
        for (int i = 0; i < G; ++i) {
            const float* qi = q + size_t(t) * ldq + size_t(i) * size_t(hd);
            float* oi = out + size_t(t) * ldo + size_t(i) * size_t(hd);
            float* sc = scores + size_t(t * G + i) * attend_score_stride(n_pos);
            for (int p = 0; p < n; ++p) {
                const E* k = kpages[p / page] + p % page;  // (keys transposed: element d at k[d * page])
                double s = 0;
                for (int d = 0; d < hd; ++d) s += double(qi[d]) * kv_elem(k + size_t(d) * size_t(page));
                sc[p] = float(s) * scale;
            }
            softmax_ref(sc, n);
            for (int d = 0; d < hd; ++d) {
                double o = 0;
                for (int p = 0; p < n; ++p) o += double(sc[p]) * kv_elem(vpages[p / page] + size_t(p % page) * stride + size_t(d));
                oi[d] = float(o);
            }
        }
    }
}

}  // namespace ember::kernels
