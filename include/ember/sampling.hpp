// ember/sampling.hpp — turning logits into the next token.
//
// The chain, in order: repetition penalty over the last `repeat_last_n`
// tokens, top-k, temperature, softmax, top-p (nucleus), min-p, then one draw
// from a seeded generator. temperature <= 0 is greedy (argmax after the
// penalty; ties go to the lowest id). The generator is our own xoshiro256**
// with our own float mapping, so the same seed, logits and settings give the
// same token on every platform and standard library. A Sampler preallocates
// its candidate buffer for the vocabulary: sample() does not allocate.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace ember {

struct SamplerParams {
    float temperature = 0.8f;
    int top_k = 40;             // <= 0: off
    float top_p = 0.95f;        // >= 1: off
    float min_p = 0.05f;        // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off
    int repeat_last_n = 64;
    uint64_t seed = 0x5eed;
};

// xoshiro256** seeded through splitmix64.
class Rng {
public:
    explicit Rng(uint64_t seed = 0) { reseed(seed); }
    void reseed(uint64_t seed);
    uint64_t next();
    float uniform();  // [0, 1) with 24 random bits
    std::array<uint64_t, 4> state() const { return s_; }
    void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

private:
    std::array<uint64_t, 4> s_{};
};

class Sampler {
public:
    // Throws invalid_argument for a setting out of range (NaN, negative top_p...).
    Sampler(const SamplerParams& p, int n_vocab);

    // Picks a token from logits[n_vocab]; `recent` are the tokens the
    // repetition penalty looks at (the caller passes the session history).
    int32_t sample(const float* logits, std::span<const int32_t> recent);

    const SamplerParams& params() const { return p_; }
    Rng& rng() { return rng_; }

private:
    struct Cand { int32_t id; float v; };
    SamplerParams p_;
    int n_vocab_;
    Rng rng_;
    std::vector<Cand> cand_;
    std::vector<float> work_;
};

}  // namespace ember
