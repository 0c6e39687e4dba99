// Every compiled kernel table this CPU supports against the scalar references,
// for every type, over lengths from one block to several vector widths, odd
// row counts, several activation rows and misaligned buffers.
#define BOOST_TEST_MODULE test_kernels
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/quant_ref.hpp"
#include "ember/kernels/repack.hpp"

using namespace ember;
using namespace ember::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

// Tolerance of a SIMD dot product against the double-accumulated reference.
// Both read identical encoded inputs, so the only difference is float32
// rounding in a different summation order: bounded by ~n * eps * sum|a_i b_i|.
// For the integer formats the block sums are exact integers, and only the
// float32 accumulation of n/32 scaled block sums differs.
double tolerance(int64_t n, double abs_sum) { return 4.0 * double(n) * 1.2e-7 * abs_sum + 1e-6; }

// Checks Y[i * rows + r] against dot_ref(weight row r, activation row i) for
// every output, within tolerance() of the row's sum of |w * x|. W holds `rows`
// plain rows of type t, X holds `nt` rows of type xt. Returns "" or a
// description of the first miss.
std::string mismatch_with_reference(DType t, int64_t n, int64_t rows, const uint8_t* W, size_t ws, DType xt,
                                    int64_t nt, const uint8_t* X, size_t xs, const float* Y) {
    std::vector<float> wd(size_t(n * rows)), xd(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) dequantize_ref(t, W + r * ws, wd.data() + r * n, n);
    for (int64_t i = 0; i < nt; ++i) {
        dequantize_ref(xt, X + i * xs, xd.data(), n);
        for (int64_t r = 0; r < rows; ++r) {
            const double ref = dot_ref(t, n, W + r * ws, X + i * xs);
            double abs_sum = 0;
            for (int64_t j = 0; j < n; ++j) abs_sum += std::fabs(double(wd[size_t(r * n + j)]) * xd[size_t(j)]);
            const double got = Y[i * rows + r];
            if (!(std::fabs(got - ref) <= tolerance(n, abs_sum)))
                return "row " + std::to_string(r) + " act " + std::to_string(i) + ": " + std::to_string(got) +
                       " vs " + std::to_string(ref);
        }
    }
    return "";
}

const DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};

}  // namespace

BOOST_AUTO_TEST_CASE(tables_are_found) {
    const auto tables = available_tables();
    BOOST_TEST_REQUIRE(tables.size() >= 1u);
    BOOST_TEST(std::string(tables.front()->name) == "scalar");
    BOOST_TEST_MESSAGE("kernel tables on this CPU: " << [&] {
        std::string s;
        for (auto* t : tables) s += std::string(t->name) + " ";
        return s + "(cpu: " + cpu_features() + ")";
    }());
    BOOST_TEST(best_table().rank == tables.back()->rank);
    for (const KernelTable* t : tables)
        for (DType d : kTypes) BOOST_TEST(t->matmul[size_t(d)] != nullptr, t->name << " lacks " << dtype_name(d));
}

BOOST_AUTO_TEST_CASE(fp16_and_bf16_conversions_are_exact) {
    // every fp16 bit pattern round-trips through float (NaNs stay NaN)
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(uint16_t(h));
        if (std::isnan(f)) {
            BOOST_TEST(std::isnan(fp16_to_fp32(fp32_to_fp16(f))));
            continue;
        }
        BOOST_TEST_REQUIRE(fp32_to_fp16(f) == uint16_t(h), "fp16 pattern " << h);
    }
    // rounding: halfway cases go to even, overflow to inf, tiny to zero
    BOOST_TEST(fp32_to_fp16(1.0f + 1.0f / 2048.0f) == 0x3c00);             // tie -> even (down)
    BOOST_TEST(fp32_to_fp16(1.0f + 3.0f / 2048.0f) == 0x3c02);             // tie -> even (up)
    BOOST_TEST(fp32_to_fp16(70000.0f) == 0x7c00);
    BOOST_TEST(fp32_to_fp16(1e-9f) == 0x0000);
    BOOST_TEST(fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);             // smallest subnormal
    BOOST_TEST(bf16_to_fp32(fp32_to_bf16(3.140625f)) == 3.140625f);
    BOOST_TEST(fp32_to_bf16(1.0f + 1.0f / 256.0f) == 0x3f80);              // tie -> even
}

BOOST_AUTO_TEST_CASE(quantizers_round_trip_within_their_step) {
    const int64_t n = 32 * 37;
    const auto x = randn(size_t(n), 7);
    for (DType t : kTypes) {
        std::vector<uint8_t> enc(encoded_bytes(t, n));
        quantize_ref(t, x.data(), enc.data(), n);
        std::vector<float> y(static_cast<size_t>(n));
        dequantize_ref(t, enc.data(), y.data(), n);
        for (int64_t b = 0; b < n / 32; ++b) {
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[size_t(b * 32 + j)]));
            // Q8_0: half a step (amax/127), plus the scale's own fp16 rounding.
            // Q4_0: the scale maps the largest-magnitude value to -8 exactly, so on
            // the other side the range ends at +7 steps: a value near +amax is
            // clamped and may be off by one whole step (amax/8). Floats: their epsilon.
            const double step = t == DType::Q8_0 ? amax / 127.0 * 0.5 : t == DType::Q4_0 ? amax / 8.0 : 0.0;
            for (int j = 0; j < 32; ++j) {
                const size_t i = size_t(b * 32 + j);
                const double tol = t == DType::F32   ? 0.0
                                   : t == DType::F16 ? std::fabs(x[i]) * 4.9e-4 + 6e-8
                                   : t == DType::BF16 ? std::fabs(x[i]) * 3.9e-3
                                                      : step * 1.002 + amax * 1e-3;
                BOOST_TEST_REQUIRE(std::fabs(double(y[i]) - x[i]) <= tol,
                                   dtype_name(t) << " element " << i << ": " << x[i] << " -> " << y[i]);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(simd_q8_0_activation_quantizer_matches_reference) {
    for (const KernelTable* k : available_tables()) {
        for (int64_t n : {32, 64, 96, 4096}) {
            const auto x = randn(size_t(n), uint32_t(n));
            std::vector<BlockQ8_0> a(size_t(n / 32)), b(size_t(n / 32));
            quantize_row_q8_0_ref(x.data(), a.data(), n);
            k->quantize_q8_0(x.data(), b.data(), n);
            BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(BlockQ8_0)) == 0, k->name << " n=" << n);
        }
    }
}

