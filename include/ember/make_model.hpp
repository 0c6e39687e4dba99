// ember/make_model.hpp — random-weight Llama-architecture models of any shape.
//
// For tests (a real GGUF written and read through the real loader, no
// download) and for benchmarks at realistic shapes. Weights are drawn from a
// seeded generator with a scale that keeps activations in a sensible range;
// the vocabulary is a small synthetic SentencePiece one (control tokens, 256
// byte tokens, ASCII letters and common English pieces), padded with unused
// pieces to n_vocab.
#pragma once

#include <cstdint>
#include <string>

#include "ember/gguf_writer.hpp"
#include "ember/tensor.hpp"

namespace ember {

struct RandomModelSpec {
    std::string arch = "llama";  // "llama" or "qwen2"
    int n_vocab = 512;
    int n_embd = 64;
    int n_layer = 2;
    int n_head = 4;
    int n_head_kv = 2;
    int n_ff = 160;
    int n_ctx = 256;
    float rope_base = 10000.0f;
    float rope_scale = 1.0f;     // linear scaling factor (1 = none)
    bool tied_output = false;  // untied by default: a random tied model just repeats its last token
    DType type = DType::F32;     // 2-D weights; norms and biases stay F32
    uint64_t seed = 1;
};

// Builds the writer (callers may add or override metadata before writing).
gguf::GgufWriter make_random_model(const RandomModelSpec& spec);

// Named shapes for benchmarks: "tiny", "110M", "1.1B". Throws invalid_argument.
RandomModelSpec shape_by_name(const std::string& name);

}  // namespace ember
