// ember/session.hpp — one conversation on a shared model.
//
// A session owns what is per-conversation: the token history, its KV cache
// (pages in a pool, shared copy-on-write with forks), the sampler and its RNG,
// and the metrics of the last request. A session made alone gets a private
// pool sized for its context up front; sessions made by a Scheduler share the
// scheduler's pool. A session is used from one thread at a time; different
// sessions of one model may run on different threads (but sessions sharing a
// scheduler are driven by its step()).
//
// History vs cache: history() holds every token of the conversation; the
// cache holds the first n_evaluated() of them. A generation ends with its last
// sampled token in the history but not yet evaluated; the next request
// evaluates it first, so each turn prefills only what is new.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ember/model.hpp"
#include "ember/sampling.hpp"

namespace ember {

// What happens when a conversation reaches n_ctx.
enum class OverflowPolicy {
    error = 0,  // the request ends (FinishReason::context_full); the session keeps its history
    shift = 1,  // keep the first n_keep tokens (the persona), drop the oldest half of the rest, re-evaluate
    // The same tokens kept as shift, but the cached entries after the dropped
    // span are moved and their keys re-rotated instead of re-evaluated: no
    // prefill stall; approximate (they were computed attending to the dropped
    // tokens; a tokens-only savegame re-evaluates them exactly on load).
    shift_fast = 2,
};

struct SessionParams {
    int n_ctx = 0;     // context length in tokens; 0 = the model's training context, at most 4096
    int n_batch = 256; // prompt tokens per forward pass
    SamplerParams sampling;
    OverflowPolicy overflow = OverflowPolicy::error;
    int n_keep = -1;   // shift policy: tokens always kept at the start; -1 = the first request's prompt
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
    int n_context_shifts = 0;     // times the overflow policy dropped old tokens
    FinishReason finish = FinishReason::none;
};

struct GenerateOptions {
    int max_tokens = 256;              // generated tokens at most (< 0: until EOS or the context is full)
    std::vector<std::string> stop;     // stop strings: generation ends before the first one; it is not emitted
    bool parse_special = false;        // control-token text in the prompt maps to control tokens
    // Receives each piece of UTF-8-complete text and the token that completed
    // it (-1 for a final flush). Return true to cancel.
    std::function<bool(std::string_view piece, int32_t token)> on_piece;
    // Called before each layer of the prompt's forward passes with the prompt
    // tokens done and in all: progress for long prompts, and a way to cancel
    // one (return true). A cancelled prefill leaves the session as it was
    // before the call (status cancelled).
    std::function<bool(int done, int total)> on_prefill;
};

class Session;

// The token-by-token logic of one request, shared by the blocking generate()
// and the Scheduler: sampling, end-of-generation, UTF-8-safe detokenizing,
// stop strings, cancel, counts and timings.
class Generation {
public:
    Generation(Session& s, GenerateOptions opt);
    // After the session's logits are ready: samples, appends and emits. Returns
    // false when the request is over (finish() tells why).
    bool on_logits();
    // Ends the request early (cancel, context full...).
    void end(FinishReason why);
    FinishReason finish() const { return why_; }
    bool done() const { return why_ != FinishReason::none; }
    const std::string& text() const { return out_; }
    Metrics& metrics() { return m_; }
    void mark_start();
    void mark_prompt_done();

private:
    void emit(std::string_view piece, int32_t id);
    Session* s_;
    GenerateOptions opt_;
    Detokenizer detok_;
    std::string out_, pending_;
    FinishReason why_ = FinishReason::none;
    Metrics m_;
    int64_t t0_ns_ = 0, t1_ns_ = 0;
    bool cancel_ = false;
};

class Session {
public:
    // A session with a private KV pool sized for n_ctx.
    Session(std::shared_ptr<const Model> model, const SessionParams& params);
    // A session whose KV pages come from `pool` (shared with other sessions).
    Session(std::shared_ptr<const Model> model, const SessionParams& params, std::shared_ptr<KvPool> pool);

