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
    if (params.repack) m->repack(params);
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

void Model::repack(const ModelParams& params) {
    // The file's bytes as they were are hashed first (savegames name the model
    // by its content, whatever the layout in memory), then permuted in place.
    const auto& infos = gguf_.tensors();
    // bf16: to BF16x16 (from BF16, or from F16 with repack_f16_to_bf16), else
    // the type's own x16 layout.
    struct Job { TensorView* w; size_t index; bool bf16; };
    std::vector<Job> jobs;
    const bool bf16_kernels = kt_->matmul_x16[size_t(DType::BF16)] != nullptr;
    for (TensorView* w : llama_->matmul_weights()) {
        if (w->rows() % 16 != 0 || w->interleave != 0) continue;
        const bool x16 = kernels::repackable(w->type) && kt_->matmul_x16[size_t(w->type)] && w->cols() / 32 <= 1024;
        const bool bf16 = bf16_kernels && w->cols() % 2 == 0 &&
                          (w->type == DType::BF16 || (w->type == DType::F16 && params.repack_f16_to_bf16));
        if (!x16 && !bf16) continue;
        for (size_t i = 0; i < infos.size(); ++i)
            if (infos[i].name == w->name) jobs.push_back({w, i, bf16});
    }
    if (jobs.empty()) return;
    // The destination: one anonymous region for all repacked tensors.
    size_t total = 0;
    std::vector<size_t> offset;
    for (const Job& j : jobs) {
        offset.push_back(total);
        total += align_up(j.w->nbytes, 64);
    }
    void* mem = ::mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;  // not enough memory: the weights are used as stored (repacked_bytes() stays 0)
    ::madvise(mem, total, MADV_HUGEPAGE);  // fewer faults now, fewer TLB misses in every matmul
    repacked_ = std::unique_ptr<uint8_t, AnonFree>(static_cast<uint8_t*>(mem), AnonFree{total});
    // Tensor by tensor, so at most one tensor is resident twice: tasks are its
    // groups of 16 rows, then its file pages go. (The content hash is not
    // computed here: content_hash() reads the file's bytes as stored when a
    // savegame first needs it, so loading does not pay for it.)
    // A task is a run of groups: read from the file with pread into a
    // per-thread buffer (no page faults on the mapping: faulting the file in
    // page by page was most of the load time), then permuted into place.
    constexpr size_t kRunBytes = size_t(256) << 10;
    std::vector<uint16_t> f16_to_bf16;  // every F16 pattern's nearest BF16, when F16 weights are converted
    for (const Job& j : jobs)
        if (j.bf16 && j.w->type == DType::F16 && f16_to_bf16.empty()) {
            f16_to_bf16.resize(65536);
            for (uint32_t h = 0; h < 65536; ++h) f16_to_bf16[h] = kernels::f16_to_bf16_ref(uint16_t(h));
        }
    for (size_t j = 0; j < jobs.size(); ++j) {
        TensorView& w = *jobs[j].w;
        const bool to_bf16 = jobs[j].bf16;
        const uint16_t* conv = w.type == DType::F16 ? f16_to_bf16.data() : nullptr;
        const size_t bytes = 16 * w.row_stride();
        const int64_t n_groups = w.rows() / 16;
        const int64_t per_run = std::max<int64_t>(1, int64_t(kRunBytes / bytes));
        uint8_t* dst = repacked_.get() + offset[j];
        pool_->parallel_for((n_groups + per_run - 1) / per_run, [&](int64_t run, int) {
            const int64_t g0 = run * per_run, g1 = std::min(n_groups, g0 + per_run);
            thread_local std::vector<uint8_t> buf;
            const uint8_t* src = w.data + size_t(g0) * bytes;
            const size_t n = size_t(g1 - g0) * bytes;
            if (buf.size() < n) buf.resize(n);
            if (map_.read_into(src, n, buf.data())) src = buf.data();
            for (int64_t g = g0; g < g1; ++g) {
                if (to_bf16) {
                    kernels::repack_bf16_x16(reinterpret_cast<const uint16_t*>(src + size_t(g - g0) * bytes),
                                             reinterpret_cast<uint16_t*>(dst + size_t(g) * bytes), w.cols(), conv);
                } else {
                    kernels::repack_x16_ref(w.type, src + size_t(g - g0) * bytes, dst + size_t(g) * bytes, w.cols() / 32);
                }
            }
        });
        map_.release(w.data, w.nbytes);
        w.data = dst;
        w.interleave = 16;
        if (to_bf16) w.type = DType::BF16;  // (an F16 tensor is now BF16: same size, rounded values)
        repacked_index_.resize(infos.size(), 0);
        repacked_index_[jobs[j].index] = 1;
        repacked_bytes_ += w.nbytes;
    }
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

}  // namespace ember
