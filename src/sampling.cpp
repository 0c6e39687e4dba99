#include "ember/sampling.hpp"

#include <algorithm>
#include <cmath>

#include "ember/common.hpp"

namespace ember {

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Rng::reseed(uint64_t seed) {
    uint64_t z = seed;
    for (auto& w : s_) {  // splitmix64
        z += 0x9e3779b97f4a7c15ull;
        uint64_t x = z;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        w = x ^ (x >> 31);
    }
}

uint64_t Rng::next() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
}

float Rng::uniform() { return float(next() >> 40) * (1.0f / 16777216.0f); }

Sampler::Sampler(const SamplerParams& p, int n_vocab) : p_(p), n_vocab_(n_vocab), rng_(p.seed) {
    if (n_vocab <= 0) fail(Status::invalid_argument, "sampler: empty vocabulary");
    if (!std::isfinite(p.temperature)) fail(Status::invalid_argument, "sampler: temperature must be finite");
    if (std::isnan(p.top_p) || p.top_p < 0) fail(Status::invalid_argument, "sampler: top_p must be a number >= 0");
    if (std::isnan(p.min_p) || p.min_p < 0 || p.min_p > 1)
        fail(Status::invalid_argument, "sampler: min_p must be a number in [0, 1]");
    if (!(p.repeat_penalty > 0) || !std::isfinite(p.repeat_penalty))
        fail(Status::invalid_argument, "sampler: repeat_penalty must be a positive number");
    if (p.repeat_last_n < 0) fail(Status::invalid_argument, "sampler: repeat_last_n must be >= 0");
    cand_.resize(size_t(n_vocab));
    work_.resize(size_t(n_vocab));
}

int32_t Sampler::sample(const float* logits, std::span<const int32_t> recent) {
    const int n = n_vocab_;
    float* l = work_.data();
    std::copy(logits, logits + n, l);

    // Repetition penalty (each distinct recent token once): shrink positive
    // logits, grow negative ones, so a repeat always gets less likely.
    if (p_.repeat_penalty != 1.0f && p_.repeat_last_n > 0) {
        const size_t from = recent.size() > size_t(p_.repeat_last_n) ? recent.size() - size_t(p_.repeat_last_n) : 0;
        for (size_t i = from; i < recent.size(); ++i) {
            const int32_t t = recent[i];
            if (t < 0 || t >= n) continue;
            bool seen = false;
            for (size_t j = from; j < i && !seen; ++j) seen = recent[j] == t;
            if (seen) continue;
            l[t] = l[t] > 0 ? l[t] / p_.repeat_penalty : l[t] * p_.repeat_penalty;
        }
    }

    if (p_.temperature <= 0) {
        int32_t best = 0;
        for (int i = 1; i < n; ++i)
            if (l[i] > l[best]) best = i;
        return best;
    }

    // Candidates sorted by logit (descending, ties by id), cut to top-k.
    for (int i = 0; i < n; ++i) cand_[size_t(i)] = {i, l[i]};
    auto by_logit = [](const Cand& a, const Cand& b) { return a.v > b.v || (a.v == b.v && a.id < b.id); };
    size_t m = size_t(n);
    if (p_.top_k > 0 && p_.top_k < n) {
        m = size_t(p_.top_k);
        std::partial_sort(cand_.begin(), cand_.begin() + std::ptrdiff_t(m), cand_.end(), by_logit);
    } else {
        std::sort(cand_.begin(), cand_.end(), by_logit);
    }

    // Temperature and softmax over the kept candidates.
    const float mx = cand_[0].v;
    double sum = 0;
    for (size_t i = 0; i < m; ++i) {
        cand_[i].v = std::exp((cand_[i].v - mx) / p_.temperature);
        sum += cand_[i].v;
    }
    for (size_t i = 0; i < m; ++i) cand_[i].v = float(cand_[i].v / sum);

    // Top-p: the smallest prefix whose mass reaches top_p (at least one token).
    if (p_.top_p < 1.0f) {
        double acc = 0;
        size_t keep = m;
        for (size_t i = 0; i < m; ++i) {
            acc += cand_[i].v;
            if (acc >= p_.top_p) { keep = i + 1; break; }
        }
        m = keep;
    }
    // Min-p: drop tokens less likely than min_p times the most likely one.
    if (p_.min_p > 0) {
        const float floor = p_.min_p * cand_[0].v;
        size_t keep = 1;
        while (keep < m && cand_[keep].v >= floor) ++keep;
        m = keep;
    }

    double total = 0;
    for (size_t i = 0; i < m; ++i) total += cand_[i].v;
    const double r = double(rng_.uniform()) * total;
    double acc = 0;
    for (size_t i = 0; i < m; ++i) {
        acc += cand_[i].v;
        if (r < acc) return cand_[i].id;
    }
    return cand_[m - 1].id;
}

}  // namespace ember
