// ember/thread_pool.hpp — the model's worker threads.
//
// Created once per model with the host's thread count; no thread is created
// per token. Between the back-to-back regions of a forward pass a waiting
// thread spins with pause (50 us), then yields its core; a worker parks on a
// condition variable after 2 ms, until the next call.
// parallel_for(n, fn) runs fn(i, worker) for i in [0, n) on the calling thread
// plus the workers (worker in [0, size())), and returns when all are done.
// Calls from different threads are serialised (one parallel region at a time).
// If fn throws, the remaining tasks are skipped and the first exception is
// rethrown on the calling thread once the region is over (a worker never ends).
#pragma once

#include <atomic>
#include <exception>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ember {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // n_threads >= 1 including the caller
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_; }
    void parallel_for(int64_t n, const std::function<void(int64_t, int)>& fn);

private:
    void worker(int id);
    void run_tasks(int id);

    int n_;
    std::vector<std::thread> threads_;
    std::mutex call_mu_;  // one parallel region at a time
    std::mutex mu_;       // guards sleeping only
    std::condition_variable cv_start_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> running_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    const std::function<void(int64_t, int)>* fn_ = nullptr;
    int64_t n_tasks_ = 0;
    std::atomic<int64_t> next_{0};
    // The first exception a task threw (on any thread): the remaining tasks
    // are skipped and parallel_for rethrows it on the calling thread.
    std::mutex error_mu_;
    std::exception_ptr error_;
    std::atomic<bool> failed_{false};
};

// Guided chunking of `left` rows still to be handed out among `threads`: a
// chunk of about left / (2 * threads), rounded up to a multiple of `unit`, at
// least `min_chunk`. Handed out in order, the first chunks are large (few
// tasks) and the last small, so a thread that finishes early waits for one
// small chunk at most (with equal chunks it waited for half a large one).
inline int64_t guided_chunk(int64_t left, int threads, int64_t unit, int64_t min_chunk) {
    const int64_t c = (left / (2 * int64_t(threads)) + unit - 1) / unit * unit;
    return c > min_chunk ? c : min_chunk;
}

// The smallest row chunk of a matrix product over `total` rows (a multiple of
// `unit`): 1/48 of the rows for a decode (nt == 1); with several activation
// rows, 1/8: each task prepares its panel of activations (block sums and
// scales) once, which costs as much as multiplying about 14 more weight rows
// (110M prefill +3% against 1/48). src/llama.cpp and benchmarks/bench_kernels
// cut their matrix products with it.
inline int64_t matmul_min_chunk(int64_t total, int64_t nt, int64_t unit) {
    const int64_t parts = nt > 1 ? 8 : 48;
    const int64_t c = (total / parts + unit - 1) / unit * unit;
    return c > unit ? c : unit;
}

}  // namespace ember