BOOST_AUTO_TEST_CASE(matmul_every_type_every_isa_matches_reference) {
    // lengths: one block up to many vector widths (and a 4096-wide row);
    // rows: 1, odd, and more than a 16-row tile; activation rows: 1 and several.
    const int64_t lengths[] = {32, 64, 96, 160, 256, 544, 4096};
    const int64_t row_counts[] = {1, 3, 17, 40};
    const int64_t act_counts[] = {1, 5, 9};
    for (const KernelTable* k : available_tables()) {
        for (DType t : kTypes) {
            const DType vt = vec_dot_type(t);
            for (int64_t n : lengths) {
                for (int64_t rows : row_counts) {
                    for (int64_t nt : act_counts) {
                        const auto wf = randn(size_t(n * rows), uint32_t(n * 31 + rows));
                        const auto xf = randn(size_t(n * nt), uint32_t(n * 17 + nt), 2.0f);
                        const size_t ws = row_bytes(t, n), xs = row_bytes(vt, n);
                        // Offset buffers: rows are only element-aligned (as in a GGUF file
                        // whose rows are not multiples of the vector width), never vector-aligned.
                        const size_t wo = t == DType::F32 ? 4 : 2, xo = vt == DType::F32 ? 4 : 2;
                        std::vector<uint8_t> Wb(ws * size_t(rows) + 64), Xb(xs * size_t(nt) + 64);
                        uint8_t* Wp = Wb.data() + (64 - reinterpret_cast<uintptr_t>(Wb.data()) % 64) % 64 + wo;
                        uint8_t* Xp = Xb.data() + (64 - reinterpret_cast<uintptr_t>(Xb.data()) % 64) % 64 + xo;
                        for (int64_t r = 0; r < rows; ++r) quantize_ref(t, wf.data() + r * n, Wp + r * ws, n);
                        for (int64_t i = 0; i < nt; ++i) quantize_ref(vt, xf.data() + i * n, Xp + i * xs, n);
                        std::vector<float> Y(size_t(rows * nt), NAN);
                        // two calls over split row ranges, as threads would
                        const int64_t mid = rows / 2;
                        k->matmul[size_t(t)](n, Wp, ws, 0, mid, Xp, xs, nt, Y.data(), rows);
                        k->matmul[size_t(t)](n, Wp, ws, mid, rows, Xp, xs, nt, Y.data(), rows);
                        const std::string miss = mismatch_with_reference(t, n, rows, Wp, ws, vt, nt, Xp, xs, Y.data());
                        BOOST_TEST_REQUIRE(miss.empty(),
                                           k->name << " " << dtype_name(t) << " n=" << n << " rows=" << rows << " " << miss);
                    }
                }
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(repacked_x16_layout_round_trips_and_kernels_match_reference) {
    int kernels_run = 0;
    for (DType t : {DType::Q4_0, DType::Q8_0}) {
        for (int64_t n : {32, 96, 2048}) {
            for (int64_t rows : {16, 48, 64}) {  // 64: a call over 3 groups (decode: two streams and one alone)
                const int64_t nb = n / 32;
                const size_t ws = row_bytes(t, n);
                const auto wf = randn(size_t(n * rows), uint32_t(n + rows));
                std::vector<uint8_t> plain(ws * size_t(rows)), packed(plain.size()), back(plain.size());
                for (int64_t r = 0; r < rows; ++r) quantize_ref(t, wf.data() + r * n, plain.data() + r * ws, n);
                for (int64_t g = 0; g < rows / 16; ++g) {
                    repack_x16_ref(t, plain.data() + g * 16 * ws, packed.data() + g * 16 * ws, nb);
                    unpack_x16_ref(t, packed.data() + g * 16 * ws, back.data() + g * 16 * ws, nb);
                }
                BOOST_TEST_REQUIRE((back == plain));
                BOOST_TEST_REQUIRE((packed != plain));
                for (const KernelTable* k : available_tables()) {
                    if (!k->matmul_x16[size_t(t)]) continue;
                    // 1..17: every slice width of the AVX2 (up to 6 rows) and AVX-512
                    // (up to 16) kernels and a tail; 31, 64, 65, 70: slices and tails of a
                    // panel; 32, 131: the amx kernels' smallest call and a panel (128) and more
                    for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 64, 65, 70, 131}) {
                        const auto xf = randn(size_t(n * nt), uint32_t(nt * 7 + n), 2.0f);
                        const size_t xs = row_bytes(DType::Q8_0, n);
                        std::vector<uint8_t> X(xs * size_t(nt));
                        for (int64_t i = 0; i < nt; ++i) quantize_ref(DType::Q8_0, xf.data() + i * n, X.data() + i * xs, n);
                        std::vector<float> Y(size_t(rows * nt), NAN);
                        // split at a group boundary, as threads would
                        const int64_t mid = rows > 16 ? 16 : rows;
                        k->matmul_x16[size_t(t)](n, packed.data(), ws, 0, mid, X.data(), xs, nt, Y.data(), rows);
                        k->matmul_x16[size_t(t)](n, packed.data(), ws, mid, rows, X.data(), xs, nt, Y.data(), rows);
                        const std::string miss =
                            mismatch_with_reference(t, n, rows, plain.data(), ws, DType::Q8_0, nt, X.data(), xs, Y.data());
                        BOOST_TEST_REQUIRE(miss.empty(),
                                           k->name << " x16 " << dtype_name(t) << " n=" << n << " rows=" << rows << " " << miss);
                        ++kernels_run;
                    }
                }
            }
        }
    }
    BOOST_TEST_MESSAGE("repacked kernels checked: " << kernels_run);
}

// A row's result from an x16 kernel must not depend on how many activation rows
// share the call, where it falls in a panel or slice, or which thread computes
// which group: every call shape below must give the same bits as one
// activation row at a time over all rows.
BOOST_AUTO_TEST_CASE(repacked_x16_kernels_are_batch_and_thread_invariant) {
    int checked = 0;
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        // 25 blocks (odd) and 64; the super-block types: 3 and 11 (odd) super-blocks
        const bool k_type = type_info(t).block_size == QK_K;
        for (int64_t n : k_type ? std::vector<int64_t>{768, 2816} : std::vector<int64_t>{800, 2048}) {
            const int64_t rows = 128, nb = n / 32, groups = rows / 16;
            const size_t ws = row_bytes(t, n), xs = row_bytes(DType::Q8_0, n);
            const auto wf = randn(size_t(n * rows), uint32_t(n * 3 + 1));
            std::vector<uint8_t> plain(ws * size_t(rows)), packed(plain.size());
            for (int64_t r = 0; r < rows; ++r) quantize_ref(t, wf.data() + r * n, plain.data() + r * ws, n);
            for (int64_t g = 0; g < groups; ++g) repack_x16_ref(t, plain.data() + g * 16 * ws, packed.data() + g * 16 * ws, nb);
            const int64_t max_nt = 65;
            const auto xf = randn(size_t(n * max_nt), uint32_t(n + 5), 2.0f);
            std::vector<uint8_t> X(xs * size_t(max_nt));
            for (int64_t i = 0; i < max_nt; ++i) quantize_ref(DType::Q8_0, xf.data() + i * n, X.data() + i * xs, n);
            for (const KernelTable* k : available_tables()) {
                const MatmulFn mm = k->matmul_x16[size_t(t)];
                if (!mm) continue;
                std::vector<float> one(size_t(rows * max_nt), NAN);
                for (int64_t i = 0; i < max_nt; ++i) mm(n, packed.data(), ws, 0, rows, X.data() + i * xs, xs, 1, one.data() + i * rows, rows);
                BOOST_TEST_REQUIRE(mismatch_with_reference(t, n, rows, plain.data(), ws, DType::Q8_0, max_nt, X.data(), xs, one.data()).empty(),
                                   k->name << " " << dtype_name(t) << " n=" << n);
                // slice widths of the kernels (AVX2: up to 6 rows, AVX-512: 16) and
                // ragged last slices, a full panel of 64 and one more row
                for (int64_t nt : {1, 2, 3, 4, 5, 6, 8, 9, 13, 16, 17, 64, 65}) {
                    // every group on its own thread, all at once, twice over
                    std::vector<float> Y(size_t(rows * nt), NAN);
                    for (int rep = 0; rep < 2; ++rep) {
                        std::vector<std::thread> pool;
                        for (int64_t g = 0; g < groups; ++g)
                            pool.emplace_back([&, g] { mm(n, packed.data(), ws, g * 16, g * 16 + 16, X.data(), xs, nt, Y.data(), rows); });
                        for (auto& th : pool) th.join();
                        BOOST_TEST_REQUIRE(std::memcmp(Y.data(), one.data(), Y.size() * sizeof(float)) == 0,
                                           k->name << " x16 " << dtype_name(t) << " n=" << n << " nt=" << nt
                                                   << ": result depends on the batch or the threads");
                    }
                    // uneven row ranges: three groups, then one, then the other four
                    std::fill(Y.begin(), Y.end(), NAN);
                    for (auto [a, e] : {std::pair<int64_t, int64_t>{0, 48}, {48, 64}, {64, rows}})
                        mm(n, packed.data(), ws, a, e, X.data(), xs, nt, Y.data(), rows);
                    BOOST_TEST_REQUIRE(std::memcmp(Y.data(), one.data(), Y.size() * sizeof(float)) == 0,
                                       k->name << " x16 " << dtype_name(t) << " n=" << n << " nt=" << nt
                                               << ": result depends on the row split");
                    // the same activation rows at an offset within the call (another slice and panel position)
                    if (nt + 1 <= max_nt) {
                        std::vector<float> Y2(size_t(rows * (nt + 1)), NAN);
                        mm(n, packed.data(), ws, 0, rows, X.data(), xs, nt + 1, Y2.data(), rows);
                        BOOST_TEST_REQUIRE(std::memcmp(Y2.data(), one.data(), Y2.size() * sizeof(float)) == 0,
                                           k->name << " x16 " << dtype_name(t) << " n=" << n << " nt=" << nt + 1);
                    }
                    ++checked;
                }
            }
        }
    }
    BOOST_TEST_MESSAGE("x16 batch/thread invariance checked: " << checked);
    BOOST_TEST(checked > 0);
}

BOOST_AUTO_TEST_CASE(float_ops_match_reference) {
    for (const KernelTable* k : available_tables()) {
        for (int64_t n : {1, 3, 8, 15, 16, 17, 33, 64, 100, 2048}) {
            const auto a = randn(size_t(n) + 1, uint32_t(n)), b = randn(size_t(n) + 1, uint32_t(n + 1000));
            const float* pa = a.data() + 1;  // misaligned
            const float* pb = b.data() + 1;
            double ref = 0, abs_sum = 0;
            for (int64_t i = 0; i < n; ++i) { ref += double(pa[i]) * pb[i]; abs_sum += std::fabs(double(pa[i]) * pb[i]); }
            BOOST_TEST(std::fabs(k->dot_f32(pa, pb, n) - ref) <= tolerance(n, abs_sum), k->name << " dot n=" << n);

            std::vector<float> y1(pb, pb + n), y2(pb, pb + n);
            k->axpy_f32(0.75f, pa, y1.data(), n);
            for (int64_t i = 0; i < n; ++i) y2[size_t(i)] += 0.75f * pa[i];
            for (int64_t i = 0; i < n; ++i) BOOST_TEST_REQUIRE(std::fabs(y1[size_t(i)] - y2[size_t(i)]) <= 1e-5f * (1 + std::fabs(y2[size_t(i)])));

            std::vector<float> r1(static_cast<size_t>(n)), r2(static_cast<size_t>(n));
            k->rmsnorm(pa, pb, r1.data(), n, 1e-5f);
            rmsnorm_ref(pa, pb, r2.data(), n, 1e-5f);
            for (int64_t i = 0; i < n; ++i)
                BOOST_TEST_REQUIRE(std::fabs(r1[size_t(i)] - r2[size_t(i)]) <= 1e-5f * (1 + std::fabs(r2[size_t(i)])),
                                   k->name << " rmsnorm n=" << n << " i=" << i);

            // SwiGLU: xsimd's exp is accurate to a few ulp; relative 1e-5 is ample and still catches any slip.
            k->swiglu(pa, pb, r1.data(), n);
            swiglu_ref(pa, pb, r2.data(), n);
            for (int64_t i = 0; i < n; ++i)
                BOOST_TEST_REQUIRE(std::fabs(r1[size_t(i)] - r2[size_t(i)]) <= 1e-5f * (1 + std::fabs(r2[size_t(i)])),
                                   k->name << " swiglu n=" << n << " i=" << i);
        }
    }
}

BOOST_AUTO_TEST_CASE(isa_override_only_lowers) {
    // find_table never offers a table the CPU cannot run, and the names are unique.
    const auto tables = available_tables();
    for (const KernelTable* t : tables) BOOST_TEST(find_table(t->name) == t);
    BOOST_TEST(find_table("no-such-isa") == nullptr);
}

// ---- the block types beyond Q8_0/Q4_0 (kernels/quant_ref_blocks.hpp) ------------------

namespace {

const DType kBlockTypes[] = {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q4_1, DType::Q5_0,
                             DType::Q5_1, DType::Q2_K, DType::Q3_K, DType::IQ4_NL, DType::IQ4_XS};

void put16(uint8_t* p, float v) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

std::vector<float> decode(DType t, const std::vector<uint8_t>& blk) {
    std::vector<float> y(type_info(t).block_size);
    dequantize_ref(t, blk.data(), y.data(), int64_t(y.size()));
    return y;
}

}  // namespace

BOOST_AUTO_TEST_CASE(block_types_are_supported_with_gguf_sizes) {
    for (DType t : kBlockTypes) {
        const TypeInfo& ti = type_info(t);
        BOOST_TEST(ti.supported, ti.name);
        BOOST_TEST((vec_dot_type(t) == DType::Q8_0), ti.name);
        for (const KernelTable* k : available_tables()) BOOST_TEST(k->matmul[size_t(t)] != nullptr, k->name << " " << ti.name);
    }
}

// Known answers, byte by byte from the GGUF layouts (tensor.hpp): each checks a
// field whose packing an encoder/decoder pair could get wrong symmetrically.
BOOST_AUTO_TEST_CASE(block_layouts_decode_known_bytes) {
    {  // Q4_K: d=1, dmin=0.5; sub-block 1 (sc 2, m 3) and sub-block 5 (6-bit: sc 33, m 40)
        std::vector<uint8_t> b(sizeof(BlockQ4_K), 0);
        put16(b.data(), 1.0f);
        put16(b.data() + 2, 0.5f);
        uint8_t* s = b.data() + 4;
        s[1] = 2;  s[5] = 3;                          // sc[1], m[1]
        s[9] = uint8_t((33 & 15) | (40 & 15) << 4);   // low nibbles of sc[5], m[5]
        s[1] |= uint8_t((33 >> 4) << 6);              // top bits of sc[5] in scales[1]
        s[5] |= uint8_t((40 >> 4) << 6);              // top bits of m[5] in scales[5]
        // element 32+3 (sub-block 1) is the high nibble of qs[3]; element 160+7 (sub-block 5) the high nibble of qs[64+7]
        b[16 + 3] = 0x70;
        b[16 + 64 + 7] = 0x90;
        const auto y = decode(DType::Q4_K, b);
        BOOST_TEST(y[35] == 1.0f * 2 * 7 - 0.5f * 3);
        BOOST_TEST(y[167] == 1.0f * 33 * 9 - 0.5f * 40);
        BOOST_TEST(y[32] == -1.5f);  // q 0: only the min
    }
    {  // Q5_K: the fifth bit of element l of sub-block s is bit s of qh[l]
        std::vector<uint8_t> b(sizeof(BlockQ5_K), 0);
        put16(b.data(), 1.0f);
        b[4 + 6] = 1;                // sc[6] low nibble... via scales[10] (j+4) for j >= 4
        b[4 + 10] = 1;               // sc[6] = 1, m[6] = 0
        b[16 + 5] = uint8_t(1 << 6);  // qh[5] bit 6: element 6*32+5
        b[48 + 96 + 5] = 0x03;        // low nibble 3 (sub-block 6 = chunk 3, low)
        const auto y = decode(DType::Q5_K, b);
        BOOST_TEST(y[6 * 32 + 5] == 19.0f);
    }
    {  // Q6_K: d=0.25; element 128+64+9 (second half, ql high nibble, qh bits 4-5), scale of group 12
        std::vector<uint8_t> b(sizeof(BlockQ6_K), 0);
        put16(b.data() + 208, 0.25f);
        reinterpret_cast<int8_t*>(b.data() + 192)[12] = -3;
        b[64 + 9] = 0x50;                 // ql[64+9] high nibble 5
        b[128 + 32 + 9] = uint8_t(2 << 4);  // qh[32+9] bits 4-5 = 2
        const auto y = decode(DType::Q6_K, b);
        BOOST_TEST(y[128 + 64 + 9] == 0.25f * -3 * ((5 | 2 << 4) - 32));
    }
    {  // Q3_K: scale of group 13 = 6 bits (low nibble: high nibble of scales[5]; top: bits 6-7 of scales[9]);
       // element 128+32*2+17 has its low bits at bits 4-5 of qs[32+17] and its high bit at bit 6 of hmask[17]
        std::vector<uint8_t> b(sizeof(BlockQ3_K), 0);
        put16(b.data() + 108, 2.0f);
        const int sc = 45;  // weight scale 45 - 32 = 13
        b[96 + 5] = uint8_t((sc & 15) << 4);
        b[96 + 9] = uint8_t((sc >> 4) << 6);
        b[32 + 32 + 17] = uint8_t(1 << 4);  // low bits 1
        const int e = 128 + 64 + 17;          // group 13
        auto y = decode(DType::Q3_K, b);
        BOOST_TEST(y[e] == 2.0f * 13 * (1 - 4));  // high bit clear: minus 4
        b[17] = uint8_t(1 << 6);
        y = decode(DType::Q3_K, b);
        BOOST_TEST(y[e] == 2.0f * 13 * 1);
    }
    {  // Q2_K: group 7 scale 9, min 2; element 32*3+16+1 is bits 6-7 of qs[17]
        std::vector<uint8_t> b(sizeof(BlockQ2_K), 0);
        b[7] = uint8_t(9 | 2 << 4);
        put16(b.data() + 80, 0.5f);
        put16(b.data() + 82, 0.25f);
        b[16 + 17] = uint8_t(3 << 6);
        const auto y = decode(DType::Q2_K, b);
        BOOST_TEST(y[96 + 17] == 0.5f * 9 * 3 - 0.25f * 2);
    }
    {  // Q5_0 / Q5_1: element j+16's fifth bit is bit j+16 of qh
        std::vector<uint8_t> b(sizeof(BlockQ5_0), 0);
        put16(b.data(), 1.0f);
        b[2 + 2] = 1 << 3;  // bit 19
        b[6 + 3] = 0x20;    // element 19: high nibble of qs[3] = 2
        BOOST_TEST(decode(DType::Q5_0, b)[19] == float((2 | 16) - 16));
        BOOST_TEST(decode(DType::Q5_0, b)[3] == -16.0f);
        std::vector<uint8_t> c(sizeof(BlockQ5_1), 0);
        put16(c.data(), 1.0f);
        put16(c.data() + 2, -1.0f);
        c[4 + 2] = 1 << 3;
        c[8 + 3] = 0x20;
        BOOST_TEST(decode(DType::Q5_1, c)[19] == 18.0f - 1.0f);
    }
    {  // Q4_1: d*q + m
        std::vector<uint8_t> b(sizeof(BlockQ4_1), 0);
        put16(b.data(), 0.5f);
        put16(b.data() + 2, 3.0f);
        b[4 + 1] = 0xa4;
        const auto y = decode(DType::Q4_1, b);
        BOOST_TEST(y[1] == 0.5f * 4 + 3.0f);
        BOOST_TEST(y[17] == 0.5f * 10 + 3.0f);
    }
    {  // IQ4_NL / IQ4_XS: the grid; IQ4_XS sub-block 5 scale = low nibble (high of scales_l[2]) | top bits 10-11 of scales_h
        std::vector<uint8_t> b(sizeof(BlockIQ4_NL), 0);
        put16(b.data(), 2.0f);
        b[2 + 4] = 0xf0;
        BOOST_TEST(decode(DType::IQ4_NL, b)[20] == 2.0f * 113);
        BOOST_TEST(decode(DType::IQ4_NL, b)[4] == 2.0f * -127);
        std::vector<uint8_t> c(sizeof(BlockIQ4_XS), 0);
        put16(c.data(), 0.5f);
        const int ls = 50;
        c[4 + 2] = uint8_t((ls & 15) << 4);
        const uint16_t sh = uint16_t((ls >> 4) << 10);
        std::memcpy(c.data() + 2, &sh, 2);
        c[8 + 16 * 5 + 1] = 0x09;  // element 5*32+1: grid level 9 = 13
        BOOST_TEST(decode(DType::IQ4_XS, c)[161] == 0.5f * (ls - 32) * 13);
    }
}

// Round trip of normal data (sigma 1, 64 super-blocks): RMSE of our encoders
// against the F32 input, measured: Q6_K 0.0173, Q5_1 0.0338, Q5_K 0.0358,
// Q5_0 0.0401, Q4_1 0.0700, Q4_K 0.0715, IQ4_NL 0.0731, IQ4_XS 0.0739,
// Q3_K 0.144, Q2_K 0.265 (for scale: Q8_0 0.005, Q4_0 0.11). The bounds
// allow 15% over those; the largest single error, 12 x the bound.
BOOST_AUTO_TEST_CASE(block_types_round_trip_within_their_error) {
    const int64_t n = QK_K * 64;
    const auto x = randn(size_t(n), 11);
    const std::pair<DType, double> bounds[] = {
        {DType::Q6_K, 0.020}, {DType::Q5_1, 0.039}, {DType::Q5_K, 0.041}, {DType::Q5_0, 0.046}, {DType::Q4_1, 0.081},
        {DType::Q4_K, 0.082}, {DType::IQ4_NL, 0.084}, {DType::IQ4_XS, 0.085}, {DType::Q3_K, 0.166}, {DType::Q2_K, 0.305}};
    for (auto [t, bound] : bounds) {
        std::vector<uint8_t> enc(encoded_bytes(t, n));
        quantize_ref(t, x.data(), enc.data(), n);
        std::vector<float> y(static_cast<size_t>(n));
        dequantize_ref(t, enc.data(), y.data(), n);
        double se = 0, amax_err = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double e = double(y[size_t(i)]) - x[size_t(i)];
            se += e * e;
            amax_err = std::max(amax_err, std::fabs(e));
        }
        const double rmse = std::sqrt(se / double(n));
        BOOST_TEST_MESSAGE(dtype_name(t) << " rmse " << rmse << " max " << amax_err);
        BOOST_TEST(rmse <= bound, dtype_name(t) << " rmse " << rmse);
        BOOST_TEST(amax_err <= 12 * bound, dtype_name(t) << " max error " << amax_err);
    }
    // Degenerate inputs: zeros stay zero, a constant row is close, non-finite
    // input does not crash (its encoding is unspecified).
    for (DType t : kBlockTypes) {
        const int64_t m = QK_K;
        std::vector<uint8_t> enc(encoded_bytes(t, m));
        std::vector<float> y(static_cast<size_t>(m));
        std::vector<float> z(static_cast<size_t>(m), 0.0f);
        quantize_ref(t, z.data(), enc.data(), m);
        dequantize_ref(t, enc.data(), y.data(), m);
        BOOST_TEST((y == z), dtype_name(t) << " zeros");
        std::vector<float> c(static_cast<size_t>(m), -0.75f);
        quantize_ref(t, c.data(), enc.data(), m);
        dequantize_ref(t, enc.data(), y.data(), m);
        for (float v : y) BOOST_TEST_REQUIRE(std::fabs(v + 0.75f) <= 0.75f * 0.02f, dtype_name(t) << " constant: " << v);
        std::vector<float> bad(static_cast<size_t>(m), 1.0f);
        bad[3] = NAN;
        bad[40] = INFINITY;
        bad[200] = -1e30f;
        quantize_ref(t, bad.data(), enc.data(), m);
        dequantize_ref(t, enc.data(), y.data(), m);
    }
}