    const Model& model() const { return *model_; }
    const std::shared_ptr<const Model>& model_ptr() const { return model_; }
    const SessionParams& params() const { return params_; }
    int n_ctx() const { return n_ctx_; }
    const std::vector<int32_t>& history() const { return history_; }
    int n_evaluated() const { return n_eval_; }
    int n_keep() const { return n_keep_; }
    // Bytes this session holds alone: KV pages not shared with a fork, logits
    // (forward scratch is the model's: Model::spare_scratch_bytes()).
    size_t bytes() const;
    size_t kv_bytes() const { return cache_.bytes_exclusive(); }
    const Metrics& metrics() const { return metrics_; }

    // Appends tokens and evaluates everything not yet in the cache, leaving the
    // logits of the last one. Throws invalid_argument for an id out of range
    // and context_full when they do not fit — the session is then unchanged.
    void eval(std::span<const int32_t> tokens);
    // Appends tokens to the history without evaluating them (they are
    // evaluated by the next eval/generate). Same checks as eval.
    void append(std::span<const int32_t> tokens);
    const float* logits() const { return logits_.data(); }  // [n_vocab], of the last evaluated token
    bool has_logits() const { return has_logits_; }
    // Samples from the current logits with the session's sampler (does not append).
    int32_t sample();
    Sampler& sampler() { return sampler_; }

    // Tokenizes `prompt` (BOS first if the history is empty and the vocabulary
    // wants one), evaluates it and generates. Returns the generated text (also
    // streamed through on_piece). Throws context_full if the prompt does not
    // fit (session unchanged); a context that fills during generation ends it
    // by the overflow policy. A cancel ends it with FinishReason::cancelled —
    // what was generated stays in the history.
    std::string generate(std::string_view prompt, const GenerateOptions& opt);
    // The tokens generate() would append for `prompt` (checks that they fit).
    std::vector<int32_t> prompt_tokens(std::string_view prompt, bool parse_special) const;

    // A new session continuing this conversation: same history and sampler
    // state; its KV cache shares this one's pages copy-on-write, so the shared
    // prefix costs no new memory.
    std::unique_ptr<Session> fork() const;

    // Forgets the conversation (history and cache); settings and RNG stream stay.
    void reset();

    // Makes room when the history is at n_ctx, by the overflow policy. Returns
    // false (nothing changed) under OverflowPolicy::error.
    bool make_room();

    // ---- savegames: see src/session_state.cpp for the format
    // Serialises history, sampler settings and RNG state, and (with_kv) the
    // evaluated KV entries.
    std::vector<uint8_t> save(bool with_kv) const;
    // Restores a save made with the same model (checked by content hash).
    // Throws bad_format (truncated/tampered), invalid_argument (other model or
    // context too small); on failure the session is unchanged.
    void load(std::span<const uint8_t> bytes);

    // ---- used by the Scheduler
    KvCache& cache() { return cache_; }
    void set_evaluated(int n, bool has_logits) { n_eval_ = n; has_logits_ = has_logits; }
    float* logits_mut() { return logits_.data(); }
    Metrics& metrics_mut() { return metrics_; }

private:
    void init();
    void evaluate_pending(bool want_logits, const std::function<bool(int, int)>* on_prefill = nullptr);
    void check_tokens(std::span<const int32_t> tokens) const;

    std::shared_ptr<const Model> model_;
    SessionParams params_;
    int n_ctx_ = 0;
    int n_keep_ = 0;
    std::shared_ptr<KvPool> pool_;
    KvCache cache_;
    std::unique_ptr<LlamaScratch> scratch_;  // lent by the model for each blocking call
    Batch batch_;
    std::vector<float> logits_;
    bool has_logits_ = false;
    Sampler sampler_;
    std::vector<int32_t> history_;
    int n_eval_ = 0;
    int n_eval_before_ = 0;  // n_eval_ when the current prefill began (its progress counts from there)
    Metrics metrics_;
};

}  // namespace ember
