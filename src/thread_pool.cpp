#include "ember/thread_pool.hpp"

#include <chrono>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EMBER_PAUSE() _mm_pause()
#else
#define EMBER_PAUSE() std::this_thread::yield()
#endif

namespace ember {

namespace {
// A forward pass runs hundreds of parallel regions a few microseconds apart.
// A waiting thread spins with pause for the first kPauseFor (the next region
// nearly always comes sooner, and a thread that yields may lose its core for
// far longer: on a virtual machine, workers that yielded after a few
// microseconds started a 110M prefill's short regions 100+ us late), then
// yields its core (when other processes share the cores, spinning would burn
// the time slice the awaited thread needs), and a worker parks on the
// condition variable after kSpinFor, so threads idle between host calls sleep.
using Clock = std::chrono::steady_clock;
constexpr auto kPauseFor = std::chrono::microseconds(50);
constexpr auto kSpinFor = std::chrono::milliseconds(2);

// One waiting loop's state: pause, then yield, then (for workers) park.
class Waiter {
public:
    // false once the thread has waited kSpinFor
    bool relax() {
        if ((++i_ & 15) == 0) {  // the clock every 16 turns (a read costs tens of ns)
            const auto waited = Clock::now() - start_;
            yield_ = waited >= kPauseFor;
            if (waited >= kSpinFor) return false;
        }
        if (yield_) std::this_thread::yield();
        else EMBER_PAUSE();
        return true;
    }
private:
    Clock::time_point start_ = Clock::now();
    unsigned i_ = 0;
    bool yield_ = false;
};
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_(n_threads < 1 ? 1 : n_threads) {
    threads_.reserve(size_t(n_ - 1));
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true);
    }
    cv_start_.notify_all();
    for (auto& t : threads_) t.join();
}

void ThreadPool::run_tasks(int id) {
    for (;;) {
        const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
        if (i >= n_tasks_) break;
        if (failed_.load(std::memory_order_relaxed)) continue;  // drain: a task failed
        try {
            (*fn_)(i, id);
        } catch (...) {  // an exception must not end a worker thread (std::terminate)
            std::lock_guard<std::mutex> lk(error_mu_);
            if (!error_) error_ = std::current_exception();
            failed_.store(true, std::memory_order_relaxed);
        }
    }
}

void ThreadPool::worker(int id) {
    uint64_t seen = 0;
    for (;;) {
        Waiter w;
        while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
            if (w.relax()) continue;
            std::unique_lock<std::mutex> lk(mu_);
            sleepers_.fetch_add(1);
            cv_start_.wait(lk, [&] { return stop_.load() || generation_.load() != seen; });
            sleepers_.fetch_sub(1);
            break;
        }
        if (stop_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        run_tasks(id);
        running_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int)>& fn) {
    if (n <= 0) return;
    std::lock_guard<std::mutex> call(call_mu_);
    if (n_ == 1 || n == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    fn_ = &fn;
    n_tasks_ = n;
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    next_.store(0, std::memory_order_relaxed);
    running_.store(n_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1);  // seq_cst: pairs with sleepers_ below
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_start_.notify_all();
    }
    run_tasks(0);
    for (Waiter w; running_.load(std::memory_order_acquire) != 0;) w.relax();  // (never parks: the workers are running)
    fn_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace ember
