#include "ember/model.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

namespace ember {

std::shared_ptr<Model> Model::load(const std::string& path, const ModelParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    auto m = init(MappedFile::open(path), path, params);
    m->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

std::shared_ptr<Model> Model::load_from_bytes(std::vector<uint8_t> bytes, const ModelParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    auto m = init(MappedFile::from_bytes(std::move(bytes)), "model buffer", params);
    m->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

std::shared_ptr<Model> Model::init(MappedFile map, const std::string& what, const ModelParams& params) {
    // Progress is coarse: one call per validated stage; a true return cancels.
    auto progress = [&](float f, std::string_view stage) {
        if (params.on_progress && params.on_progress(f, stage))
            fail(Status::cancelled, "loading " + what + " was cancelled by the progress callback after stage '" +
                                        std::string(stage) + "'");
    };
    auto log = [&](LogLevel level, const std::string& msg) {
        if (params.on_log) params.on_log(level, msg);
    };
    std::shared_ptr<Model> m(new Model());
    m->map_ = std::move(map);
    m->gguf_ = gguf::GgufFile::parse(m->map_.data(), m->map_.size(), what);
    progress(0.25f, "parsed");
    m->llama_ = std::make_unique<LlamaModel>(m->gguf_);
    progress(0.5f, "weights");
    m->tok_ = Tokenizer::from_gguf(m->gguf_);
    if (m->tok_->n_vocab() != m->llama_->hparams().n_vocab)
        fail(Status::bad_format, "the vocabulary has " + std::to_string(m->tok_->n_vocab()) +
                                     " tokens but the model's embedding has " +
                                     std::to_string(m->llama_->hparams().n_vocab) + " rows");
    progress(0.75f, "tokenizer");
    if (params.isa.empty()) {
        m->kt_ = &kernels::best_table();
    } else {
        m->kt_ = kernels::find_table(params.isa);
        if (!m->kt_) fail(Status::invalid_argument, "kernel set '" + params.isa + "' is not available on this CPU");
    }
    int n = params.n_threads;
    if (n <= 0) n = int(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
    if (n > 256) fail(Status::invalid_argument, "n_threads " + std::to_string(n) + " is more than 256");
    const unsigned hw = std::thread::hardware_concurrency();
    if (hw > 0 && unsigned(n) > hw)
        log(LogLevel::warn, "n_threads " + std::to_string(n) + " is more than the " + std::to_string(hw) +
                                " hardware threads of this machine: threads will wait on each other");
    if (m->llama_->hparams().n_ctx_train > 4096)
        log(LogLevel::info, "the model was trained with a context of " +
                                std::to_string(m->llama_->hparams().n_ctx_train) +
                                " tokens; sessions default to 4096 (set n_ctx for more)");
    m->pool_ = std::make_unique<ThreadPool>(n);
    progress(1.0f, "ready");
    log(LogLevel::info, "loaded " + what + ": " + m->llama_->hparams().arch + ", " +
                            std::to_string(m->llama_->n_params()) + " parameters, " + std::to_string(n) +
                            " threads, kernels " + m->kt_->name);
    return m;
}

namespace {
// Fixed-size chunks hashed independently, then combined in order: the result
// does not depend on how chunks were spread over threads.
uint64_t hash_chunk(const uint8_t* p, size_t n, uint64_t seed) {
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = (h ^ (w * 0xbf58476d1ce4e5b9ull)) * 0x94d049bb133111ebull;
        h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 32);
}
}  // namespace

uint64_t Model::content_hash() const {
    std::call_once(hash_once_, [this] {
        constexpr size_t kChunk = size_t(1) << 20;
        const size_t n = map_.size(), chunks = (n + kChunk - 1) / kChunk;
        std::vector<uint64_t> parts(chunks);
        pool_->parallel_for(int64_t(chunks), [&](int64_t c, int) {
            const size_t off = size_t(c) * kChunk;
            parts[size_t(c)] = hash_chunk(map_.data() + off, std::min(kChunk, n - off), uint64_t(c));
        });
        uint64_t h = 0xcbf29ce484222325ull ^ n;
        for (uint64_t v : parts) h = (h ^ v) * 0x100000001b3ull;
        hash_ = h;
    });
    return hash_;
}

}  // namespace ember
