// The attention kernel (KernelTable::attend) of every ISA against the scalar
// reference (kernels::attend_ref): grouped heads, head sizes that are and are
// not a multiple of the SIMD width, contexts that end inside a page, pages
// scattered in memory, and scores that would overflow exp() without the
// max subtraction.
#define BOOST_TEST_MODULE test_attention
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/quant_ref.hpp"

using namespace ember;
using namespace ember::kernels;

BOOST_AUTO_TEST_CASE(attend_every_isa_matches_reference) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    int cases = 0;
    for (const KernelTable* k : available_tables()) {
        BOOST_TEST_REQUIRE(k->attend != nullptr, k->name);
        for (int G : {1, 3, 8}) {
            for (int hd : {8, 17, 64, 128}) {
                for (int n_pos : {1, 5, 32, 33, 100}) {
                    for (float amp : {1.0f, 30.0f}) {
                        constexpr int page = 32;
                        const int n_kv = 2, g = 1;  // two KV heads per row; attend to the second
                        const size_t stride = size_t(n_kv * hd + 3);
                        const int n_pages = (n_pos + page - 1) / page;
                        // pages in separate buffers, in reverse order of position
                        std::vector<std::vector<float>> kbuf(static_cast<size_t>(n_pages)), vbuf(static_cast<size_t>(n_pages));
                        std::vector<const float*> kp(static_cast<size_t>(n_pages)), vp(static_cast<size_t>(n_pages));
                        for (int pg = n_pages - 1; pg >= 0; --pg) {
                            kbuf[size_t(pg)].resize(size_t(page) * stride);
                            vbuf[size_t(pg)].resize(size_t(page) * stride);
                            for (auto& x : kbuf[size_t(pg)]) x = nd(rng) * amp / std::sqrt(float(hd));
                            for (auto& x : vbuf[size_t(pg)]) x = nd(rng);
                            kp[size_t(pg)] = kbuf[size_t(pg)].data() + size_t(g * hd);
                            vp[size_t(pg)] = vbuf[size_t(pg)].data() + size_t(g * hd);
                        }
                        std::vector<float> q(size_t(G * hd));
                        for (auto& x : q) x = nd(rng);
                        std::vector<float> out(size_t(G * hd), NAN), ref(size_t(G * hd), NAN);
                        std::vector<float> sc1(size_t(G * n_pos)), sc2(size_t(G * n_pos));
                        const float scale = 1.0f / std::sqrt(float(hd));
                        k->attend(q.data(), G, hd, kp.data(), vp.data(), page, stride, n_pos, scale, sc1.data(), out.data());
                        attend_ref(q.data(), G, hd, kp.data(), vp.data(), page, stride, n_pos, scale, sc2.data(), ref.data());
                        for (size_t i = 0; i < out.size(); ++i)
                            BOOST_TEST_REQUIRE(std::fabs(out[i] - ref[i]) <= 2e-5f * (1.0f + std::fabs(ref[i])),
                                               k->name << " G=" << G << " hd=" << hd << " n_pos=" << n_pos << " amp="
                                                       << amp << " i=" << i << ": " << out[i] << " vs " << ref[i]);
                        ++cases;
                    }
                }
            }
        }
    }
    BOOST_TEST(cases >= 120);
}