// Every ISA's kernel against the reference dot product, on shapes that stress
// the tiles: one row, rows not a multiple of the row tile, 1..40 activation
// rows (tiles of 4, 2, 1), one super-block up to a long row, and for the
// 32-blocks a last chunk of fewer than eight blocks. Results must also not
// depend on which rows and activation rows share a call (bitwise).
BOOST_AUTO_TEST_CASE(block_types_matmul_every_isa_matches_reference) {
    int checked = 0;
    for (DType t : kBlockTypes) {
        const bool k_type = type_info(t).block_size == QK_K;
        const std::vector<int64_t> lengths = k_type ? std::vector<int64_t>{256, 768, 2816}
                                                    : std::vector<int64_t>{32, 96, 288, 2080};
        for (int64_t n : lengths) {
            for (int64_t rows : {1, 3, 6, 17}) {
                for (int64_t nt : {1, 3, 9, 40}) {
                    if (rows * nt * n > 17 * 40 * 768) continue;  // keep the scalar reference quick
                    const auto wf = randn(size_t(n * rows), uint32_t(n * 31 + rows));
                    const auto xf = randn(size_t(n * nt), uint32_t(n * 17 + nt), 2.0f);
                    const size_t ws = row_bytes(t, n), xs = row_bytes(DType::Q8_0, n);
                    // rows only 2-byte aligned, as in a file
                    std::vector<uint8_t> Wb(ws * size_t(rows) + 64), Xb(xs * size_t(nt) + 64);
                    uint8_t* Wp = Wb.data() + (64 - reinterpret_cast<uintptr_t>(Wb.data()) % 64) % 64 + 2;
                    uint8_t* Xp = Xb.data() + (64 - reinterpret_cast<uintptr_t>(Xb.data()) % 64) % 64 + 2;
                    for (int64_t r = 0; r < rows; ++r) quantize_ref(t, wf.data() + r * n, Wp + r * ws, n);
                    for (int64_t i = 0; i < nt; ++i) quantize_ref(DType::Q8_0, xf.data() + i * n, Xp + i * xs, n);
                    std::vector<double> ref(size_t(rows * nt)), abs_sum(size_t(rows * nt));
                    std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
                    for (int64_t i = 0; i < nt; ++i) {
                        dequantize_ref(DType::Q8_0, Xp + i * xs, xd.data(), n);
                        for (int64_t r = 0; r < rows; ++r) {
                            ref[size_t(i * rows + r)] = dot_ref(t, n, Wp + r * ws, Xp + i * xs);
                            dequantize_ref(t, Wp + r * ws, wd.data(), n);
                            double s = 0;
                            for (int64_t j = 0; j < n; ++j) s += std::fabs(double(wd[size_t(j)]) * xd[size_t(j)]);
                            abs_sum[size_t(i * rows + r)] = s;
                        }
                    }
                    for (const KernelTable* k : available_tables()) {
                        std::vector<float> Y(size_t(rows * nt), NAN), Y1(size_t(rows * nt), NAN);
                        const int64_t mid = rows / 2;  // two calls over split row ranges, as threads would
                        k->matmul[size_t(t)](n, Wp, ws, 0, mid, Xp, xs, nt, Y.data(), rows);
                        k->matmul[size_t(t)](n, Wp, ws, mid, rows, Xp, xs, nt, Y.data(), rows);
                        // one row and one activation row per call: must be bitwise the same
                        for (int64_t i = 0; i < nt; ++i)
                            for (int64_t r = 0; r < rows; ++r)
                                k->matmul[size_t(t)](n, Wp, ws, r, r + 1, Xp + i * xs, xs, 1, Y1.data() + i * rows, rows);
                        for (size_t e = 0; e < Y.size(); ++e) {
                            BOOST_TEST_REQUIRE(std::fabs(Y[e] - ref[e]) <= tolerance(n, abs_sum[e]),
                                               k->name << " " << dtype_name(t) << " n=" << n << " rows=" << rows << " nt=" << nt
                                                       << " out " << e << ": " << Y[e] << " vs " << ref[e]);
                            BOOST_TEST_REQUIRE(Y[e] == Y1[e], k->name << " " << dtype_name(t) << " n=" << n << " rows=" << rows
                                                                      << " nt=" << nt << " out " << e << " depends on the tile");
                        }
                        ++checked;
                    }
                }
            }
        }
    }
    BOOST_TEST_MESSAGE("block-type matmuls checked: " << checked);
}

