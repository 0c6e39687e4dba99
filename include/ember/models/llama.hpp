// ember/models/llama.hpp — the decoder-only transformer of the Llama family.
//
// Covers GGUF architectures `llama` (Llama 1/2/3, Mistral, TinyLlama, SmolLM)
// and `qwen2` (biases on Q, K, V; NeoX rope order). Hyper-parameters come from
// the file's metadata; the tensor table below is walked once at load to find,
// validate and size every weight. Weights are views into the file mapping.
//
// forward() is batch-first: one call runs any mix of prompt tokens and decode
// tokens of several sequences (see batch.hpp). It is const and thread-safe for
// distinct caches and scratch; it allocates nothing.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "ember/batch.hpp"
#include "ember/gguf.hpp"
#include "ember/kernels/dispatch.hpp"
#include "ember/kv_cache.hpp"
#include "ember/tensor.hpp"
#include "ember/thread_pool.hpp"

namespace ember {

enum class RopeOrder { normal, neox };  // pairs (2i, 2i+1) | pairs (i, i + n_rot/2)

struct LlamaHParams {
    std::string arch;          // "llama" | "qwen2"
    int n_vocab = 0;
    int n_ctx_train = 0;
    int n_embd = 0;            // model width
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0;
    int n_ff = 0;              // feed-forward width
    int n_rot = 0;             // rotated dims per head (<= head_dim)
    float norm_eps = 1e-5f;
    float rope_base = 10000.0f;
    float rope_scale = 1.0f;   // linear scaling: positions are divided by this
    RopeOrder rope_order = RopeOrder::normal;
    bool qkv_bias = false;

    int q_dim() const { return n_head * head_dim; }
    int kv_dim() const { return n_head_kv * head_dim; }
};

struct LlamaLayer {
    TensorView attn_norm;  // [n_embd] f32
    TensorView wq;         // [n_embd -> q_dim]   (ne = {n_embd, q_dim})
    TensorView wk;         // [n_embd -> kv_dim]
    TensorView wv;         // [n_embd -> kv_dim]
    TensorView bq, bk, bv; // [q_dim], [kv_dim], [kv_dim] f32 (qwen2 only)
    TensorView wo;         // [q_dim -> n_embd]
    TensorView ffn_norm;   // [n_embd] f32
    TensorView w_gate;     // [n_embd -> n_ff]
    TensorView w_up;       // [n_embd -> n_ff]
    TensorView w_down;     // [n_ff -> n_embd]
};

struct LlamaWeights {
    TensorView tok_embd;     // [n_embd, n_vocab] (one row per token)
    TensorView output_norm;  // [n_embd] f32
    TensorView output;       // [n_embd -> n_vocab]; = tok_embd when tied
    bool tied_output = false;
    std::vector<LlamaLayer> layers;
};

// Per-call working memory, sized once for at most `max_tokens` batch entries
// and `max_ctx` positions (no allocation inside the decode loop).
// Allocator of the per-pass scratch: buffers of 1 MiB or more come from
// anonymous memory with transparent huge pages requested, so sizing a session
// (a first prefill) takes a few 2 MiB page faults instead of thousands of 4 KiB
// ones (tens of milliseconds on a virtual machine); smaller ones from new.
void* scratch_alloc(size_t bytes);
void scratch_free(void* p, size_t bytes) noexcept;
template <class T>
struct ScratchAlloc {
    using value_type = T;
    ScratchAlloc() = default;
    template <class U>
    ScratchAlloc(const ScratchAlloc<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(scratch_alloc(n * sizeof(T))); }
    void deallocate(T* p, size_t n) noexcept { scratch_free(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const ScratchAlloc<U>&) const { return true; }
};
template <class T>
using ScratchVec = std::vector<T, ScratchAlloc<T>>;

struct LlamaScratch {
    int max_tokens = 0, max_ctx = 0, n_workers = 0;
    ScratchVec<float> x;       // [max_tokens, n_embd] residual stream
    ScratchVec<float> xn;      // [max_tokens, n_embd] normed input
    ScratchVec<float> q;       // [max_tokens, q_dim]
    ScratchVec<float> k, v;    // [max_tokens, kv_dim]
    ScratchVec<float> att;     // [max_tokens, q_dim] attention output
    ScratchVec<float> gate;    // [max_tokens, n_ff]
    ScratchVec<float> up;      // [max_tokens, n_ff]
    ScratchVec<float> scores;  // [n_workers, heads per KV head * max_ctx]
    std::vector<const float*> pages;     // the same for a float16 cache in pages16
    std::vector<const uint16_t*> pages16;  // [n_workers, 2 * pages of max_ctx]: K and V page pointers of one task
    std::vector<int> tiles;           // attention: first batch entry of each query tile
    ScratchVec<uint8_t> xq;    // activations in Q8_0 for integer kernels (empty if the model has no quantized weights)
    ScratchVec<uint16_t> xbf;  // activations rounded to BF16 for BF16x16 weights (empty if the model has none)
    ScratchVec<float> rope;    // [max_tokens, n_rot] cos/sin pairs
    bool ffn_pending = false;  // the last layer's FFN output (in xn) is not yet added to x
    size_t bytes() const;
};

class LlamaModel {
public:
    // Reads hyper-parameters and finds every tensor; throws bad_format naming a
    // missing/misshapen tensor or metadata key, unsupported for an unknown
    // architecture or a tensor type without kernels.
    explicit LlamaModel(const gguf::GgufFile& file);

