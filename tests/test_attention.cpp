// The attention kernel (KernelTable::attend) of every ISA against the scalar
// reference (kernels::attend_ref): grouped heads, tiles of consecutive
// queries, head sizes that are and are not a multiple of the SIMD width,
// contexts that end inside a page, pages scattered in memory, and scores that
// would overflow exp() without the max subtraction. And the property
// reproducible batching rests on: a query's result is bit for bit the same
// whether it is computed alone or inside a tile. Both K/V element types:
// float32 (attend) and float16 (attend_f16).
#define BOOST_TEST_MODULE test_attention
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/quant_ref.hpp"

using namespace ember;
using namespace ember::kernels;

namespace {
// K and V of one sequence in pages of `page` positions, in separate buffers
// allocated in reverse order of position, as the KV cache holds them: values a
// row per position (two KV heads per row, the second used), keys transposed
// (a page's keys of a head are hd rows of `page` elements; two heads, the
// second used). The same values as float16 too (kp16, vp16).
struct PagedKv {
    std::vector<std::vector<float>> kbuf, vbuf;
    std::vector<std::vector<uint16_t>> kbuf16, vbuf16;
    std::vector<const float*> kp, vp;
    std::vector<const uint16_t*> kp16, vp16;
    size_t stride = 0;
    PagedKv(int n_pos, int page, int hd, float amp, std::mt19937& rng) {
        std::normal_distribution<float> nd(0.0f, 1.0f);
        const int n_kv = 2, g = 1;
        stride = size_t(n_kv * hd + 3);
        const int n_pages = (n_pos + page - 1) / page;
        kbuf.resize(size_t(n_pages));
        vbuf.resize(size_t(n_pages));
        kp.resize(size_t(n_pages));
        vp.resize(size_t(n_pages));
        kbuf16.resize(size_t(n_pages));
        vbuf16.resize(size_t(n_pages));
        kp16.resize(size_t(n_pages));
        vp16.resize(size_t(n_pages));
        for (int pg = n_pages - 1; pg >= 0; --pg) {
            kbuf[size_t(pg)].resize(size_t(n_kv) * size_t(page) * size_t(hd));
            vbuf[size_t(pg)].resize(size_t(page) * stride);
            for (auto& x : kbuf[size_t(pg)]) x = nd(rng) * amp / std::sqrt(float(hd));
            for (auto& x : vbuf[size_t(pg)]) x = nd(rng);
            kp[size_t(pg)] = kbuf[size_t(pg)].data() + size_t(g) * size_t(page) * size_t(hd);
            vp[size_t(pg)] = vbuf[size_t(pg)].data() + size_t(g * hd);
            for (const float x : kbuf[size_t(pg)]) kbuf16[size_t(pg)].push_back(fp32_to_fp16(x));
            for (const float x : vbuf[size_t(pg)]) vbuf16[size_t(pg)].push_back(fp32_to_fp16(x));
            kp16[size_t(pg)] = kbuf16[size_t(pg)].data() + size_t(g) * size_t(page) * size_t(hd);
            vp16[size_t(pg)] = vbuf16[size_t(pg)].data() + size_t(g * hd);
        }
    }
};
}  // namespace

