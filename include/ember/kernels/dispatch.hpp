// ember/kernels/dispatch.hpp — the table of kernels for one instruction set,
// and the choice of table at run time.
//
// Each ISA's table is compiled in its own translation unit (src/kernels_*.cpp)
// with that ISA's compiler flags, from the one template in kernels/simd.hpp.
// best_table() picks, once, the widest table the CPU and the OS support
// (CPUID plus XGETBV for the AVX/AVX-512 register state); the environment
// variable EMBER_ISA (scalar, sse2, avx2, avx512, avx512bf16, amx) may force a
// lower one. "avx512bf16" is the avx512 table plus the VDPBF16PS kernels
// (src/kernels_avx512bf16.cpp), for CPUs with AVX512-BF16; "amx" is that plus
// Q4_0/Q8_0/Q4_K/Q5_K/Q6_K matmuls of 32 or more activation rows on the
// AMX-INT8 tile unit and BF16x16 matmuls on AMX-BF16
// (src/kernels_amx.cpp), where the CPU has it and Linux grants the process
// the tile registers.
// The "scalar" table wraps the _ref functions: the reference, slow but plain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ember/tensor.hpp"

namespace ember::kernels {

// Y[t*ldy + r] = dot(row r of W, row t of X) for r in [r0, r1), t in [0, nt).
// W rows are `n` elements of the weight type, `ws` bytes apart; X rows are
// encoded in vec_dot_type(weight type), `xs` bytes apart.
using MatmulFn = void (*)(int64_t n, const uint8_t* W, size_t ws, int64_t r0, int64_t r1, const uint8_t* X,
                          size_t xs, int64_t nt, float* Y, int64_t ldy);

// Causal attention of G query heads that share one KV head (grouped-query
// attention), for T consecutive query positions of one sequence (a prefill
// tile; T = 1 when decoding). Query t (t < T) sees positions [0, n_t) with
// n_t = n_pos - (T - 1) + t:
//   out_t[i*hd + d] = sum_{p < n_t} softmax_p(scale * q_ti . k_p) * v_p[d],  i < G, d < hd
// Query t's G heads are q + t*ldq (hd floats each, one after another), its
// results out + t*ldo likewise. K and V live in pages of `page` positions.
// Keys are stored transposed: element d of position p's key is
// kpages[p / page][d * page + p % page] (a page's keys are hd rows of `page`
// elements, one per position, so the scores of W positions are W lanes of
// one vector). Position p's value is the row vpages[p / page] + (p % page) *
// stride. Every page holds `page` positions (those past n_pos may be read,
// never used). scores: T * G * attend_score_stride(n_pos) floats of scratch.
// Each head's result depends on its own inputs and n_t only, in a fixed order:
// the same whatever T, the tile it sits in, or the other rows.
using AttendFn = void (*)(const float* q, size_t ldq, int T, int G, int hd, const float* const* kpages,
                          const float* const* vpages, int page, size_t stride, int n_pos, float scale, float* scores,
                          float* out, size_t ldo);
// The same over K/V pages in IEEE float16 (each element converted exactly to
// float as it is read; the same operations in the same order otherwise).
using AttendF16Fn = void (*)(const float* q, size_t ldq, int T, int G, int hd, const uint16_t* const* kpages,
                             const uint16_t* const* vpages, int page, size_t stride, int n_pos, float scale,
                             float* scores, float* out, size_t ldo);
// Row stride of the attention score scratch: n_pos rounded up to 16.
constexpr size_t attend_score_stride(int n_pos) { return (size_t(n_pos) + 15) / 16 * 16; }

constexpr size_t kMaxTypeId = 31;

struct KernelTable {
    const char* name = nullptr;       // "scalar", "sse2", "avx2", "avx512", "avx512bf16", "amx", "neon"
    int rank = 0;                     // higher is wider
    MatmulFn matmul[kMaxTypeId] = {};  // indexed by weight DType; null = unsupported
    // The same over weights repacked 16 rows at a time (kernels/repack.hpp);
    // r0 and r1 are multiples of 16. Null where this ISA has no such kernel.
    MatmulFn matmul_x16[kMaxTypeId] = {};
    // Activation rows per matmul_x16 call in a prefill (the panel the model
    // cuts its rows into): the amx kernels unpack each weight group once per
    // call, so they take 128 (1.1B pp128 +5-7% against 64).
    int x16_panel_rows = 64;
    // BF16x16 matmuls are cut into chunks of a multiple of this many rows: the
    // VDPBF16PS kernel's tile is 3 groups (48 rows), the amx kernel walks 4
    // groups at a time (64: 1.1B pp128 +4% against 48).
    int bf16_x16_rows = 48;
    void (*quantize_q8_0)(const float* x, void* y, int64_t n) = nullptr;
    // Activations for BF16x16 weights: each float to the nearest BF16, ties to
    // even, NaN kept NaN (bit for bit fp32_to_bf16).
    void (*encode_bf16)(const float* x, uint16_t* y, int64_t n) = nullptr;
    float (*dot_f32)(const float* a, const float* b, int64_t n) = nullptr;
    void (*axpy_f32)(float a, const float* x, float* y, int64_t n) = nullptr;  // y += a*x
    void (*scale_f32)(float a, float* y, int64_t n) = nullptr;                 // y *= a
    void (*rmsnorm)(const float* x, const float* w, float* y, int64_t n, float eps) = nullptr;
    void (*swiglu)(const float* g, const float* u, float* y, int64_t n) = nullptr;  // y = silu(g)*u
    AttendFn attend = nullptr;
    AttendF16Fn attend_f16 = nullptr;
    // Floats to IEEE float16, nearest (ties to even), NaN kept NaN (bit for bit fp32_to_fp16).
    void (*encode_f16)(const float* x, uint16_t* y, int64_t n) = nullptr;
};

// Per-thread scratch for kernels: a 64-byte-aligned buffer of at least `bytes`,
// one per `slot` (0..15) and thread, valid until the next call with that slot on
// that thread. Defined out of line (src/dispatch.cpp, baseline flags) so that
// no per-ISA object instantiates std::vector (see tests/isa_symbols.cmake).
void* kernel_scratch(int slot, size_t bytes);

// Whether decode kernels prefetch the weights they stream with PREFETCHNTA
// (true: AMD, where it reads faster) or PREFETCHT0 (other CPUs: on a Xeon
// PREFETCHNTA read DRAM at 2/5 of the speed). EMBER_PREFETCH=nta|t0 overrides.
bool stream_prefetch_nta();
// Whether the AVX-512 Q4_K/Q5_K kernels for several activation rows prefetch
// the column kPrefetchColumns ahead (AMD: on a Zen 5 one core's decode read
// 22 -> 34 GB/s with it) or leave it to the hardware prefetcher (others: on a
// Xeon 25.5 GB/s without, 20 with, 2 threads, the whole column asked for at
// once). The K-quant decode streams (AVX-512 and AVX2) take it too: AMD, two
// streams per thread prefetched kPrefetchColumns ahead; others, four streams
// (AVX2: two, Q6_K four) prefetched one column ahead, spread over its
// sub-blocks.
bool k45_column_prefetch();

// The best table for this CPU (after EMBER_ISA), chosen on first call; thread-safe.
const KernelTable& best_table();
// Every compiled table this CPU can run, narrowest first (the tests walk them all).
std::vector<const KernelTable*> available_tables();
// A table by name if compiled and supported here, else nullptr.
const KernelTable* find_table(std::string_view name);
// What the CPU reports, for `ember info` and logs: e.g. "avx2 fma f16c avx512f avx512bw avx512vnni".
std::string cpu_features();

}  // namespace ember::kernels
