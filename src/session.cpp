#include "ember/session.hpp"

#include <algorithm>
#include <chrono>

namespace ember {

namespace {
using Clock = std::chrono::steady_clock;
int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
    size_t hold = 0;
    for (const std::string& s : stops)
        for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k)
            if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) { hold = k; break; }
    return hold;
}
}  // namespace

// ---- Generation ---------------------------------------------------------------

Generation::Generation(Session& s, GenerateOptions opt)
    : s_(&s), opt_(std::move(opt)), detok_(s.model().tokenizer(), false) {
    for (const std::string& stop : opt_.stop)
        if (stop.empty()) fail(Status::invalid_argument, "stop strings must not be empty");
}

void Generation::mark_start() { t0_ns_ = now_ns(); }
void Generation::mark_prompt_done() {}

void Generation::emit(std::string_view piece, int32_t id) {
    out_.append(piece);
    if (opt_.on_piece && opt_.on_piece(piece, id)) cancel_ = true;
}

bool Generation::on_logits() {
    if (done()) return false;
    if (opt_.max_tokens >= 0 && m_.n_generated_tokens >= opt_.max_tokens) {
        end(FinishReason::max_tokens);
        return false;
    }
    const Tokenizer& tok = s_->model().tokenizer();
    const int32_t id = s_->sample();
    if (m_.n_generated_tokens == 0) {
        t1_ns_ = now_ns();
        m_.ttft_ms = double(t1_ns_ - t0_ns_) / 1e6;
    }
    if (tok.is_eog(id)) {
        end(FinishReason::eos);
        return false;
    }
    s_->append(std::span<const int32_t>(&id, 1));
    ++m_.n_generated_tokens;
    pending_ += detok_.push(id);
    size_t stop_at = std::string::npos;
    for (const std::string& st : opt_.stop) stop_at = std::min(stop_at, pending_.find(st));
    if (stop_at != std::string::npos) {
        if (stop_at > 0) emit(std::string_view(pending_).substr(0, stop_at), id);
        pending_.clear();
        end(FinishReason::stop_string);
        return false;
    }
    const size_t hold = held_back(pending_, opt_.stop);
    emit(std::string_view(pending_).substr(0, pending_.size() - hold), id);
    pending_.erase(0, pending_.size() - hold);
    if (cancel_) {
        end(FinishReason::cancelled);
        return false;
    }
    if (opt_.max_tokens >= 0 && m_.n_generated_tokens >= opt_.max_tokens) {
        end(FinishReason::max_tokens);
        return false;
    }
    if (int(s_->history().size()) >= s_->n_ctx()) {
        if (!s_->make_room()) {
            end(FinishReason::context_full);
            return false;
        }
        ++m_.n_context_shifts;
    }
    return true;
}

void Generation::end(FinishReason why) {
    if (done()) return;
    why_ = why;
    if (why != FinishReason::stop_string && why != FinishReason::cancelled) {
        pending_ += detok_.flush();
        if (!pending_.empty()) emit(pending_, -1);
        pending_.clear();
    }
    const int64_t t_end = now_ns();
    m_.finish = why;
    m_.total_ms = double(t_end - t0_ns_) / 1e6;
    const int64_t t_first = t1_ns_ ? t1_ns_ : t_end;
    const double prefill_ms = double(t_first - t0_ns_) / 1e6;
    if (m_.n_prompt_tokens > 0 && prefill_ms > 0) m_.prefill_tokens_per_s = m_.n_prompt_tokens / (prefill_ms / 1000.0);
    if (m_.n_generated_tokens > 1) {
        m_.tpot_ms = double(t_end - t1_ns_) / 1e6 / (m_.n_generated_tokens - 1);
        m_.decode_tokens_per_s = m_.tpot_ms > 0 ? 1000.0 / m_.tpot_ms : 0;
    }
}

// ---- Session ------------------------------------------------------------------

Session::Session(std::shared_ptr<const Model> model, const SessionParams& params)
    : Session(model, params, nullptr) {}

