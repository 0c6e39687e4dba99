#include "ember/scheduler.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace ember {

namespace {
using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }
constexpr int kFinishChunks = 4;  // the output projection runs in this many pieces when time is short
}  // namespace

struct Scheduler::Request {
    RequestId id = 0;
    Session* session = nullptr;
    RequestOptions opt;
    std::unique_ptr<Generation> gen;
    RequestState state = RequestState::queued;
    std::string text;      // produced, not yet taken
    std::string error;
    Metrics metrics;
    bool cancel = false;
    uint64_t order = 0;    // submission order, for ties in priority
};

Scheduler::Scheduler(std::shared_ptr<const Model> model, const SchedulerParams& params)
    : model_(std::move(model)), params_(params) {
    if (params.max_batch_tokens <= 0 || params.max_batch_tokens > 65536 || params.prefill_chunk <= 0 ||
        params.kv_pages_per_slab <= 0 || params.kv_max_pages < 0 || params.kv_initial_pages < 0)
        fail(Status::invalid_argument, "scheduler: batch sizes and KV page counts must be positive");
    pool_ = model_->arch().make_pool(params.kv_pages_per_slab, params.kv_max_pages, model_->kv_type());
    pool_->reserve_free(params.kv_initial_pages);
    const int max_ctx = std::min(model_->hparams().n_ctx_train, 4096);
    scratch_ = model_->arch().make_scratch(params.max_batch_tokens, std::max(max_ctx, 1), model_->pool().size());
    logits_.resize(size_t(params.max_batch_tokens) * size_t(model_->hparams().n_vocab));
}

Scheduler::~Scheduler() = default;

std::unique_ptr<Session> Scheduler::create_session(const SessionParams& params) {
    auto s = std::make_unique<Session>(model_, params, pool_);
    if (s->n_ctx() > scratch_.max_ctx) {
        // attention scores are sized by the longest context: grow once, here, not in a step
        if (in_pass_) fail(Status::invalid_argument, "create_session: a larger context than the scheduler's while a pass runs");
        scratch_ = model_->arch().make_scratch(params_.max_batch_tokens, s->n_ctx(), model_->pool().size());
    }
    return s;
}

Scheduler::Request& Scheduler::get(RequestId id) {
    auto it = requests_.find(id);
    if (it == requests_.end()) fail(Status::invalid_argument, "unknown request id " + std::to_string(id));
    return *it->second;
}
const Scheduler::Request& Scheduler::get(RequestId id) const { return const_cast<Scheduler*>(this)->get(id); }

Scheduler::RequestId Scheduler::submit(Session& s, std::string_view prompt, const RequestOptions& opt) {
    if (&s.model() != model_.get()) fail(Status::invalid_argument, "submit: the session belongs to another model");
    if (s.cache().pool() != pool_) fail(Status::invalid_argument, "submit: the session was not made by this scheduler");
    if (s.n_ctx() > scratch_.max_ctx) fail(Status::invalid_argument, "submit: session context larger than the scheduler's");
    for (const auto& [id, r] : requests_)
        if (r->session == &s && (r->state == RequestState::queued || r->state == RequestState::running))
            fail(Status::invalid_argument, "submit: the session already has a request in progress");
    auto r = std::make_unique<Request>();
    // Text goes to the poll queue; a host callback (if any) also sees each piece.
    Request* raw = r.get();
    GenerateOptions g = opt.gen;
    g.on_piece = [raw, user = opt.gen.on_piece](std::string_view piece, int32_t tok) {
        raw->text.append(piece);
        return user ? user(piece, tok) : false;
    };
    r->gen = std::make_unique<Generation>(s, std::move(g));  // checks the stop strings
    const std::vector<int32_t> toks = s.prompt_tokens(prompt, opt.gen.parse_special);  // checks that it fits
    r->gen->mark_start();
    s.append(toks);
    r->gen->metrics().n_prompt_tokens = int(s.history().size()) - s.n_evaluated();
    r->id = next_id_++;
    r->order = r->id;
    r->session = &s;
    r->opt = opt;
    const RequestId id = r->id;
    requests_.emplace(id, std::move(r));
    return id;
}

