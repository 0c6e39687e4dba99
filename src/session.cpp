#include "ember/session.hpp"

#include <algorithm>
#include <chrono>

namespace ember {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
    size_t hold = 0;
    for (const std::string& s : stops)
        for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
            if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) { hold = k; break; }
    return hold;
}
}  // namespace

Session::Session(std::shared_ptr<const Model> model, const SessionParams& params)
    : model_(std::move(model)), params_(params), sampler_(params.sampling, model_->hparams().n_vocab) {
    const LlamaHParams& hp = model_->hparams();
    n_ctx_ = params.n_ctx > 0 ? params.n_ctx : std::min(hp.n_ctx_train, 4096);
    if (params.n_ctx < 0 || n_ctx_ > (1 << 20)) fail(Status::invalid_argument, "n_ctx must be in [0, 1048576]");
    if (params.n_batch <= 0 || params.n_batch > 65536) fail(Status::invalid_argument, "n_batch must be in [1, 65536]");
    const int n_batch = std::min(params.n_batch, n_ctx_);
    try {
        cache_ = model_->arch().make_cache(n_ctx_);
        scratch_ = model_->arch().make_scratch(n_batch, n_ctx_, model_->pool().size());
        logits_.resize(size_t(hp.n_vocab));
    } catch (const std::bad_alloc&) {
        fail(Status::out_of_memory, "not enough memory for a session of " + std::to_string(n_ctx_) + " tokens");
    }
    params_.n_batch = n_batch;
    history_.reserve(size_t(n_ctx_));
}

void Session::reset() {
    history_.clear();
    n_eval_ = 0;
    has_logits_ = false;
}

void Session::evaluate_pending(bool want_logits) {
    KvCache* caches[] = {&cache_};
    const int n = int(history_.size());
    while (n_eval_ < n) {
        const int chunk = std::min(params_.n_batch, n - n_eval_);
        batch_.clear();
        for (int i = 0; i < chunk; ++i) {
            const int p = n_eval_ + i;
            batch_.add(history_[size_t(p)], p, 0, want_logits && p == n - 1);
        }
        model_->arch().forward(batch_, caches, scratch_, logits_.data(), model_->pool(), model_->kernels());
        n_eval_ += chunk;
    }
    has_logits_ = want_logits && n > 0;
}

void Session::eval(std::span<const int32_t> tokens) {
    const int n_vocab = model_->hparams().n_vocab;
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab)
            fail(Status::invalid_argument,
                 "token id " + std::to_string(t) + " out of range [0, " + std::to_string(n_vocab) + ")");
    if (history_.size() + tokens.size() > size_t(n_ctx_))
        fail(Status::context_full, "context full: " + std::to_string(history_.size()) + " + " +
                                       std::to_string(tokens.size()) + " tokens exceed n_ctx " + std::to_string(n_ctx_));
    history_.insert(history_.end(), tokens.begin(), tokens.end());
    try {
        evaluate_pending(true);
    } catch (...) {
        history_.resize(size_t(n_eval_));
        throw;
    }
}

int32_t Session::sample() {
    if (!has_logits_) fail(Status::invalid_argument, "sample: no logits yet (evaluate tokens first)");
    return sampler_.sample(logits_.data(), history_);
}

std::string Session::generate(std::string_view prompt, const GenerateOptions& opt) {
    const auto t0 = Clock::now();
    metrics_ = Metrics{};
    const Tokenizer& tok = model_->tokenizer();
    for (const std::string& s : opt.stop)
        if (s.empty()) fail(Status::invalid_argument, "stop strings must not be empty");
    const bool bos = history_.empty() && tok.add_bos_default() && tok.bos() >= 0;
    std::vector<int32_t> ptoks = tok.encode(prompt, bos, opt.parse_special);
    if (history_.empty() && ptoks.empty()) fail(Status::invalid_argument, "empty prompt on an empty session");
    // The prompt and at least one generated token must fit; otherwise refuse up front.
    if (history_.size() + ptoks.size() + 1 > size_t(n_ctx_))
        fail(Status::context_full, "context full: the prompt needs " + std::to_string(ptoks.size()) + " tokens, " +
                                       std::to_string(n_ctx_ - int(history_.size())) + " of " +
                                       std::to_string(n_ctx_) + " remain");
    const size_t hist_before = history_.size();
    metrics_.n_prompt_tokens = int(hist_before + ptoks.size()) - n_eval_;
    eval(ptoks);  // evaluates any pending token of the previous turn too
    (void)hist_before;

    const auto t_first = Clock::now();
    Detokenizer detok(tok, false);
    std::string out, pending;  // pending: text held back while it may start a stop string
    auto emit = [&](std::string_view piece, int32_t id) {
        out.append(piece);
        return opt.on_piece ? opt.on_piece(piece, id) : false;
    };
    FinishReason why = FinishReason::none;
    Clock::time_point t_tok1 = t_first;
    for (;;) {
        if (opt.max_tokens >= 0 && metrics_.n_generated_tokens >= opt.max_tokens) { why = FinishReason::max_tokens; break; }
        const int32_t id = sample();
        if (metrics_.n_generated_tokens == 0) {
            t_tok1 = Clock::now();
            metrics_.ttft_ms = ms_since(t0);
        }
        if (tok.is_eog(id)) { why = FinishReason::eos; break; }
        history_.push_back(id);
        ++metrics_.n_generated_tokens;
        pending += detok.push(id);
        bool cancel = false;
        size_t stop_at = std::string::npos;
        for (const std::string& s : opt.stop) stop_at = std::min(stop_at, pending.find(s));
        if (stop_at != std::string::npos) {
            if (stop_at > 0) cancel = emit(std::string_view(pending).substr(0, stop_at), id);
            why = FinishReason::stop_string;
            break;
        }
        const size_t hold = held_back(pending, opt.stop);
        cancel = emit(std::string_view(pending).substr(0, pending.size() - hold), id);
        pending.erase(0, pending.size() - hold);
        if (cancel) { why = FinishReason::cancelled; break; }
        if (int(history_.size()) >= n_ctx_) { why = FinishReason::context_full; break; }
        if (opt.max_tokens >= 0 && metrics_.n_generated_tokens >= opt.max_tokens) { why = FinishReason::max_tokens; break; }
        evaluate_pending(true);
    }
    if (why != FinishReason::stop_string && why != FinishReason::cancelled) {
        pending += detok.flush();
        if (!pending.empty()) emit(pending, -1);
    }
    metrics_.finish = why;
    metrics_.total_ms = ms_since(t0);
    const double prefill_ms = std::chrono::duration<double, std::milli>(t_tok1 - t0).count();
    if (metrics_.n_prompt_tokens > 0 && prefill_ms > 0)
        metrics_.prefill_tokens_per_s = metrics_.n_prompt_tokens / (prefill_ms / 1000.0);
    if (metrics_.n_generated_tokens > 1) {
        const double decode_ms = ms_since(t_tok1);
        metrics_.tpot_ms = decode_ms / (metrics_.n_generated_tokens - 1);
        metrics_.decode_tokens_per_s = 1000.0 / metrics_.tpot_ms;
    }
    return out;
}

}  // namespace ember