    const LlamaHParams& hparams() const { return hp_; }
    const LlamaWeights& weights() const { return w_; }
    uint64_t n_params() const { return n_params_; }

    LlamaScratch make_scratch(int max_tokens, int max_ctx, int n_workers) const;
    // KV page geometry for this model.
    std::shared_ptr<KvPool> make_pool(int pages_per_slab, int max_pages = 0, DType kv_type = DType::F32) const;
    static constexpr int kPageSize = 32;  // positions per KV page
    // Most queries per attention tile (consecutive positions of one sequence):
    // about 64 query heads per kernel call, each reading the same K and V rows
    // (1.1B, a 4000-token prompt: 8 heads per call 228 tok/s, 32 249, 64 278,
    // 128 259, when the tile's scores outgrow L2).
    int attend_tile() const { return std::max(1, 64 / (hp_.n_head / hp_.n_head_kv)); }
    // A cache with its own pool, every page of [0, n_ctx) allocated now.
    KvCache make_cache(int n_ctx, DType kv_type = DType::F32) const;
    // Context shift without re-evaluation: the entries at positions [keep +
    // drop, n) move to [keep, n - drop), keys re-rotated for their new
    // positions, and the cache is cut to n - drop. Cheap (a copy), but only
    // approximate: the moved entries were computed attending to the dropped
    // ones. Throws (nothing changed) when the pool cannot un-share a page.
    void shift_cache(KvCache& c, int keep, int drop, int n) const;

    // Runs the batch. caches[b.seq[i]] receives K/V at b.pos[i] (the caller
    // has prepared those positions). Logits of the entries with b.logits[i]
    // set are written, in batch order, to `logits` ([b.n_logits(), n_vocab]).
    void forward(const Batch& b, std::span<KvCache* const> caches, LlamaScratch& s, float* logits, ThreadPool& pool,
                 const kernels::KernelTable& kt) const;

    // The same pass in pieces, so a caller can pause between layers (frame
    // budgets): begin(), then layer(l) for l in [0, n_layer), then finish().
    // The batch, caches and scratch must stay untouched in between.
    void begin(const Batch& b, std::span<KvCache* const> caches, LlamaScratch& s, ThreadPool& pool) const;
    void layer(int l, const Batch& b, std::span<KvCache* const> caches, LlamaScratch& s, ThreadPool& pool,
               const kernels::KernelTable& kt) const;
    void finish(const Batch& b, LlamaScratch& s, float* logits, ThreadPool& pool, const kernels::KernelTable& kt) const;
    // finish() in pieces: the output projection over vocabulary rows
    // [row0, row1) (the final norm runs with the piece that starts at row 0).
    void finish_rows(const Batch& b, LlamaScratch& s, float* logits, ThreadPool& pool, const kernels::KernelTable& kt,
                     int64_t row0, int64_t row1) const;

    // Every weight that only matmuls read (not the token embedding), for the
    // load-time repack; the model is not yet shared when this is called.
    std::vector<TensorView*> matmul_weights();
    std::vector<const TensorView*> matmul_weights() const;

    // Supported architecture names, for messages.
    static bool supports(std::string_view arch);

private:
    // One output of a matmul group: y[t][r] = W[r] . x[t] for rows r in [r0, r1) (r1 < 0: all).
    struct MatOut {
        const TensorView* w;
        float* y;
        int ldy;
        int64_t r0 = 0, r1 = -1;
    };
    // A per-row step run just before a row of x is read (a norm, a residual
    // add, an activation): a reference to a callable, no allocation.
    class RowFn {
    public:
        template <class F>
        RowFn(const F& f) : fn_([](const void* c, int t) { (*static_cast<const F*>(c))(t); }), ctx_(&f) {}
        void operator()(int t) const { fn_(ctx_, t); }
    private:
        void (*fn_)(const void*, int);
        const void* ctx_;
    };
    // Every weight of the group reads the same input x ([nt][ldx]), encoded
    // once. `pre(t)`, if given, first makes row t of x (in the same parallel
    // region as the encoding, so it costs no extra wait).
    void matmul(std::initializer_list<MatOut> outs, const float* x, int nt, int ldx, LlamaScratch& s, ThreadPool& pool,
                const kernels::KernelTable& kt, const RowFn* pre = nullptr) const;
    // fn(t) for every batch row: in parallel when the rows hold enough work.
    static void for_rows(int nt, int64_t work, ThreadPool& pool, const RowFn& fn);

    LlamaHParams hp_;
    LlamaWeights w_;
    uint64_t n_params_ = 0;
    std::vector<float> inv_freq_;  // [n_rot/2] rope frequencies
};

}  // namespace ember