// Arbitrary bytes (NaN, infinite, huge and subnormal scales included) are only
// numbers to the kernels: no crash, no read outside the row, and wherever the
// reference is finite every ISA agrees with it.
BOOST_AUTO_TEST_CASE(block_types_tolerate_arbitrary_bytes) {
    std::mt19937 g(5);
    int compared = 0;
    for (DType t : kBlockTypes) {
        const int64_t n = 512, rows = 7, nt = 3;
        const size_t ws = row_bytes(t, n), xs = row_bytes(DType::Q8_0, n);
        std::vector<uint8_t> W(ws * rows), X(xs * nt);
        for (auto& b : W) b = uint8_t(g());
        const auto xf = randn(size_t(n * nt), 9);
        for (int64_t i = 0; i < nt; ++i) quantize_ref(DType::Q8_0, xf.data() + i * n, X.data() + i * xs, n);
        std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
        for (const KernelTable* k : available_tables()) {
            std::vector<float> Y(size_t(rows * nt));
            k->matmul[size_t(t)](n, W.data(), ws, 0, rows, X.data(), xs, nt, Y.data(), rows);
            for (int64_t i = 0; i < nt; ++i) {
                dequantize_ref(DType::Q8_0, X.data() + i * xs, xd.data(), n);
                for (int64_t r = 0; r < rows; ++r) {
                    const double ref = dot_ref(t, n, W.data() + r * ws, X.data() + i * xs);
                    dequantize_ref(t, W.data() + r * ws, wd.data(), n);
                    double abs_sum = 0;
                    for (int64_t j = 0; j < n; ++j) abs_sum += std::fabs(double(wd[size_t(j)]) * xd[size_t(j)]);
                    if (!std::isfinite(ref) || !std::isfinite(abs_sum) || abs_sum > 1e30) continue;
                    // the kernels fold offsets and scales in float: allow for the size of D*u terms
                    BOOST_TEST(std::fabs(Y[size_t(i * rows + r)] - ref) <= 4 * tolerance(n, abs_sum),
                               k->name << " " << dtype_name(t) << " row " << r << ": " << Y[size_t(i * rows + r)] << " vs " << ref);
                    ++compared;
                }
            }
        }
    }
    BOOST_TEST(compared > 100);
}

