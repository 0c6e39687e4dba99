// ember/scheduler.hpp — many sessions on one model, one batch per step.
//
// The scheduler gathers the pending work of all its sessions — prompt chunks
// and next-token decodes — into one forward batch, so each weight matrix is
// read once per step for all of them. Work is submitted without blocking and
// done by step(budget): the host calls it once per frame from its own thread
// (or a job-system worker); a step does as much as fits in the budget and
// returns, pausing a forward pass between layers (or between chunks of the
// output projection) and resuming it on the next step. Text reaches the host
// through each request's poll queue (take_text) or its on_piece callback,
// always on the thread that called step().
//
// Reproducibility: every kernel computes each output with a fixed order that
// does not depend on which entries share the batch, how rows are split over
// threads, or how a prompt is chunked; each session samples with its own RNG.
// So a session's tokens are the same alone or batched with any others, with
// any thread count — there is no slower "reproducible mode" to switch on.
//
// Sessions made by a scheduler share its KV pool (sized up front or growing
// by slabs up to a cap) and must be used only through it while it runs.
// Not thread-safe: one thread drives a scheduler at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ember/session.hpp"

namespace ember {

struct SchedulerParams {
    int max_batch_tokens = 128;   // batch entries per forward pass
    int prefill_chunk = 64;       // prompt tokens one session adds to a batch
    int kv_pages_per_slab = 64;   // KV pool growth step (pages of 32 positions)
    int kv_max_pages = 0;         // 0 = no cap; else the pool never exceeds this
    int kv_initial_pages = 0;     // pages reserved up front
};

enum class RequestState { queued = 0, running = 1, done = 2, cancelled = 3, failed = 4 };

struct RequestOptions {
    GenerateOptions gen;
    int priority = 0;  // higher first: the player's current partner answers first
};

struct StepStats {
    int entries = 0;          // batch entries whose pass completed in this step
    int layers = 0;           // layers run in this step
    int tokens_generated = 0;
    bool paused = false;      // a pass is in flight and continues next step
    double ms = 0;
};

class Scheduler {
public:
    using RequestId = uint64_t;

    Scheduler(std::shared_ptr<const Model> model, const SchedulerParams& params);
    ~Scheduler();

    const Model& model() const { return *model_; }
    // A session whose KV pages come from this scheduler's pool.
    std::unique_ptr<Session> create_session(const SessionParams& params);

    // Queues a request on `s` (which must outlive it); tokenizes now and throws
    // on bad input (nothing queued). One request per session at a time.
    RequestId submit(Session& s, std::string_view prompt, const RequestOptions& opt);
    // Takes effect at the next step boundary: the request ends as cancelled;
    // tokens generated so far stay in the session's history.
    void cancel(RequestId id);
    RequestState state(RequestId id) const;
    FinishReason finish_reason(RequestId id) const;
    const Metrics& metrics(RequestId id) const;
    const std::string& error(RequestId id) const;   // message of a failed request
    // Text produced since the last call (UTF-8-complete pieces).
    std::string take_text(RequestId id);
    // The same text without taking it.
    const std::string& pending_text(RequestId id) const;
    // Forgets a finished request (its id becomes invalid).
    void release(RequestId id);
    // Forgets every request of `s` (the session is going away or being
    // replaced). A pass in flight that includes it is abandoned; the other
    // sessions in it simply run their entries again next step.
    void detach(Session& s);

    // Does work for about budget_ms (> 0), or one whole forward pass (<= 0).
    StepStats step(double budget_ms);
    // Runs steps until no request is queued or running.
    void run_to_completion();
    bool idle() const;

    size_t kv_bytes_reserved() const { return pool_->bytes_reserved(); }
    size_t kv_bytes_used() const { return pool_->bytes_used(); }

private:
    struct Request;
    Request& get(RequestId id);
    const Request& get(RequestId id) const;
    bool build_batch();
    void complete_pass();
    void fail_request(Request& r, const std::string& msg);

    std::shared_ptr<const Model> model_;
    SchedulerParams params_;
    std::shared_ptr<KvPool> pool_;
    LlamaScratch scratch_;
    std::map<RequestId, std::unique_ptr<Request>> requests_;
    RequestId next_id_ = 1;

    // the pass in flight
    bool in_pass_ = false;
    int next_layer_ = 0;
    Batch batch_;
    std::vector<KvCache*> caches_;
    std::vector<Request*> batch_requests_;   // per cache slot
    std::vector<int> batch_count_;           // entries per cache slot
    std::vector<float> logits_;              // [max_batch_tokens, n_vocab]
    double ema_layer_ms_per_entry_ = 0, ema_layer_ms_fixed_ = 0.05, ema_finish_ms_ = 0;
};

}  // namespace ember
