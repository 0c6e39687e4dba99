#include "ember/model.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <sys/mman.h>

#include "ember/kernels/repack.hpp"

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
    // Errors about the file's contents name the file, as the GGUF reader's do.
    auto named = [&](auto&& make) {
        try {
            return make();
        } catch (const Error& e) {
            fail(e.status(), what + ": " + e.what());
        }
    };
    m->llama_ = named([&] { return std::make_unique<LlamaModel>(m->gguf_); });
    progress(0.5f, "weights");
    m->tok_ = named([&] { return Tokenizer::from_gguf(m->gguf_); });
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
    if (params.kv_type != DType::F32 && params.kv_type != DType::F16)
        fail(Status::invalid_argument, std::string("KV cache type ") + dtype_name(params.kv_type) +
                                           " is not supported (f32 or f16)");
    m->kv_type_ = params.kv_type;
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
    m->tensor_hash_.assign(m->gguf_.tensors().size(), 0);
    if (params.repack) m->start_repack(params);
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
constexpr size_t kHashChunk = size_t(1) << 20;
uint64_t combine_chunks(const uint64_t* parts, size_t n_parts, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t c = 0; c < n_parts; ++c) h = (h ^ parts[c]) * 0x100000001b3ull;
    return h | 1;  // never 0: 0 marks "not computed"
}
uint64_t hash_bytes(const uint8_t* p, size_t n) {
    std::vector<uint64_t> parts;
    for (size_t off = 0, c = 0; off < n; off += kHashChunk, ++c) parts.push_back(hash_chunk(p + off, std::min(kHashChunk, n - off), c));
    return combine_chunks(parts.data(), parts.size(), n);
}
}  // namespace

void Model::start_repack(const ModelParams& params) {
    // Which weights: those the kernel set has 16-row kernels for, in the
    // type's own x16 layout, or BF16x16 for BF16 weights (and F16 ones with
    // repack_f16_to_bf16: converted, lossy), or F16x16 for the other F16 ones
    // (exact). The destination is reserved now
    // (untouched anonymous memory costs nothing until written); the copying
    // runs on a thread of its own, so load returns at once and the host's
    // first prompt overlaps it.
    const auto& infos = gguf_.tensors();
    const bool bf16_kernels = kt_->matmul_x16[size_t(DType::BF16)] != nullptr;
    std::vector<TensorView*> weights;
    std::vector<DType> types;
    std::vector<size_t> offset;
    size_t total = 0;
    for (TensorView* w : llama_->matmul_weights()) {
        if (w->rows() % 16 != 0) continue;
        const bool x16 = kernels::repackable(w->type) && kt_->matmul_x16[size_t(w->type)] && w->cols() / 32 <= 1024;
        const bool bf16 = bf16_kernels && w->cols() % 2 == 0 &&
                          (w->type == DType::BF16 || (w->type == DType::F16 && params.repack_f16_to_bf16));
        // exact F16 (F16x16: the same values, 16 rows side by side)
        const bool f16 = !bf16 && w->type == DType::F16 && kt_->matmul_x16[size_t(DType::F16)];
        if (!x16 && !bf16 && !f16) continue;
        weights.push_back(w);
        types.push_back(bf16 ? DType::BF16 : w->type);
        offset.push_back(total);
        total += align_up(w->nbytes, 64);
    }
    if (weights.empty()) return;
    void* mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;  // not enough memory: the weights are used as stored (repacked_bytes() stays 0)
    ::madvise(mem, total, MADV_HUGEPAGE);  // fewer faults now, fewer TLB misses in every matmul
    repacked_ = std::unique_ptr<uint8_t, AnonFree>(static_cast<uint8_t*>(mem), AnonFree{total});
    for (size_t j = 0; j < weights.size(); ++j)
        if (weights[j]->type == DType::F16 && types[j] == DType::BF16 && f16_to_bf16_.empty()) {  // every F16 pattern's nearest BF16
            f16_to_bf16_.resize(65536);
            for (uint32_t h = 0; h < 65536; ++h) f16_to_bf16_[h] = kernels::f16_to_bf16_ref(uint16_t(h));
        }
    repacked_index_.assign(infos.size(), 0);
    for (size_t j = 0; j < weights.size(); ++j) {
        auto c = std::make_unique<RepackedCopy>();
        c->data = repacked_.get() + offset[j];
        c->type = types[j];
        if (weights[j]->type == DType::F16 && types[j] == DType::BF16) c->f16_to_bf16 = f16_to_bf16_.data();
        weights[j]->repacked = c.get();
        copies_.push_back(std::move(c));
        repacked_bytes_ += weights[j]->nbytes;
        for (size_t i = 0; i < infos.size(); ++i)
            if (infos[i].name == weights[j]->name) repacked_index_[i] = 1;
    }
    repack_done_ = false;
    try {
        repacker_ = std::thread([this, weights = std::move(weights)]() mutable { repack_all(std::move(weights)); });
    } catch (const std::system_error&) {
        repack_all(llama_->matmul_weights());  // no thread to be had: copy now, on the loading thread
    }
}