// Q4_K, Q5_K, Q6_K in the 16-row interleaved layout: the repack is a
// permutation (round trip), and every ISA with a kernel for it matches the
// reference on the plain rows, bitwise alike for any number of activation rows.
BOOST_AUTO_TEST_CASE(repacked_x16_super_blocks_round_trip_and_match_reference) {
    int kernels_run = 0;
    for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        BOOST_TEST(repackable(t));
        for (int64_t n : {256, 2816}) {  // one super-block; eleven
            for (int64_t rows : {16, 48}) {  // one group; an odd number of groups
                const size_t ws = row_bytes(t, n), xs = row_bytes(DType::Q8_0, n);
                const auto wf = randn(size_t(n * rows), uint32_t(n + rows + 3));
                std::vector<uint8_t> plain(ws * size_t(rows)), packed(plain.size()), back(plain.size());
                for (int64_t r = 0; r < rows; ++r) quantize_ref(t, wf.data() + r * n, plain.data() + r * ws, n);
                for (int64_t g = 0; g < rows / 16; ++g) {
                    repack_x16_ref(t, plain.data() + g * 16 * ws, packed.data() + g * 16 * ws, n / 32);
                    unpack_x16_ref(t, packed.data() + g * 16 * ws, back.data() + g * 16 * ws, n / 32);
                }
                BOOST_TEST_REQUIRE((back == plain));
                BOOST_TEST_REQUIRE((packed != plain));
                for (const KernelTable* k : available_tables()) {
                    if (!k->matmul_x16[size_t(t)]) continue;
                    // one activation row; every slice width of the AVX2 (up to 5) and
                    // AVX-512 (4) kernels and a ragged last slice; a full panel (64), one more
                    for (int64_t nt : {1, 2, 3, 4, 5, 6, 9, 40, 64, 65}) {
                        const auto xf = randn(size_t(n * nt), uint32_t(nt * 5 + n), 2.0f);
                        std::vector<uint8_t> X(xs * size_t(nt));
                        for (int64_t i = 0; i < nt; ++i) quantize_ref(DType::Q8_0, xf.data() + i * n, X.data() + i * xs, n);
                        std::vector<float> Y(size_t(rows * nt), NAN), Y1(size_t(rows * nt), NAN);
                        const int64_t mid = rows > 16 ? 16 : rows;  // split at a group boundary, as threads would
                        k->matmul_x16[size_t(t)](n, packed.data(), ws, 0, mid, X.data(), xs, nt, Y.data(), rows);
                        k->matmul_x16[size_t(t)](n, packed.data(), ws, mid, rows, X.data(), xs, nt, Y.data(), rows);
                        for (int64_t i = 0; i < nt; ++i)
                            k->matmul_x16[size_t(t)](n, packed.data(), ws, 0, rows, X.data() + i * xs, xs, 1, Y1.data() + i * rows, rows);
                        const std::string miss =
                            mismatch_with_reference(t, n, rows, plain.data(), ws, DType::Q8_0, nt, X.data(), xs, Y.data());
                        BOOST_TEST_REQUIRE(miss.empty(), k->name << " x16 " << dtype_name(t) << " n=" << n << " rows=" << rows
                                                                 << " nt=" << nt << " " << miss);
                        for (size_t e = 0; e < Y.size(); ++e)
                            BOOST_TEST_REQUIRE(Y[e] == Y1[e], k->name << " x16 " << dtype_name(t) << " depends on the activation tile");
                        ++kernels_run;
                    }
                }
            }
        }
    }
    BOOST_TEST_MESSAGE("repacked super-block kernels checked: " << kernels_run);
}

