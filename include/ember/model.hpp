// ember/model.hpp — a loaded model: the mapping, its parsed GGUF, the
// architecture's weight table, the tokenizer, the kernel table and the thread
// pool. Immutable after load and shared by every session (many NPCs, one set
// of weights); hold it by shared_ptr.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "ember/gguf.hpp"
#include "ember/kernels/dispatch.hpp"
#include "ember/mapped_file.hpp"
#include "ember/models/llama.hpp"
#include "ember/thread_pool.hpp"
#include "ember/tokenizer/tokenizer.hpp"

namespace ember {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

struct ModelParams {
    int n_threads = 0;       // worker threads incl. the caller; 0 = hardware threads (at most 8)
    std::string isa;         // force a kernel table by name ("" = best for this CPU)
    // Repack Q4_0/Q8_0/Q4_K/Q5_K/Q6_K, F16 (exact, AVX-512 or AVX2: the F16x16 layout)
    // and BF16 (below) matmul weights into the 16-row interleaved layouts
    // where the kernel set has kernels for it (kernels/repack.hpp): decode and
    // prefill are about 3x faster (F16: 2x decode, 1.5x prefill). The copy is
    // made by a background thread after load returns, layer by layer; until a
    // weight's copy is ready its matmuls interleave the rows they read on the
    // fly (the same bytes: results do not depend on the copy's progress).
    // Repacked weights live in the process's own memory instead of the shared
    // page cache (reported as repacked_bytes(); resident memory stays about the
    // file's size). Model::wait_repacked() waits for the copy.
    bool repack = true;
    // With repack, BF16 matmul weights go to the BF16x16 layout for VDPBF16PS
    // where the CPU has AVX512-BF16 (the "avx512bf16" kernel set): the weights
    // are exact, the activations are rounded to BF16 (8 significant bits)
    // once per row. This option does the same to F16 weights, converting each
    // to the nearest BF16 at load: lossy (F16 has 11 significant bits, BF16 8;
    // about 3 decimal digits become 2), like ik_llama.cpp's -rtr. Faster
    // prefill; off by default. No effect without AVX512-BF16.
    bool repack_f16_to_bf16 = false;
    // Element type of every KV cache this model makes (sessions, schedulers):
    // F32, or F16 for half the KV memory (each key and value rounded to
    // nearest when written: 11 significant bits, llama.cpp's default; a fast
    // context shift rounds the keys it moves again). Results stay
    // deterministic and batch-invariant either way.
    DType kv_type = DType::F32;
    // Called on the loading thread after each stage with the fraction done and
    // the stage's name: "parsed" (GGUF header, metadata and tensor table
    // validated), "weights" (the architecture's tensors found and checked),
    // "tokenizer" (vocabulary built), "ready". Return true to cancel: the load
    // then throws Status::cancelled and nothing is kept.
    std::function<bool(float progress, std::string_view stage)> on_progress;
    // Receives what the load notices but does not refuse (warnings) and a
    // summary line (info). Called on the loading thread.
    std::function<void(LogLevel level, std::string_view message)> on_log;
};

class Model {
public:
    // Maps and validates `path`; throws ember::Error (io_error, bad_format, unsupported).
    static std::shared_ptr<Model> load(const std::string& path, const ModelParams& params);
    // The same from bytes the host already holds.
    static std::shared_ptr<Model> load_from_bytes(std::vector<uint8_t> bytes, const ModelParams& params);

    const gguf::GgufFile& file() const { return gguf_; }
    const LlamaModel& arch() const { return *llama_; }
    const LlamaHParams& hparams() const { return llama_->hparams(); }
    const Tokenizer& tokenizer() const { return *tok_; }
    const kernels::KernelTable& kernels() const { return *kt_; }
    DType kv_type() const { return kv_type_; }
    ThreadPool& pool() const { return *pool_; }
    std::string name() const { return std::string(gguf_.get_string("general.name", "")); }
    size_t file_size() const { return map_.size(); }
    double load_ms() const { return load_ms_; }
    // 64-bit hash of the whole file's bytes (computed on first call, on the
    // pool's threads; independent of the thread count). Savegames carry it.
    uint64_t content_hash() const;
    size_t repacked_bytes() const { return repacked_bytes_; }
    // Blocks until the background repack is done (at once if there is none)
    // and returns how long it took from the end of load, in ms.
    double wait_repacked() const;

    // Forward-pass scratch for up to max_tokens rows and max_ctx positions,
    // lent by the model: sessions take one for a call and give it back, so
    // memory already touched serves the next call and the next session (a
    // fresh one costs page faults on every first use). Thread-safe.
    std::unique_ptr<LlamaScratch> take_scratch(int max_tokens, int max_ctx) const;
    void give_scratch(std::unique_ptr<LlamaScratch> s) const;
    // Bytes of the scratch the model keeps for the next call.
    size_t spare_scratch_bytes() const;

    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

private:
    Model() = default;
    static std::shared_ptr<Model> init(MappedFile map, const std::string& what, const ModelParams& params);

    MappedFile map_;
    gguf::GgufFile gguf_;
    std::unique_ptr<LlamaModel> llama_;
    std::unique_ptr<Tokenizer> tok_;
    const kernels::KernelTable* kt_ = nullptr;
    DType kv_type_ = DType::F32;
    std::unique_ptr<ThreadPool> pool_;
    double load_ms_ = 0;
    mutable std::once_flag hash_once_;
    mutable uint64_t hash_ = 0;
    std::vector<uint64_t> tensor_hash_;  // per tensor in file order; 0 = not yet computed
    std::vector<char> repacked_index_;   // per tensor in file order: 1 = has a repacked copy
    size_t repacked_bytes_ = 0;
    // Repacked weights live in anonymous memory (huge pages where the OS
    // allows); the file pages they replace are released once copied.
    struct AnonFree { size_t n; void operator()(uint8_t* p) const; };
    std::unique_ptr<uint8_t, AnonFree> repacked_{nullptr, AnonFree{0}};
    std::vector<std::unique_ptr<RepackedCopy>> copies_;  // one per repacked weight, in forward order
    std::thread repacker_;
    std::atomic<bool> stop_repack_{false};
    mutable std::mutex repack_mu_;
    mutable std::condition_variable repack_cv_;
    bool repack_done_ = true;  // guarded by repack_mu_
    double repack_ms_ = 0;     // guarded by repack_mu_
    mutable std::mutex scratch_mu_;
    mutable std::vector<std::unique_ptr<LlamaScratch>> spare_scratch_;  // guarded by scratch_mu_
    std::vector<uint16_t> f16_to_bf16_;  // F16 pattern -> nearest BF16, when F16 weights are converted
    void start_repack(const ModelParams& params);
    void repack_all(std::vector<TensorView*> weights);
};

}  // namespace ember
