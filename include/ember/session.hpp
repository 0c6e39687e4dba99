// ember/session.hpp — one conversation on a shared model.
//
// A session owns what is per-conversation: the token history, its KV cache,
// the forward scratch, the sampler and its RNG, and the metrics of the last
// request. Both the cache and the scratch are sized when the session is made
// (bytes() reports them) — nothing is allocated inside the decode loop.
// A session is used from one thread at a time; different sessions of one
// model may run on different threads.
//
// History vs cache: history() holds every token of the conversation; the
// cache holds the first n_evaluated() of them. A generation ends with its last
// sampled token in the history but not yet evaluated; the next request
// evaluates it first, so each turn prefills only what is new.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/model.hpp"
#include "ember/sampling.hpp"

namespace ember {

struct SessionParams {
    int n_ctx = 0;     // context length in tokens; 0 = the model's training context, at most 4096
    int n_batch = 256; // prompt tokens per forward pass
    SamplerParams sampling;
};

enum class FinishReason { none = 0, eos = 1, max_tokens = 2, stop_string = 3, context_full = 4, cancelled = 5 };

struct Metrics {
    int n_prompt_tokens = 0;      // tokens evaluated before the first sample
    int n_generated_tokens = 0;
    double ttft_ms = 0;           // request start to first token sampled
    double tpot_ms = 0;           // mean time per generated token after the first
    double total_ms = 0;
    double prefill_tokens_per_s = 0;
    double decode_tokens_per_s = 0;
    FinishReason finish = FinishReason::none;
};

struct GenerateOptions {
    int max_tokens = 256;              // generated tokens at most (< 0: until EOS or the context is full)
    std::vector<std::string> stop;     // stop strings: generation ends before the first one; it is not emitted
    bool parse_special = false;        // control-token text in the prompt maps to control tokens
    // Receives each piece of UTF-8-complete text and the token that completed
    // it (pieces may be empty when a character spans tokens). Return true to cancel.
    std::function<bool(std::string_view piece, int32_t token)> on_piece;
};

class Session {
public:
    Session(std::shared_ptr<const Model> model, const SessionParams& params);

    const Model& model() const { return *model_; }
    int n_ctx() const { return n_ctx_; }
    const std::vector<int32_t>& history() const { return history_; }
    int n_evaluated() const { return n_eval_; }
    size_t bytes() const { return cache_.bytes() + scratch_.bytes() + logits_.size() * sizeof(float); }
    const Metrics& metrics() const { return metrics_; }

    // Appends tokens to the history and evaluates everything not yet in the
    // cache, leaving the logits of the last one. Throws invalid_argument for an
    // id out of range and context_full when they do not fit — in both cases the
    // session is unchanged.
    void eval(std::span<const int32_t> tokens);
    const float* logits() const { return logits_.data(); }  // [n_vocab], of the last evaluated token
    bool has_logits() const { return has_logits_; }

    // Samples from the current logits (does not append).
    int32_t sample();

    // Tokenizes `prompt` (BOS first if the history is empty and the vocabulary
    // wants one), evaluates it and generates. Returns the generated text (also
    // streamed through on_piece). Throws context_full if the prompt does not
    // fit (session unchanged); a context that fills during generation ends it
    // with FinishReason::context_full. A cancel ends it with
    // FinishReason::cancelled — what was generated stays in the history.
    std::string generate(std::string_view prompt, const GenerateOptions& opt);

    // Forgets the conversation (history and cache); settings and RNG stream stay.
    void reset();

private:
    void evaluate_pending(bool want_logits);

    std::shared_ptr<const Model> model_;
    SessionParams params_;
    int n_ctx_ = 0;
    KvCache cache_;
    LlamaScratch scratch_;
    Batch batch_;
    std::vector<float> logits_;
    bool has_logits_ = false;
    Sampler sampler_;
    std::vector<int32_t> history_;
    int n_eval_ = 0;
    Metrics metrics_;
};

}  // namespace ember
