#include "ember/thread_pool.hpp"

#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EMBER_PAUSE() _mm_pause()
#else
#define EMBER_PAUSE() std::this_thread::yield()
#endif

namespace ember {

namespace {
// A forward pass runs hundreds of parallel regions a few microseconds apart:
// workers spin this many pause-loops (roughly 0.1-0.3 ms) before parking on
// the condition variable, so back-to-back regions cost no wake-up, while
// threads idle between host calls still sleep.
constexpr int kSpin = 4000;
// Past this many pause-loops a waiting thread yields its core instead: when
// other processes share the cores, a spinning thread would otherwise burn the
// time slice the thread it waits for needs.
constexpr int kPauseThenYield = 200;

inline void relax(int i) {
    if (i < kPauseThenYield) EMBER_PAUSE();
    else std::this_thread::yield();
}
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
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed)) {
            if (++spins < kSpin) {
                relax(spins);
                continue;
            }
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
    for (int i = 0; running_.load(std::memory_order_acquire) != 0; ++i) relax(i);
    fn_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

}  // namespace ember