Session::Session(std::shared_ptr<const Model> model, const SessionParams& params, std::shared_ptr<KvPool> pool)
    : model_(std::move(model)), params_(params), sampler_(params.sampling, model_->hparams().n_vocab) {
    const LlamaHParams& hp = model_->hparams();
    if (params.n_ctx < 0 || params.n_ctx > (1 << 20)) fail(Status::invalid_argument, "n_ctx must be in [0, 1048576]");
    if (params.n_batch <= 0 || params.n_batch > 65536) fail(Status::invalid_argument, "n_batch must be in [1, 65536]");
    n_ctx_ = params.n_ctx > 0 ? params.n_ctx : std::min(hp.n_ctx_train, 4096);
    params_.n_batch = std::min(params.n_batch, n_ctx_);
    n_keep_ = params.n_keep;
    if (params.n_keep < -1 || params.n_keep >= n_ctx_) fail(Status::invalid_argument, "n_keep must be in [-1, n_ctx)");
    try {
        if (pool) {
            pool_ = std::move(pool);
        } else {
            const int pages = (n_ctx_ + LlamaModel::kPageSize - 1) / LlamaModel::kPageSize;
            pool_ = model_->arch().make_pool(pages, 0, model_->kv_type());  // one slab: the whole context, up front
            pool_->reserve_free(pages);
        }
        cache_ = KvCache(pool_, n_ctx_);
        logits_.resize(size_t(hp.n_vocab));
    } catch (const std::bad_alloc&) {
        fail(Status::out_of_memory, "not enough memory for a session of " + std::to_string(n_ctx_) + " tokens");
    }
    history_.reserve(size_t(n_ctx_));
}

size_t Session::bytes() const {
    return cache_.bytes_exclusive() + logits_.size() * sizeof(float);
}

void Session::reset() {
    history_.clear();
    cache_.clear();
    n_eval_ = 0;
    has_logits_ = false;
    if (params_.n_keep < 0) n_keep_ = -1;
}

void Session::evaluate_pending(bool want_logits, const std::function<bool(int, int)>* on_prefill) {
    try {
        scratch_ = model_->take_scratch(params_.n_batch, n_ctx_);
    } catch (const std::bad_alloc&) {
        fail(Status::out_of_memory, "not enough memory for the forward pass's scratch");
    }
    struct GiveBack {  // the scratch goes back to the model however this call ends
        const Model& m;
        std::unique_ptr<LlamaScratch>& s;
        ~GiveBack() { m.give_scratch(std::move(s)); }
    } give_back{*model_, scratch_};
    KvCache* caches[] = {&cache_};
    const int n = int(history_.size());
    cache_.prepare(n_eval_, n);  // may grow a shared pool, before any work
    while (n_eval_ < n) {
        const int chunk = std::min(params_.n_batch, n - n_eval_);
        batch_.clear();
        for (int i = 0; i < chunk; ++i) {
            const int p = n_eval_ + i;
            batch_.add(history_[size_t(p)], p, 0, want_logits && p == n - 1);
        }
        if (on_prefill && *on_prefill) {
            // layer by layer, asking between layers whether to go on
            const LlamaModel& a = model_->arch();
            const int total = n - n_eval_before_, done = n_eval_ - n_eval_before_;
            a.begin(batch_, caches, *scratch_, model_->pool());
            for (int l = 0; l < a.hparams().n_layer; ++l) {
                if ((*on_prefill)(done, total))
                    fail(Status::cancelled, "cancelled during the prompt's prefill, after " + std::to_string(done) +
                                                " of " + std::to_string(total) + " tokens");
                a.layer(l, batch_, caches, *scratch_, model_->pool(), model_->kernels());
            }
            a.finish(batch_, *scratch_, logits_.data(), model_->pool(), model_->kernels());
        } else {
            model_->arch().forward(batch_, caches, *scratch_, logits_.data(), model_->pool(), model_->kernels());
        }
        n_eval_ += chunk;
    }
    has_logits_ = want_logits && n > 0;
}

void Session::check_tokens(std::span<const int32_t> tokens) const {
    const int n_vocab = model_->hparams().n_vocab;
    for (int32_t t : tokens)
        if (t < 0 || t >= n_vocab)
            fail(Status::invalid_argument,
                 "token id " + std::to_string(t) + " out of range [0, " + std::to_string(n_vocab) + ")");
    if (history_.size() + tokens.size() > size_t(n_ctx_))
        fail(Status::context_full, "context full: " + std::to_string(history_.size()) + " + " +
                                       std::to_string(tokens.size()) + " tokens exceed n_ctx " + std::to_string(n_ctx_));
}