void Scheduler::cancel(RequestId id) { get(id).cancel = true; }
RequestState Scheduler::state(RequestId id) const { return get(id).state; }
FinishReason Scheduler::finish_reason(RequestId id) const { return get(id).metrics.finish; }
const Metrics& Scheduler::metrics(RequestId id) const { return get(id).metrics; }
const std::string& Scheduler::error(RequestId id) const { return get(id).error; }

std::string Scheduler::take_text(RequestId id) {
    Request& r = get(id);
    std::string t;
    t.swap(r.text);
    return t;
}

const std::string& Scheduler::pending_text(RequestId id) const { return get(id).text; }

void Scheduler::detach(Session& s) {
    if (in_pass_)
        for (KvCache* c : caches_)
            if (c == &s.cache()) {
                in_pass_ = false;  // nothing was committed: evaluated counts move only when a pass completes
                break;
            }
    for (auto it = requests_.begin(); it != requests_.end();)
        it = it->second->session == &s ? requests_.erase(it) : std::next(it);
}

void Scheduler::release(RequestId id) {
    Request& r = get(id);
    if (r.state == RequestState::queued || r.state == RequestState::running)
        fail(Status::invalid_argument, "release: request " + std::to_string(id) + " is still in progress");
    requests_.erase(id);
}

bool Scheduler::idle() const {
    for (const auto& [id, r] : requests_)
        if (r->state == RequestState::queued || r->state == RequestState::running) return false;
    return !in_pass_;
}

void Scheduler::fail_request(Request& r, const std::string& msg) {
    r.state = RequestState::failed;
    r.error = msg;
    r.gen->end(FinishReason::none);
    r.metrics = r.gen->metrics();
}

// Packs one entry per decoding session and prompt chunks, highest priority first.
bool Scheduler::build_batch() {
    std::vector<Request*> ready;
    for (auto& [id, r] : requests_) {
        if (r->state != RequestState::queued && r->state != RequestState::running) continue;
        ready.push_back(r.get());
    }
    std::stable_sort(ready.begin(), ready.end(), [](const Request* a, const Request* b) {
        return a->opt.priority != b->opt.priority ? a->opt.priority > b->opt.priority : a->order < b->order;
    });
    batch_.clear();
    caches_.clear();
    batch_requests_.clear();
    batch_count_.clear();
    int room = params_.max_batch_tokens;
    // Decodes first (one entry each, cheap and latency-critical), then prompt chunks.
    for (int pass = 0; pass < 2 && room > 0; ++pass) {
        for (Request* r : ready) {
            if (room == 0) break;
            Session& s = *r->session;
            const int pending = int(s.history().size()) - s.n_evaluated();
            const bool decode = pending == 1;
            if (pending <= 0 || decode != (pass == 0)) continue;
            const int take = std::min({pending, room, decode ? 1 : params_.prefill_chunk});
            try {
                s.cache().prepare(s.n_evaluated(), s.n_evaluated() + take);
            } catch (const Error& e) {
                fail_request(*r, e.what());
                continue;
            }
            const int slot = int(caches_.size());
            caches_.push_back(&s.cache());
            batch_requests_.push_back(r);
            batch_count_.push_back(take);
            for (int i = 0; i < take; ++i) {
                const int p = s.n_evaluated() + i;
                batch_.add(s.history()[size_t(p)], p, slot, p == int(s.history().size()) - 1);
            }
            r->state = RequestState::running;
            room -= take;
        }
    }
    return batch_.size() > 0;
}

void Scheduler::complete_pass() {
    const int n_vocab = model_->hparams().n_vocab;
    int row = 0;
    for (size_t slot = 0; slot < caches_.size(); ++slot) {
        Request& r = *batch_requests_[slot];
        Session& s = *r.session;
        const int n = s.n_evaluated() + batch_count_[slot];
        const bool at_end = n == int(s.history().size());
        if (at_end) {
            std::memcpy(s.logits_mut(), logits_.data() + size_t(row) * size_t(n_vocab), sizeof(float) * size_t(n_vocab));
            ++row;
        }
        s.set_evaluated(n, at_end);
        if (!at_end || r.state != RequestState::running) continue;
        bool more = false;
        try {
            more = r.gen->on_logits();
        } catch (const Error& e) {
            fail_request(r, e.what());
            continue;
        }
        if (!more) {
            r.metrics = r.gen->metrics();
            r.state = r.gen->finish() == FinishReason::cancelled ? RequestState::cancelled : RequestState::done;
        }
    }
}