// Batch invariance of the plain Q4_0/Q8_0 and float kernels (register tiles
// on AVX2 and AVX-512): an output is bitwise the same whether its activation
// row comes alone, in a tile of 4, or at the ragged end, and whatever the row
// split.
BOOST_AUTO_TEST_CASE(plain_matmul_is_bitwise_independent_of_the_tile) {
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::F32, DType::F16, DType::BF16}) {
        const int64_t n = t == DType::F16 ? 328 : 320, rows = 7, nt = 11;  // (F16: a row that is not whole vectors)
        const DType vt = vec_dot_type(t);
        const size_t ws = row_bytes(t, n), xs = row_bytes(vt, n);
        const auto wf = randn(size_t(n * rows), 91), xf = randn(size_t(n * nt), 92, 2.0f);
        std::vector<uint8_t> Wq(ws * rows), Xq(xs * nt);
        for (int64_t r = 0; r < rows; ++r) quantize_ref(t, wf.data() + r * n, Wq.data() + r * ws, n);
        for (int64_t i = 0; i < nt; ++i) quantize_ref(vt, xf.data() + i * n, Xq.data() + i * xs, n);
        for (const KernelTable* k : available_tables()) {
            std::vector<float> all(size_t(rows * nt)), one(size_t(rows * nt));
            k->matmul[size_t(t)](n, Wq.data(), ws, 0, rows, Xq.data(), xs, nt, all.data(), rows);
            for (int64_t i = 0; i < nt; ++i)
                for (int64_t r = 0; r < rows; ++r)
                    k->matmul[size_t(t)](n, Wq.data(), ws, r, r + 1, Xq.data() + i * xs, xs, 1, one.data() + i * rows, rows);
            BOOST_TEST(std::memcmp(all.data(), one.data(), all.size() * sizeof(float)) == 0,
                       k->name << " " << dtype_name(t));
        }
    }
}

// ---- float16 KV cache -------------------------------------------------------------

// The F16 encoder (keys and values into an F16 KV cache) of every table is
// fp32_to_fp16, bit for bit: ties to even, overflow to infinity, NaN to the
// quiet NaN, float16 subnormals and their rounding, signed zeros.
BOOST_AUTO_TEST_CASE(f16_kv_encoding_is_exact_in_every_table) {
    // (NaNs last: a vector path may hand a block with a NaN to scalar code, so
    // every other special sits in blocks before the first NaN)
    const uint32_t specials[] = {0x3f801000u /* tie, even: down */, 0x3f803000u /* tie, odd: up */, 0x3f801001u,
                                 0x477ff000u /* 65520: to inf */, 0x477fefffu /* just below: 65504 */, 0xc77ff000u,
                                 0x7f800000u, 0xff800000u, 0x33800000u /* 2^-24: smallest subnormal */,
                                 0x33000000u /* 2^-25: tie to 0 */, 0x33000001u, 0x387fc000u /* subnormal tie */,
                                 0x38800000u /* smallest normal */, 0x00000001u, 0x80000000u, 0x00000000u,
                                 0x7f800001u /* signalling NaN */, 0xffc00000u};
    std::vector<float> x = randn(300, 9, 3.0f);
    for (size_t i = 0; i < std::size(specials); ++i) std::memcpy(&x[i * 7], &specials[i], 4);
    for (size_t i = 150; i < 300; ++i) x[i] *= 1e-5f;  // many float16 subnormals (after the NaNs at 112, 119)
    for (const KernelTable* k : available_tables()) {
        BOOST_TEST_REQUIRE(k->encode_f16 != nullptr, k->name);
        for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 33, 300}) {
            std::vector<uint16_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
            k->encode_f16(x.data(), a.data(), n);
            for (int64_t i = 0; i < n; ++i) b[size_t(i)] = fp32_to_fp16(x[size_t(i)]);
            BOOST_TEST_REQUIRE((a == b), k->name << " n=" << n);
        }
        std::vector<uint16_t> tail(150);
        k->encode_f16(x.data() + 150, tail.data(), 150);
        for (size_t i = 0; i < tail.size(); ++i) BOOST_TEST_REQUIRE(tail[i] == fp32_to_fp16(x[150 + i]), k->name);
    }
    BOOST_TEST(fp32_to_fp16(std::bit_cast<float>(0x3f801000u)) == 0x3c00);
    BOOST_TEST(fp32_to_fp16(std::bit_cast<float>(0x3f803000u)) == 0x3c02);
    BOOST_TEST(fp32_to_fp16(std::bit_cast<float>(0x477ff000u)) == 0x7c00);
    BOOST_TEST(fp32_to_fp16(std::bit_cast<float>(0x33800000u)) == 0x0001);
}

// ---- F16x16 (exact F16 weights repacked) ------------------------------------------

