// Every compiled kernel table this CPU supports against the scalar references,
// for every type, over lengths from one block to several vector widths, odd
// row counts, several activation rows and misaligned buffers.
#define BOOST_TEST_MODULE test_kernels
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <random>
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
    const int64_t act_counts[] = {1, 5};
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
                        std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
                        for (int64_t i = 0; i < nt; ++i) {
                            dequantize_ref(vt, Xp + i * xs, xd.data(), n);
                            for (int64_t r = 0; r < rows; ++r) {
                                const double ref = dot_ref(t, n, Wp + r * ws, Xp + i * xs);
                                dequantize_ref(t, Wp + r * ws, wd.data(), n);
                                double abs_sum = 0;
                                for (int64_t j = 0; j < n; ++j) abs_sum += std::fabs(double(wd[size_t(j)]) * xd[size_t(j)]);
                                const double got = Y[size_t(i * rows + r)];
                                BOOST_TEST_REQUIRE(std::fabs(got - ref) <= tolerance(n, abs_sum),
                                                   k->name << " " << dtype_name(t) << " n=" << n << " rows=" << rows
                                                           << " row " << r << " act " << i << ": " << got << " vs " << ref);
                            }
                        }
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
            for (int64_t rows : {16, 48}) {
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
                    // 1..9: slices of up to 8 rows; 40: a panel of 32 and a tail
                    for (int64_t nt : {1, 3, 4, 9, 40}) {
                        const auto xf = randn(size_t(n * nt), uint32_t(nt * 7 + n), 2.0f);
                        const size_t xs = row_bytes(DType::Q8_0, n);
                        std::vector<uint8_t> X(xs * size_t(nt));
                        for (int64_t i = 0; i < nt; ++i) quantize_ref(DType::Q8_0, xf.data() + i * n, X.data() + i * xs, n);
                        std::vector<float> Y(size_t(rows * nt), NAN);
                        // split at a group boundary, as threads would
                        const int64_t mid = rows > 16 ? 16 : rows;
                        k->matmul_x16[size_t(t)](n, packed.data(), ws, 0, mid, X.data(), xs, nt, Y.data(), rows);
                        k->matmul_x16[size_t(t)](n, packed.data(), ws, mid, rows, X.data(), xs, nt, Y.data(), rows);
                        std::vector<float> wd(static_cast<size_t>(n)), xd(static_cast<size_t>(n));
                        for (int64_t i = 0; i < nt; ++i) {
                            dequantize_ref(DType::Q8_0, X.data() + i * xs, xd.data(), n);
                            for (int64_t r = 0; r < rows; ++r) {
                                const double ref = dot_ref(t, n, plain.data() + r * ws, X.data() + i * xs);
                                dequantize_ref(t, plain.data() + r * ws, wd.data(), n);
                                double abs_sum = 0;
                                for (int64_t j = 0; j < n; ++j) abs_sum += std::fabs(double(wd[size_t(j)]) * xd[size_t(j)]);
                                BOOST_TEST_REQUIRE(std::fabs(Y[size_t(i * rows + r)] - ref) <= tolerance(n, abs_sum),
                                                   k->name << " x16 " << dtype_name(t) << " n=" << n << " rows=" << rows
                                                           << " row " << r << " act " << i);
                            }
                        }
                        ++kernels_run;
                    }
                }
            }
        }
    }
    BOOST_TEST_MESSAGE("repacked kernels checked: " << kernels_run);
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