void Model::repack_all(std::vector<TensorView*> weights) {
    // Weight by weight in forward order (the first layers are ready first). A
    // weight's file bytes are read with pread in runs of 16-row groups (no page
    // faults on the mapping: faulting the file in page by page was most of the
    // cost), permuted into place, then its file pages are let go. (The content
    // hash is not computed here: content_hash() reads the file's bytes as
    // stored when a savegame first needs it.)
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<uint8_t> buf;
    constexpr size_t kRunBytes = size_t(256) << 10;
    for (TensorView* wp : weights) {
        if (!wp->repacked || stop_repack_.load(std::memory_order_relaxed)) continue;
        const TensorView& w = *wp;
        auto* copy = const_cast<RepackedCopy*>(w.repacked);
        const size_t bytes = 16 * w.row_stride();
        const int64_t n_groups = w.rows() / 16;
        const int64_t per_run = std::max<int64_t>(1, int64_t(kRunBytes / bytes));
        for (int64_t g0 = 0; g0 < n_groups; g0 += per_run) {
            const int64_t g1 = std::min(n_groups, g0 + per_run);
            const uint8_t* src = w.data + size_t(g0) * bytes;
            const size_t n = size_t(g1 - g0) * bytes;
            if (buf.size() < n) buf.resize(n);
            if (map_.read_into(src, n, buf.data())) src = buf.data();
            for (int64_t g = g0; g < g1; ++g)
                kernels::repack_group(w, src + size_t(g - g0) * bytes, copy->data + size_t(g) * bytes);
        }
        copy->ready.store(true, std::memory_order_release);
        map_.release(w.data, w.nbytes);
    }
    std::lock_guard lk(repack_mu_);
    repack_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    repack_done_ = true;
    repack_cv_.notify_all();
}

double Model::wait_repacked() const {
    std::unique_lock lk(repack_mu_);
    repack_cv_.wait(lk, [this] { return repack_done_; });
    return repack_ms_;
}

Model::~Model() {
    stop_repack_.store(true, std::memory_order_relaxed);
    if (repacker_.joinable()) repacker_.join();
}

void Model::AnonFree::operator()(uint8_t* p) const {
    if (p) ::munmap(p, n);
}

uint64_t Model::content_hash() const {
    std::call_once(hash_once_, [this] {
        const auto& infos = gguf_.tensors();
        std::vector<uint64_t> parts = tensor_hash_;
        // The file's bytes as stored (a repacked tensor's are still in the file
        // mapping; its pages are let go again once hashed).
        pool_->parallel_for(int64_t(infos.size()), [&](int64_t i, int) {
            if (parts[size_t(i)] == 0) {
                const TensorView v = gguf_.view(infos[size_t(i)]);
                parts[size_t(i)] = hash_bytes(v.data, v.nbytes);
                if (!repacked_index_.empty() && repacked_index_[size_t(i)]) map_.release(v.data, v.nbytes);
            }
        });
        uint64_t h = hash_bytes(map_.data(), size_t(gguf_.data_offset()));  // header, metadata, tensor infos
        for (uint64_t v : parts) h = (h ^ v) * 0x100000001b3ull;
        hash_ = h;
    });
    return hash_;
}

std::unique_ptr<LlamaScratch> Model::take_scratch(int max_tokens, int max_ctx) const {
    {
        std::lock_guard<std::mutex> lk(scratch_mu_);
        for (size_t i = 0; i < spare_scratch_.size(); ++i) {
            const LlamaScratch& s = *spare_scratch_[i];
            if (s.max_tokens >= max_tokens && s.max_ctx >= max_ctx && s.n_workers >= pool_->size()) {
                std::unique_ptr<LlamaScratch> r = std::move(spare_scratch_[i]);
                spare_scratch_.erase(spare_scratch_.begin() + std::ptrdiff_t(i));
                return r;
            }
        }
        // None fits: the new one covers the largest spare too, which it replaces
        // (the spares converge on one size that serves every caller).
        if (!spare_scratch_.empty()) {
            auto big = std::max_element(spare_scratch_.begin(), spare_scratch_.end(), [](const auto& a, const auto& b) {
                return a->bytes() < b->bytes();
            });
            max_tokens = std::max(max_tokens, (*big)->max_tokens);
            max_ctx = std::max(max_ctx, (*big)->max_ctx);
            spare_scratch_.erase(big);
        }
    }
    return std::make_unique<LlamaScratch>(llama_->make_scratch(max_tokens, max_ctx, pool_->size()));
}

void Model::give_scratch(std::unique_ptr<LlamaScratch> s) const {
    if (!s) return;
    constexpr size_t kKeep = 2;  // callers running at once, typically; more are freed
    std::lock_guard<std::mutex> lk(scratch_mu_);
    spare_scratch_.push_back(std::move(s));
    if (spare_scratch_.size() > kKeep) {
        auto small = std::min_element(spare_scratch_.begin(), spare_scratch_.end(), [](const auto& a, const auto& b) {
            return a->bytes() < b->bytes();
        });
        spare_scratch_.erase(small);
    }
}

size_t Model::spare_scratch_bytes() const {
    std::lock_guard<std::mutex> lk(scratch_mu_);
    size_t n = 0;
    for (const auto& s : spare_scratch_) n += s->bytes();
    return n;
}

}  // namespace ember