BOOST_AUTO_TEST_CASE(attend_every_isa_matches_reference) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    int cases = 0;
    for (const KernelTable* k : available_tables()) {
        BOOST_TEST_REQUIRE(k->attend != nullptr, k->name);
        BOOST_TEST_REQUIRE(k->attend_f16 != nullptr, k->name);
        for (bool f16 : {false, true})
        for (int G : {1, 3, 8}) {
            for (int hd : {8, 17, 64, 128}) {
                for (int n_pos : {1, 5, 32, 33, 100}) {
                    for (int T : {1, 4, 7}) {
                        if (T > n_pos) continue;
                        const float amp = (n_pos + T) % 2 ? 30.0f : 1.0f;
                        constexpr int page = 32;
                        PagedKv kv(n_pos, page, hd, amp, rng);
                        // T queries, each G heads, rows ldq apart (as in a batch of Q rows)
                        const size_t ldq = size_t(G * hd + 5), ldo = size_t(G * hd + 2);
                        std::vector<float> q(size_t(T) * ldq);
                        for (auto& x : q) x = nd(rng);
                        std::vector<float> out(size_t(T) * ldo, NAN), ref(size_t(T) * ldo, NAN);
                        std::vector<float> sc1(size_t(T * G) * attend_score_stride(n_pos)), sc2(sc1.size());
                        const float scale = 1.0f / std::sqrt(float(hd));
                        if (f16) {
                            k->attend_f16(q.data(), ldq, T, G, hd, kv.kp16.data(), kv.vp16.data(), page, kv.stride,
                                          n_pos, scale, sc1.data(), out.data(), ldo);
                            attend_ref(q.data(), ldq, T, G, hd, kv.kp16.data(), kv.vp16.data(), page, kv.stride,
                                       n_pos, scale, sc2.data(), ref.data(), ldo);
                        } else {
                            k->attend(q.data(), ldq, T, G, hd, kv.kp.data(), kv.vp.data(), page, kv.stride, n_pos,
                                      scale, sc1.data(), out.data(), ldo);
                            attend_ref(q.data(), ldq, T, G, hd, kv.kp.data(), kv.vp.data(), page, kv.stride, n_pos,
                                       scale, sc2.data(), ref.data(), ldo);
                        }
                        for (int t = 0; t < T; ++t)
                            for (size_t i = 0; i < size_t(G * hd); ++i) {
                                const size_t at = size_t(t) * ldo + i;
                                BOOST_TEST_REQUIRE(std::fabs(out[at] - ref[at]) <= 2e-5f * (1.0f + std::fabs(ref[at])),
                                                   k->name << (f16 ? " f16" : " f32") << " G=" << G << " hd=" << hd << " n_pos=" << n_pos
                                                           << " T=" << T << " amp=" << amp << " t=" << t << " i=" << i
                                                           << ": " << out[at] << " vs " << ref[at]);
                            }
                        ++cases;
                    }
                }
            }
        }
    }
    BOOST_TEST(cases >= 300);
}

BOOST_AUTO_TEST_CASE(attend_result_does_not_depend_on_the_tile) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    int cases = 0;
    for (const KernelTable* k : available_tables()) {
        for (bool f16 : {false, true})
        for (int G : {1, 8}) {
            for (int hd : {17, 64}) {
                const int n_pos = 75, T = 13;  // queries at positions 62..74: tails of every length
                constexpr int page = 32;
                PagedKv kv(n_pos, page, hd, 4.0f, rng);
                const size_t ldq = size_t(G * hd), ldo = ldq;
                std::vector<float> q(size_t(T) * ldq);
                for (auto& x : q) x = nd(rng);
                std::vector<float> sc(size_t(T * G) * attend_score_stride(n_pos));
                std::vector<float> tiled(size_t(T) * ldo, NAN), alone(size_t(T) * ldo, NAN);
                auto run = [&](const float* qt, int Tn, int np, float* o) {
                    if (f16)
                        k->attend_f16(qt, ldq, Tn, G, hd, kv.kp16.data(), kv.vp16.data(), page, kv.stride, np, 0.125f,
                                      sc.data(), o, ldo);
                    else
                        k->attend(qt, ldq, Tn, G, hd, kv.kp.data(), kv.vp.data(), page, kv.stride, np, 0.125f,
                                  sc.data(), o, ldo);
                };
                run(q.data(), T, n_pos, tiled.data());
                for (int t = 0; t < T; ++t)  // stale scores from the tile's run left in the scratch must not matter either
                    run(q.data() + size_t(t) * ldq, 1, n_pos - (T - 1) + t, alone.data() + size_t(t) * ldo);
                BOOST_TEST_REQUIRE(std::memcmp(tiled.data(), alone.data(), tiled.size() * sizeof(float)) == 0,
                                   k->name << (f16 ? " f16" : " f32") << " G=" << G << " hd=" << hd);
                ++cases;
            }
        }
    }
    BOOST_TEST(cases >= 8);
}