// F16x16: the layout round-trips, and every table's x16 F16 kernel matches
// matmul_f16_x16_ref (the double-accumulated dot of the F16 weights, exactly
// converted, and the F32 activations) within float32 accumulation error, for
// lengths with and without a tail of n mod 4, 1 to 65 activation rows (every
// slice width), and splits at group boundaries (a decode walks four groups
// side by side); an output is bitwise the same
// alone, in any slice, and from any thread.
BOOST_AUTO_TEST_CASE(f16_x16_layout_and_kernels_match_reference) {
    int kernels_run = 0;
    for (int64_t n : {1, 6, 64, 2050, 5632}) {
        for (int64_t rows : {16, 48, 112}) {  // 112: a decode call over 5 groups (four streams and one alone)
            const size_t ws = size_t(n) * 2, xs = size_t(n) * 4;
            const auto wf = randn(size_t(n * rows), uint32_t(n * 5 + rows));
            std::vector<uint16_t> hf(size_t(n * rows)), packed(hf.size()), back(hf.size());
            for (size_t i = 0; i < hf.size(); ++i) hf[i] = fp32_to_fp16(wf[i]);
            for (int64_t g = 0; g < rows / 16; ++g) {
                repack_f16_x16(hf.data() + g * 16 * n, packed.data() + g * 16 * n, n);
                unpack_f16_x16(packed.data() + g * 16 * n, back.data() + g * 16 * n, n);
            }
            BOOST_TEST_REQUIRE((back == hf));
            // element k of row i of group g at (g * n + k) * 16 + i
            if (rows >= 32) BOOST_TEST_REQUIRE(packed[size_t((1 * n + n - 1) * 16 + 5)] == hf[size_t((16 + 5) * n + n - 1)]);
            const auto* W = reinterpret_cast<const uint8_t*>(packed.data());
            for (const KernelTable* k : available_tables()) {
                const MatmulFn mm = k->matmul_x16[size_t(DType::F16)];
                if (!mm) continue;
                for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 13, 64, 65}) {
                    const auto xf = randn(size_t(n * nt), uint32_t(nt * 13 + n), 2.0f);
                    const auto* X = reinterpret_cast<const uint8_t*>(xf.data());
                    std::vector<float> Y(size_t(rows * nt), NAN), ref(Y.size()), one(Y.size(), NAN);
                    matmul_f16_x16_ref(n, W, ws, 0, rows, X, xs, nt, ref.data(), rows);
                    const int64_t mid = rows > 16 ? 32 : rows;
                    mm(n, W, ws, 0, mid, X, xs, nt, Y.data(), rows);
                    mm(n, W, ws, mid, rows, X, xs, nt, Y.data(), rows);
                    for (int64_t i = 0; i < nt; ++i)
                        for (int64_t r = 0; r < rows; ++r) {
                            double abs_sum = 0;
                            for (int64_t j = 0; j < n; ++j)
                                abs_sum += std::fabs(double(fp16_to_fp32(hf[size_t(r * n + j)])) * xf[size_t(i * n + j)]);
                            const size_t e = size_t(i * rows + r);
                            BOOST_TEST_REQUIRE(std::fabs(double(Y[e]) - ref[e]) <= tolerance(n, abs_sum),
                                               k->name << " f16 x16 n=" << n << " rows=" << rows << " nt=" << nt << " row " << r
                                                       << " act " << i << ": " << Y[e] << " vs " << ref[e]);
                        }
                    for (int64_t i = 0; i < nt; ++i)
                        for (int64_t g = 0; g < rows / 16; ++g)
                            mm(n, W, ws, g * 16, g * 16 + 16, X + size_t(i) * xs, xs, 1, one.data() + i * rows, rows);
                    BOOST_TEST_REQUIRE(std::memcmp(one.data(), Y.data(), Y.size() * sizeof(float)) == 0,
                                       k->name << " f16 x16 depends on the slice: n=" << n << " rows=" << rows << " nt=" << nt);
                    ++kernels_run;
                }
                const int64_t nt = 65;
                const auto xf = randn(size_t(n * nt), uint32_t(n + 3), 2.0f);
                const auto* X = reinterpret_cast<const uint8_t*>(xf.data());
                std::vector<float> Y1(size_t(rows * nt)), Yt(Y1.size(), NAN);
                mm(n, W, ws, 0, rows, X, xs, nt, Y1.data(), rows);
                std::vector<std::thread> threads;
                for (int64_t g = 0; g < rows / 16; ++g)
                    threads.emplace_back([&, g] { mm(n, W, ws, g * 16, g * 16 + 16, X, xs, nt, Yt.data(), rows); });
                for (auto& th : threads) th.join();
                BOOST_TEST_REQUIRE(std::memcmp(Y1.data(), Yt.data(), Y1.size() * sizeof(float)) == 0,
                                   k->name << " f16 x16 depends on the thread split: n=" << n << " rows=" << rows);
            }
        }
    }
    BOOST_TEST_MESSAGE("f16 x16 kernels checked: " << kernels_run);
    // where the CPU has AVX-512 or AVX2, its table has the kernel
    if (const KernelTable* t = find_table("avx512")) BOOST_TEST(t->matmul_x16[size_t(DType::F16)] != nullptr);
    if (const KernelTable* t = find_table("avx2")) BOOST_TEST(t->matmul_x16[size_t(DType::F16)] != nullptr);
}

// ---- BF16x16 (VDPBF16PS) ------------------------------------------------------