StepStats Scheduler::step(double budget_ms) {
    const auto t0 = Clock::now();
    StepStats st;
    const int n_layer = model_->hparams().n_layer;
    const int64_t n_vocab = model_->hparams().n_vocab;
    auto elapsed = [&] { return ms_between(t0, Clock::now()); };
    // Cancellations take effect now, even while a pass that includes the
    // request is paused: its results are then ignored.
    for (auto& [id, r] : requests_)
        if (r->cancel && (r->state == RequestState::queued || r->state == RequestState::running)) {
            r->gen->end(FinishReason::cancelled);
            r->metrics = r->gen->metrics();
            r->state = RequestState::cancelled;
        }
    bool worked = false;
    for (;;) {
        if (!in_pass_) {
            if (budget_ms > 0 && worked) {
                // a whole new pass must look affordable before starting one
                const double est = ema_layer_ms_fixed_ + ema_layer_ms_per_entry_ * 1;
                if (elapsed() + est > budget_ms) break;
            }
            if (!build_batch()) break;
            model_->arch().begin(batch_, caches_, scratch_, model_->pool());
            in_pass_ = true;
            next_layer_ = 0;
        }
        const double per_layer = ema_layer_ms_fixed_ + ema_layer_ms_per_entry_ * double(batch_.size());
        while (next_layer_ < n_layer) {
            if (budget_ms > 0 && worked && elapsed() + per_layer > budget_ms) break;
            const auto a = Clock::now();
            model_->arch().layer(next_layer_, batch_, caches_, scratch_, model_->pool(), model_->kernels());
            const double ms = ms_between(a, Clock::now());
            // per-layer cost model: fixed + per entry, as an exponential average
            const double per_entry = ms / double(batch_.size());
            ema_layer_ms_per_entry_ = ema_layer_ms_per_entry_ == 0 ? per_entry : 0.8 * ema_layer_ms_per_entry_ + 0.2 * per_entry;
            ++next_layer_;
            ++st.layers;
            worked = true;
        }
        if (next_layer_ < n_layer) {
            st.paused = true;
            break;
        }
        // the output projection, in pieces when the budget is tight
        const int n_out = batch_.n_logits();
        if (next_layer_ < n_layer + kFinishChunks) {
            bool stopped = false;
            while (next_layer_ < n_layer + kFinishChunks) {
                const double est = ema_finish_ms_ / kFinishChunks;
                if (budget_ms > 0 && worked && elapsed() + est > budget_ms) {
                    stopped = true;
                    break;
                }
                const int k = next_layer_ - n_layer;
                const auto a = Clock::now();
                if (n_out > 0)
                    model_->arch().finish_rows(batch_, scratch_, logits_.data(), model_->pool(), model_->kernels(),
                                               n_vocab * k / kFinishChunks / 16 * 16,
                                               k + 1 == kFinishChunks ? n_vocab : n_vocab * (k + 1) / kFinishChunks / 16 * 16);
                const double ms = ms_between(a, Clock::now()) * kFinishChunks;
                ema_finish_ms_ = ema_finish_ms_ == 0 ? ms : 0.8 * ema_finish_ms_ + 0.2 * ms;
                ++next_layer_;
                worked = true;
            }
            if (stopped) {
                st.paused = true;
                break;
            }
        }
        st.entries += int(batch_.size());
        const int before = [&] {
            int n = 0;
            for (auto& [id, r] : requests_) n += r->gen->metrics().n_generated_tokens;
            return n;
        }();
        complete_pass();
        int after = 0;
        for (auto& [id, r] : requests_) after += r->gen->metrics().n_generated_tokens;
        st.tokens_generated += after - before;
        in_pass_ = false;
        if (budget_ms <= 0) break;
    }
    st.ms = elapsed();
    return st;
}

void Scheduler::run_to_completion() {
    while (!idle()) step(0);
}

}  // namespace ember