void Session::append(std::span<const int32_t> tokens) {
    check_tokens(tokens);
    history_.insert(history_.end(), tokens.begin(), tokens.end());
    if (!tokens.empty()) has_logits_ = false;
}

void Session::eval(std::span<const int32_t> tokens) {
    check_tokens(tokens);
    history_.insert(history_.end(), tokens.begin(), tokens.end());
    try {
        evaluate_pending(true);
    } catch (...) {
        history_.resize(size_t(std::max<int>(n_eval_, int(history_.size() - tokens.size()))));
        throw;
    }
}

int32_t Session::sample() {
    if (!has_logits_) fail(Status::invalid_argument, "sample: no logits yet (evaluate tokens first)");
    return sampler_.sample(logits_.data(), history_);
}

std::vector<int32_t> Session::prompt_tokens(std::string_view prompt, bool parse_special) const {
    const Tokenizer& tok = model_->tokenizer();
    const bool bos = history_.empty() && tok.add_bos_default() && tok.bos() >= 0;
    std::vector<int32_t> ptoks = tok.encode(prompt, bos, parse_special);
    if (history_.empty() && ptoks.empty()) fail(Status::invalid_argument, "empty prompt on an empty session");
    // The prompt and at least one generated token must fit; otherwise refuse up front.
    if (history_.size() + ptoks.size() + 1 > size_t(n_ctx_))
        fail(Status::context_full, "context full: the prompt needs " + std::to_string(ptoks.size()) + " tokens, " +
                                       std::to_string(n_ctx_ - int(history_.size())) + " of " +
                                       std::to_string(n_ctx_) + " remain");
    return ptoks;
}

bool Session::make_room() {
    if (params_.overflow == OverflowPolicy::error) return false;
    const int keep = std::clamp(n_keep_, 0, n_ctx_ - 2);
    const int rest = int(history_.size()) - keep;
    const int drop = std::max(1, rest / 2);
    // Positions after the dropped span change, so their cached keys (rotated for
    // the old positions) are re-evaluated: exact, at the cost of one prefill.
    if (params_.overflow == OverflowPolicy::shift_fast && n_eval_ > keep + drop) {
        // the evaluated entries past the dropped span move instead (the last
        // logits stay those of the last evaluated token)
        model_->arch().shift_cache(cache_, keep, drop, n_eval_);
        history_.erase(history_.begin() + keep, history_.begin() + keep + drop);
        n_eval_ -= drop;
        return true;
    }
    history_.erase(history_.begin() + keep, history_.begin() + keep + drop);
    n_eval_ = std::min(n_eval_, keep);
    cache_.truncate(n_eval_);
    has_logits_ = false;
    return true;
}

std::string Session::generate(std::string_view prompt, const GenerateOptions& opt) {
    Generation g(*this, opt);
    g.mark_start();
    const std::vector<int32_t> ptoks = prompt_tokens(prompt, opt.parse_special);
    const int old_keep = n_keep_;
    if (n_keep_ < 0) n_keep_ = int(history_.size() + ptoks.size());  // the first prompt is the persona
    g.metrics().n_prompt_tokens = int(history_.size() + ptoks.size()) - n_eval_;
    if (opt.on_prefill) {
        // evaluates any pending token of the previous turn too; a cancel puts
        // the session back as it was
        check_tokens(ptoks);
        const size_t old_size = history_.size();
        history_.insert(history_.end(), ptoks.begin(), ptoks.end());
        n_eval_before_ = n_eval_;
        try {
            evaluate_pending(true, &opt.on_prefill);
        } catch (...) {
            history_.resize(old_size);
            n_eval_ = std::min(n_eval_, int(old_size));
            cache_.truncate(n_eval_);
            has_logits_ = false;
            n_keep_ = old_keep;
            throw;
        }
    } else {
        eval(ptoks);  // evaluates any pending token of the previous turn too
    }
    while (g.on_logits()) evaluate_pending(true);
    metrics_ = g.metrics();
    return g.text();
}

std::unique_ptr<Session> Session::fork() const {
    auto s = std::make_unique<Session>(model_, params_, pool_);
    s->history_ = history_;
    s->n_keep_ = n_keep_;
    s->cache_ = cache_.fork();
    s->n_eval_ = n_eval_;
    s->logits_ = logits_;
    s->has_logits_ = has_logits_;
    s->sampler_.rng().set_state(const_cast<Session*>(this)->sampler_.rng().state());
    return s;
}

}  // namespace ember