// The activation encoder of every table is fp32_to_bf16, bit for bit: ties to
// even, overflow to infinity, NaN kept NaN (quiet), signed zeros and
// subnormals kept, for lengths around the vector width.
BOOST_AUTO_TEST_CASE(bf16_activation_encoding_is_exact_in_every_table) {
    const uint32_t specials[] = {0x3f808000u /* tie, even: down */, 0x3f818000u /* tie, odd: up */, 0x3f808001u,
                                 0x7f7fffffu /* max: to inf */, 0xff7fffffu, 0x7f800000u, 0xff800000u,
                                 0x7f800001u /* signalling NaN: stays NaN */, 0xffc00000u, 0x7fffffffu,
                                 0x00000001u /* subnormal */, 0x807fffffu, 0x00000000u, 0x80000000u};
    std::vector<float> x = randn(300, 5, 3.0f);
    for (size_t i = 0; i < std::size(specials); ++i) std::memcpy(&x[i * 7], &specials[i], 4);
    for (const KernelTable* k : available_tables()) {
        BOOST_TEST_REQUIRE(k->encode_bf16 != nullptr, k->name);
        for (int64_t n : {1, 15, 16, 17, 33, 300}) {
            std::vector<uint16_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
            k->encode_bf16(x.data(), a.data(), n);
            quantize_ref(DType::BF16, x.data(), b.data(), n);
            BOOST_TEST_REQUIRE((a == b), k->name << " n=" << n);
        }
    }
    BOOST_TEST(fp32_to_bf16(std::bit_cast<float>(0x3f808000u)) == 0x3f80);
    BOOST_TEST(fp32_to_bf16(std::bit_cast<float>(0x3f818000u)) == 0x3f82);
    BOOST_TEST(fp32_to_bf16(std::bit_cast<float>(0x7f7fffffu)) == 0x7f80);
    BOOST_TEST(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}

// The F16 -> BF16 conversion of repack_f16_to_bf16: the nearest BF16, and
// exactly the F16 value where its significand fits BF16's 8 bits.
BOOST_AUTO_TEST_CASE(f16_to_bf16_rounds_to_nearest) {
    BOOST_TEST(f16_to_bf16_ref(0x3c00) == 0x3f80);              // 1
    BOOST_TEST(f16_to_bf16_ref(0x3c01) == 0x3f80);              // 1 + 2^-10: to 1
    BOOST_TEST(f16_to_bf16_ref(0x3c06) == 0x3f81);              // 1 + 6 * 2^-10: up to 1 + 2^-7
    BOOST_TEST(f16_to_bf16_ref(0x3c04) == 0x3f80);              // 1 + 2^-8: a tie, to even
    BOOST_TEST(f16_to_bf16_ref(0x3c0c) == 0x3f82);              // 1 + 3 * 2^-8: a tie, to even (up)
    BOOST_TEST(f16_to_bf16_ref(0x0001) == 0x3380);              // smallest subnormal, 2^-24: exact
    BOOST_TEST(f16_to_bf16_ref(0xfc00) == 0xff80);              // -inf
    BOOST_TEST(std::isnan(bf16_to_fp32(f16_to_bf16_ref(0x7e00))));
    double worst = 0;
    for (uint32_t h = 0; h < 0x7c00; ++h) {  // every finite positive F16: relative error at most half an ulp, 2^-8
        const double f = fp16_to_fp32(uint16_t(h)), b = bf16_to_fp32(f16_to_bf16_ref(uint16_t(h)));
        if (f > 0) worst = std::max(worst, std::fabs(b - f) / f);
    }
    BOOST_TEST(worst <= std::ldexp(1.0, -8));
    BOOST_TEST(worst > 0);
}

// BF16x16: the layout round-trips (from BF16 and from F16), and every table's
// x16 BF16 kernel matches matmul_bf16_x16_ref (the double-accumulated dot of
// BF16 weights and BF16 activations) within float32 accumulation error, for
// one to many groups (tails of the 3- and 4-group tiles), lengths from one
// pair to a row wider than the L1, and 1 to 65 activation rows; an output is
// bitwise the same alone, in any tile, in any row split, and from any thread.
BOOST_AUTO_TEST_CASE(bf16_x16_layout_and_kernels_match_reference) {
    std::vector<uint16_t> lut(65536);
    for (uint32_t h = 0; h < 65536; ++h) lut[h] = f16_to_bf16_ref(uint16_t(h));
    int kernels_run = 0;
    for (int64_t n : {2, 34, 64, 2050, 5632}) {
        for (int64_t rows : {16, 48, 80, 112}) {
            const size_t ws = size_t(n) * 2, xs = size_t(n) * 2;
            const auto wf = randn(size_t(n * rows), uint32_t(n * 3 + rows));
            std::vector<uint16_t> bf(size_t(n * rows)), hf(bf.size()), packed(bf.size()), from_f16(bf.size()), back(bf.size());
            for (size_t i = 0; i < bf.size(); ++i) {
                bf[i] = fp32_to_bf16(wf[i]);
                hf[i] = fp32_to_fp16(wf[i]);
            }
            for (int64_t g = 0; g < rows / 16; ++g) {
                repack_bf16_x16(bf.data() + g * 16 * n, packed.data() + g * 16 * n, n);
                unpack_bf16_x16(packed.data() + g * 16 * n, back.data() + g * 16 * n, n);
                repack_bf16_x16(hf.data() + g * 16 * n, from_f16.data() + g * 16 * n, n, lut.data());
            }
            BOOST_TEST_REQUIRE((back == bf));
            if (n > 2) BOOST_TEST_REQUIRE((packed != bf));  // (one pair per row: the same bytes)
            // element 2p+e of row i of group g at ((g * n/2 + p) * 16 + i) * 2 + e
            if (rows >= 32)
                BOOST_TEST_REQUIRE(packed[size_t(((1 * (n / 2) + n / 2 - 1) * 16 + 5) * 2 + 1)] ==
                                   bf[size_t((16 + 5) * n + n - 1)]);
            for (int64_t g = 0; g < rows / 16; ++g) unpack_bf16_x16(from_f16.data() + g * 16 * n, back.data() + g * 16 * n, n);
            for (size_t i = 0; i < hf.size(); ++i) BOOST_TEST_REQUIRE(back[i] == f16_to_bf16_ref(hf[i]));
            const auto* W = reinterpret_cast<const uint8_t*>(packed.data());
            for (const KernelTable* k : available_tables()) {
                const MatmulFn mm = k->matmul_x16[size_t(DType::BF16)];
                if (!mm) continue;
                for (int64_t nt : {1, 2, 3, 8, 9, 64, 65}) {
                    const auto xf = randn(size_t(n * nt), uint32_t(nt * 11 + n), 2.0f);
                    std::vector<uint16_t> Xv(size_t(n * nt));
                    k->encode_bf16(xf.data(), Xv.data(), n * nt);
                    const auto* X = reinterpret_cast<const uint8_t*>(Xv.data());
                    std::vector<float> Y(size_t(rows * nt), NAN), ref(Y.size()), one(Y.size(), NAN);
                    matmul_bf16_x16_ref(n, W, ws, 0, rows, X, xs, nt, ref.data(), rows);
                    // split at a group boundary, as threads would
                    const int64_t mid = rows > 16 ? 32 : rows;
                    mm(n, W, ws, 0, mid, X, xs, nt, Y.data(), rows);
                    mm(n, W, ws, mid, rows, X, xs, nt, Y.data(), rows);
                    for (int64_t i = 0; i < nt; ++i)
                        for (int64_t r = 0; r < rows; ++r) {
                            double abs_sum = 0;
                            for (int64_t j = 0; j < n; ++j)
                                abs_sum += std::fabs(double(bf16_to_fp32(bf[size_t(r * n + j)])) * bf16_to_fp32(Xv[size_t(i * n + j)]));
                            const size_t e = size_t(i * rows + r);
                            BOOST_TEST_REQUIRE(std::fabs(double(Y[e]) - ref[e]) <= tolerance(n, abs_sum),
                                               k->name << " bf16 x16 n=" << n << " rows=" << rows << " nt=" << nt << " row " << r
                                                       << " act " << i << ": " << Y[e] << " vs " << ref[e]);
                        }
                    // each activation row alone, each group alone: bitwise the same
                    for (int64_t i = 0; i < nt; ++i)
                        for (int64_t g = 0; g < rows / 16; ++g)
                            mm(n, W, ws, g * 16, g * 16 + 16, X + size_t(i) * xs, xs, 1, one.data() + i * rows, rows);
                    BOOST_TEST_REQUIRE(std::memcmp(one.data(), Y.data(), Y.size() * sizeof(float)) == 0,
                                       k->name << " bf16 x16 depends on the tile: n=" << n << " rows=" << rows << " nt=" << nt);
                    ++kernels_run;
                }
                // many threads at once, each a share of the groups (and its own scratch)
                const int64_t nt = 65;
                const auto xf = randn(size_t(n * nt), uint32_t(n + 1), 2.0f);
                std::vector<uint16_t> Xv(size_t(n * nt));
                k->encode_bf16(xf.data(), Xv.data(), n * nt);
                const auto* X = reinterpret_cast<const uint8_t*>(Xv.data());
                std::vector<float> Y1(size_t(rows * nt)), Yt(Y1.size(), NAN);
                mm(n, W, ws, 0, rows, X, xs, nt, Y1.data(), rows);
                std::vector<std::thread> threads;
                for (int64_t g = 0; g < rows / 16; ++g)
                    threads.emplace_back([&, g] { mm(n, W, ws, g * 16, g * 16 + 16, X, xs, nt, Yt.data(), rows); });
                for (auto& th : threads) th.join();
                BOOST_TEST_REQUIRE(std::memcmp(Y1.data(), Yt.data(), Y1.size() * sizeof(float)) == 0,
                                   k->name << " bf16 x16 depends on the thread split: n=" << n << " rows=" << rows);
            }
        }
    }
    BOOST_TEST_MESSAGE("bf16 x16 kernels checked: " << kernels_run);
    // where the CPU has AVX512-BF16 (and the compiler the flag), the table is there and has the kernel
    if (cpu_features().find("avx512bf16") != std::string::npos && find_table("avx512")) {
        const KernelTable* t = find_table("avx512bf16");
        BOOST_TEST_MESSAGE("avx512bf16 table: " << (t ? "present" : "not compiled"));
        if (t) BOOST_TEST(kernels_run > 0);
    } else {
        BOOST_TEST(find_table("avx512bf16") == nullptr);
    }
}
