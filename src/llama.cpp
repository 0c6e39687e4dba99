// The Llama-family forward pass: llama2.c's single loop over layers, over a batch.
#include "ember/models/llama.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <utility>

#include <sys/mman.h>

#include "ember/kernels/quant_ref.hpp"
#include "ember/kernels/repack.hpp"

namespace ember {

namespace {
// Rotates the first 2*half dims of one head: pair i by the angle whose cos and
// sin are r[2i], r[2i+1] (pairs of neighbours, or i and i+half for NeoX order).
void rotate_pairs(float* vec, const float* r, int half, RopeOrder order) {
    for (int i = 0; i < half; ++i) {
        const int a = order == RopeOrder::normal ? 2 * i : i;
        const int c = order == RopeOrder::normal ? 2 * i + 1 : i + half;
        const float x0 = vec[a], x1 = vec[c], co = r[2 * i], si = r[2 * i + 1];
        vec[a] = x0 * co - x1 * si;
        vec[c] = x0 * si + x1 * co;
    }
}
// The encoding a weight's kernel reads activations in: that of its repacked
// copy's type and layout where it has one (the on-the-fly path included).
DType act_type(const TensorView& w) {
    return w.repacked ? kernels::vec_dot_type(w.repacked->type, 16) : kernels::vec_dot_type(w.type);
}

std::string key(const std::string& arch, const char* k) { return arch + "." + k; }

int positive_int(const gguf::GgufFile& f, const std::string& k, int64_t max) {
    const int64_t v = f.get_int(k);
    if (v <= 0 || v > max) fail(Status::bad_format, "metadata '" + k + "' = " + std::to_string(v) + " is out of range");
    return int(v);
}

}  // namespace

void* scratch_alloc(size_t bytes) {
    constexpr size_t kBig = size_t(1) << 20;
    if (bytes < kBig) return ::operator new(bytes);
    // 2 MiB-aligned (huge pages cover only aligned ranges): map 2 MiB more,
    // then unmap the slack before and after
    constexpr size_t kHuge = size_t(2) << 20, kPage = 4096;
    const size_t len = bytes + kHuge, used = (bytes + kPage - 1) / kPage * kPage;
    void* raw = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    auto* base = static_cast<uint8_t*>(raw);
    auto* p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(base) + kHuge - 1) / kHuge * kHuge);
    if (p > base) ::munmap(base, size_t(p - base));
    if (base + len > p + used) ::munmap(p + used, size_t(base + len - (p + used)));
    ::madvise(p, used, MADV_HUGEPAGE);
    return p;
}

void scratch_free(void* p, size_t bytes) noexcept {
    if (!p) return;
    if (bytes < (size_t(1) << 20)) ::operator delete(p);
    else ::munmap(p, bytes);
}

bool LlamaModel::supports(std::string_view arch) { return arch == "llama" || arch == "qwen2"; }

LlamaModel::LlamaModel(const gguf::GgufFile& f) {
    const std::string arch(f.get_string("general.architecture"));
    if (!supports(arch))
        fail(Status::unsupported, "unknown architecture '" + arch + "' (supported: llama, qwen2)");
    hp_.arch = arch;
    hp_.qkv_bias = arch == "qwen2";
    hp_.rope_order = arch == "qwen2" ? RopeOrder::neox : RopeOrder::normal;

    constexpr int64_t kMaxWidth = 1 << 20, kMaxLayers = 1024, kMaxHeads = 4096;
    hp_.n_embd = positive_int(f, key(arch, "embedding_length"), kMaxWidth);
    hp_.n_layer = positive_int(f, key(arch, "block_count"), kMaxLayers);
    hp_.n_ff = positive_int(f, key(arch, "feed_forward_length"), kMaxWidth);
    hp_.n_head = positive_int(f, key(arch, "attention.head_count"), kMaxHeads);
    hp_.n_head_kv = f.has(key(arch, "attention.head_count_kv"))
                        ? positive_int(f, key(arch, "attention.head_count_kv"), kMaxHeads)
                        : hp_.n_head;
    hp_.n_ctx_train = positive_int(f, key(arch, "context_length"), int64_t(1) << 24);
    if (hp_.n_head % hp_.n_head_kv != 0)
        fail(Status::bad_format, "attention.head_count " + std::to_string(hp_.n_head) +
                                     " is not a multiple of head_count_kv " + std::to_string(hp_.n_head_kv));
    hp_.head_dim = f.has(key(arch, "attention.key_length")) ? positive_int(f, key(arch, "attention.key_length"), kMaxWidth)
                                                              : hp_.n_embd / hp_.n_head;
    if (hp_.head_dim <= 0 || hp_.head_dim % 2 != 0)
        fail(Status::bad_format, "head dimension " + std::to_string(hp_.head_dim) + " must be even and positive");
    hp_.n_rot = f.has(key(arch, "rope.dimension_count")) ? positive_int(f, key(arch, "rope.dimension_count"), hp_.head_dim)
                                                          : hp_.head_dim;
    if (hp_.n_rot % 2 != 0) fail(Status::bad_format, "rope.dimension_count must be even");
    hp_.norm_eps = float(f.get_float(key(arch, "attention.layer_norm_rms_epsilon"), 1e-5));
    hp_.rope_base = float(f.get_float(key(arch, "rope.freq_base"), 10000.0));
    const std::string_view scaling = f.get_string(key(arch, "rope.scaling.type"), "none");
    if (scaling == "linear") {
        hp_.rope_scale = float(f.get_float(key(arch, "rope.scaling.factor"), 1.0));
    } else if (scaling != "none") {
        fail(Status::unsupported, "rope scaling type '" + std::string(scaling) + "' is not supported (none, linear)");
    }
    if (!(hp_.rope_scale > 0) || !(hp_.rope_base > 0) || !(hp_.norm_eps >= 0))
        fail(Status::bad_format, "rope.freq_base, rope.scaling.factor and rms epsilon must be positive");

    // ---- the tensor table: every weight, its expected shape, found and checked once
    uint64_t n_params = 0;
    auto get = [&](const std::string& name, std::initializer_list<int64_t> shape, bool required, bool float_only) {
        TensorView v;
        const gguf::TensorInfo* t = f.find_tensor(name);
        if (!t) {
            if (required) fail(Status::bad_format, "missing tensor '" + name + "'");
            return v;
        }
        v = f.view(*t);
        int d = 0;
        bool ok = true;
        for (int64_t want : shape) ok = ok && v.ne[size_t(d++)] == want;
        for (; d < 4; ++d) ok = ok && v.ne[size_t(d)] == 1;
        if (!ok) {
            std::string want = "[", got = "[";
            for (int64_t x : shape) want += std::to_string(x) + ",";
            for (int i = 0; i < v.n_dims; ++i) got += std::to_string(v.ne[size_t(i)]) + ",";
            want.back() = ']';
            got.back() = ']';
            fail(Status::bad_format, "tensor '" + name + "' has shape " + got + ", expected " + want);
        }
        const TypeInfo& ti = type_info(v.type);
        if (float_only ? v.type != DType::F32 : !ti.supported)
            fail(Status::unsupported, "tensor '" + name + "' has type " + ti.name + ", which is not supported " +
                                          (float_only ? "for norms and biases (F32 expected)" : "yet"));
        n_params += uint64_t(v.elements());
        return v;
    };

    const int E = hp_.n_embd, Q = hp_.q_dim(), KV = hp_.kv_dim(), F = hp_.n_ff;
    const gguf::TensorInfo* te = f.find_tensor("token_embd.weight");
    if (!te) fail(Status::bad_format, "missing tensor 'token_embd.weight'");
    hp_.n_vocab = int(te->ne[1]);
    if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens"); toks && toks->count != uint64_t(hp_.n_vocab))
        fail(Status::bad_format, "token_embd.weight has " + std::to_string(hp_.n_vocab) + " rows but the vocabulary has " +
                                     std::to_string(toks->count) + " tokens");
    w_.tok_embd = get("token_embd.weight", {E, hp_.n_vocab}, true, false);
    w_.output_norm = get("output_norm.weight", {E}, true, true);
    w_.output = get("output.weight", {E, hp_.n_vocab}, false, false);
    w_.tied_output = w_.output.data == nullptr;
    if (w_.tied_output) w_.output = w_.tok_embd;
    w_.layers.resize(size_t(hp_.n_layer));
    for (int l = 0; l < hp_.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        LlamaLayer& L = w_.layers[size_t(l)];
        L.attn_norm = get(p + "attn_norm.weight", {E}, true, true);
        L.wq = get(p + "attn_q.weight", {E, Q}, true, false);
        L.wk = get(p + "attn_k.weight", {E, KV}, true, false);
        L.wv = get(p + "attn_v.weight", {E, KV}, true, false);
        L.wo = get(p + "attn_output.weight", {Q, E}, true, false);
        if (hp_.qkv_bias) {
            L.bq = get(p + "attn_q.bias", {Q}, true, true);
            L.bk = get(p + "attn_k.bias", {KV}, true, true);
            L.bv = get(p + "attn_v.bias", {KV}, true, true);
        }
        L.ffn_norm = get(p + "ffn_norm.weight", {E}, true, true);
        L.w_gate = get(p + "ffn_gate.weight", {E, F}, true, false);
        L.w_up = get(p + "ffn_up.weight", {E, F}, true, false);
        L.w_down = get(p + "ffn_down.weight", {F, E}, true, false);
    }
    n_params_ = n_params;

    inv_freq_.resize(size_t(hp_.n_rot / 2));
    for (int i = 0; i < hp_.n_rot / 2; ++i)
        inv_freq_[size_t(i)] = float(std::pow(double(hp_.rope_base), -2.0 * i / hp_.n_rot));
}

std::vector<const TensorView*> LlamaModel::matmul_weights() const {
    std::vector<const TensorView*> v;
    for (const LlamaLayer& L : w_.layers)
        for (const TensorView* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) v.push_back(t);
    if (!w_.tied_output) v.push_back(&w_.output);
    return v;
}

std::vector<TensorView*> LlamaModel::matmul_weights() {
    std::vector<TensorView*> v;
    for (const TensorView* t : std::as_const(*this).matmul_weights()) v.push_back(const_cast<TensorView*>(t));
    return v;
}

size_t LlamaScratch::bytes() const {
    return (x.size() + xn.size() + q.size() + k.size() + v.size() + att.size() + gate.size() + up.size() +
            scores.size() + rope.size()) * sizeof(float) + xq.size() + xbf.size() * sizeof(uint16_t) +
           pages.size() * sizeof(const float*) + pages16.size() * sizeof(const uint16_t*);
}

LlamaScratch LlamaModel::make_scratch(int max_tokens, int max_ctx, int n_workers) const {
    LlamaScratch s;
    s.max_tokens = max_tokens;
    s.max_ctx = max_ctx;
    s.n_workers = n_workers;
    const size_t T = size_t(max_tokens);
    s.x.resize(T * hp_.n_embd);
    s.xn.resize(T * hp_.n_embd);
    s.q.resize(T * hp_.q_dim());
    s.k.resize(T * hp_.kv_dim());
    s.v.resize(T * hp_.kv_dim());
    s.att.resize(T * hp_.q_dim());
    s.gate.resize(T * hp_.n_ff);
    s.up.resize(T * hp_.n_ff);
    const size_t group = size_t(hp_.n_head / hp_.n_head_kv);
    s.scores.resize(size_t(n_workers) * size_t(attend_tile()) * group * kernels::attend_score_stride(max_ctx));
    s.pages.resize(size_t(n_workers) * 2 * size_t(max_ctx / kPageSize + 2));
    s.pages16.resize(s.pages.size());
    s.rope.resize(T * hp_.n_rot);
    s.tiles.reserve(T + 1);
    // Encoded activations, for the widest row any matmul encodes (max of
    // n_embd, q_dim, n_ff), in the encodings the weights need: Q8_0 for
    // quantized weights, BF16 for BF16x16 ones (Model::start_repack); none for F32.
    const int64_t widest = std::max({hp_.n_embd, hp_.q_dim(), hp_.n_ff});
    bool q8_acts = false, bf16_acts = false;
    auto need = [&](const TensorView& t) {
        const DType at = act_type(t);
        q8_acts = q8_acts || at == DType::Q8_0;
        bf16_acts = bf16_acts || at == DType::BF16;
    };
    for (const TensorView* t : matmul_weights()) need(*t);
    need(w_.output);  // (matmul_weights() leaves out a tied output: the token embedding)
    if (q8_acts) s.xq.resize(T * row_bytes(DType::Q8_0, widest));
    if (bf16_acts) s.xbf.resize(T * size_t(widest));
    return s;
}

void LlamaModel::for_rows(int nt, int64_t work, ThreadPool& pool, const RowFn& fn) {
    if (work < (int64_t(1) << 16)) {  // small: the calling thread alone (waking the pool costs more)
        for (int t = 0; t < nt; ++t) fn(t);
        return;
    }
    // Runs of consecutive rows of guided sizes, not one task per row: a
    // task's claim is a cache line passed between cores, and rows next to
    // each other share lines of their outputs (one task per row: a 110M
    // prefill's per-row regions took twice as long on 2 threads as on 1).
    int cut[65];
    int n = 0;
    cut[0] = 0;
    const int min_run = std::max(1, nt / 32);
    while (cut[n] < nt) {
        cut[n + 1] = std::min(nt, cut[n] + int(guided_chunk(nt - cut[n], pool.size(), 1, min_run)));
        ++n;
    }
    pool.parallel_for(n, [&](int64_t i, int) {
        for (int t = cut[i]; t < cut[i + 1]; ++t) fn(t);
    });
}

void LlamaModel::matmul(std::initializer_list<MatOut> outs, const float* x, int nt, int ldx, LlamaScratch& s,
                        ThreadPool& pool, const kernels::KernelTable& kt, const RowFn* pre) const {
    // Activations are encoded once for every weight that reads them (Q, K and V
    // share one input, as do gate and up): Q8_0 for integer kernels, BF16 for
    // BF16x16 weights (VDPBF16PS), else F32 as they are.
    const int64_t n = outs.begin()->w->cols();
    const size_t xs_f32 = size_t(ldx) * sizeof(float), xs_q8 = row_bytes(DType::Q8_0, n), xs_bf16 = size_t(n) * 2;
    bool need_q8 = false, need_bf16 = false;
    for (const MatOut& o : outs) {
        const DType at = act_type(*o.w);
        need_q8 = need_q8 || at == DType::Q8_0;
        need_bf16 = need_bf16 || at == DType::BF16;
    }
    if ((need_bf16 && s.xbf.size() < size_t(nt) * size_t(n)) || (need_q8 && s.xq.size() < size_t(nt) * xs_q8))
        fail(Status::internal, "forward: the activation scratch lacks an encoding these weights need");
    uint8_t* xq = s.xq.data();
    uint16_t* xbf = s.xbf.data();
    auto encode_row = [&](int t) {
        if (pre) (*pre)(t);
        if (need_q8) kt.quantize_q8_0(x + int64_t(t) * ldx, xq + size_t(t) * xs_q8, n);
        if (need_bf16) kt.encode_bf16(x + int64_t(t) * ldx, xbf + size_t(t) * size_t(n), n);
    };
    if (need_q8 || need_bf16 || pre) for_rows(nt, int64_t(nt) * n, pool, encode_row);

    // One region over all weights' row chunks, each a multiple of 16 rows
    // (the kernels' tile; for BF16x16 the table's bf16_x16_rows), of guided sizes (guided_chunk: the
    // last chunks are small, so neither thread waits long at the end: a
    // 2-thread decode waited 9% of its time with 4 equal chunks per thread,
    // 4% now). A chunk never spans two weights.
    struct Task { const MatOut* o; int64_t a, e; };
    constexpr int kMaxTasks = 96;
    Task tasks[kMaxTasks];
    int n_tasks = 0;
    int64_t total = 0;
    for (const MatOut& o : outs) total += std::max<int64_t>(0, (o.r1 < 0 ? o.w->rows() : o.r1) - o.r0);
    const int64_t unit = need_bf16 && !need_q8 ? kt.bf16_x16_rows : 16;
    const int64_t min_chunk = matmul_min_chunk(total, nt, unit);
    int64_t left = total;
    for (const MatOut& o : outs) {
        const int64_t end = o.r1 < 0 ? o.w->rows() : o.r1;
        for (int64_t a = o.r0; a < end;) {
            // (at most total / min_chunk + outs.size() chunks: fewer than kMaxTasks)
            if (n_tasks == kMaxTasks) fail(Status::internal, "forward: too many row chunks");
            const int64_t e = std::min(end, a + guided_chunk(left, pool.size(), unit, min_chunk));
            tasks[n_tasks++] = {&o, a, e};
            left -= e - a;
            a = e;
        }
    }
    auto run = [&](int64_t i, int) {
        const Task& t = tasks[i];
        const TensorView& w = *t.o->w;
        // The weight's type and layout as the kernel reads them: its repacked
        // copy's (ready, or made here) where it has one, else as stored.
        const DType wt = w.repacked ? w.repacked->type : w.type;
        const DType at = act_type(w);
        kernels::MatmulFn mm = w.repacked ? kt.matmul_x16[size_t(wt)] : kt.matmul[size_t(wt)];
        const uint8_t* W = w.data;
        int64_t a = t.a, e = t.e;
        float* Y = t.o->y;
        if (w.repacked) {
            if (w.repacked->ready.load(std::memory_order_acquire)) {
                W = w.repacked->data;
            } else {
                // The background copy has not reached this weight yet: interleave
                // this task's rows here, into the same bytes the copy will hold.
                const size_t rs = w.row_stride();
                auto* buf = static_cast<uint8_t*>(kernels::kernel_scratch(7, size_t(e - a) * rs));
                for (int64_t r = a; r < e; r += 16) kernels::repack_group(w, w.data + size_t(r) * rs, buf + size_t(r - a) * rs);
                W = buf;
                Y += a;
                e -= a;
                a = 0;
            }
        }
        // Panels of activation rows: a panel stays in cache while the chunk's
        // weight rows stream past it (kernels are batch-invariant, so the split
        // does not change results).
        const uint8_t* X = at == DType::Q8_0 ? xq : at == DType::BF16 ? reinterpret_cast<const uint8_t*>(xbf)
                                                                       : reinterpret_cast<const uint8_t*>(x);
        const size_t xs = at == DType::Q8_0 ? xs_q8 : at == DType::BF16 ? xs_bf16 : xs_f32;
        // The BF16x16 kernel slices its activation rows itself while it
        // prefetches the next weights, so it takes larger panels: the chunk's
        // weights then stream from memory once per 256 rows, not per 64. The
        // other x16 kernels take the table's x16_panel_rows.
        const int panel = at == DType::BF16 ? 256 : w.repacked ? kt.x16_panel_rows : 64;
        for (int p = 0; p < nt; p += panel)
            mm(n, W, w.row_stride(), a, e, X + size_t(p) * xs, xs, std::min(panel, nt - p),
               Y + int64_t(p) * t.o->ldy, t.o->ldy);
    };
    // Small products (a tiny model, or a narrow matrix at decode) run on the
    // calling thread: waking the pool costs more than it saves, and a busy
    // second core would make every region wait for it. Each task writes its
    // own outputs, so the split never changes results.
    constexpr int64_t kInlineMacs = int64_t(1) << 18;
    if (total * n * int64_t(nt) < kInlineMacs) {
        for (int64_t i = 0; i < n_tasks; ++i) run(i, 0);
    } else {
        pool.parallel_for(n_tasks, run);
    }
}

std::shared_ptr<KvPool> LlamaModel::make_pool(int pages_per_slab, int max_pages, DType kv_type) const {
    return std::make_shared<KvPool>(hp_.n_layer, hp_.n_head_kv, hp_.head_dim, kPageSize, pages_per_slab, max_pages,
                                    kv_type);
}

KvCache LlamaModel::make_cache(int n_ctx, DType kv_type) const {
    const int pages = (n_ctx + kPageSize - 1) / kPageSize;
    KvCache c(make_pool(pages, pages, kv_type), n_ctx);
    c.prepare(0, n_ctx);
    return c;
}

void LlamaModel::shift_cache(KvCache& c, int keep, int drop, int n) const {
    if (keep < 0 || drop < 1 || keep + drop > n || n > c.pages() * kPageSize)
        fail(Status::internal, "shift_cache: bad range");
    c.prepare(keep, n - drop);  // the destination becomes this cache's own (copy-on-write)
    // Every key moves back `drop` positions: rotating it by -drop * inv_freq
    // composes with the rotation it got at p into the one for p - drop.
    const int half = hp_.n_rot / 2, KV = hp_.kv_dim(), hd = hp_.head_dim;
    std::vector<float> r(static_cast<size_t>(hp_.n_rot)), k(static_cast<size_t>(KV));
    std::vector<uint8_t> vrow(c.pool()->row_bytes());
    for (int i = 0; i < half; ++i) {
        const double a = -double(drop) / hp_.rope_scale * inv_freq_[size_t(i)];
        r[size_t(2 * i)] = float(std::cos(a));
        r[size_t(2 * i + 1)] = float(std::sin(a));
    }
    for (int l = 0; l < hp_.n_layer; ++l)
        for (int p = keep + drop; p < n; ++p) {
            // (an F16 key is rotated in float and rounded again: one more rounding per shift)
            c.read_k(l, p, k.data());
            for (int h = 0; h < hp_.n_head_kv; ++h)
                rotate_pairs(k.data() + size_t(h) * size_t(hd), r.data(), half, hp_.rope_order);
            c.write_k(l, p - drop, k.data());
            c.get_v(l, p, vrow.data());
            c.put_v(l, p - drop, vrow.data());
        }
    c.truncate(n - drop);
}

void LlamaModel::forward(const Batch& b, std::span<KvCache* const> caches, LlamaScratch& s, float* logits,
                         ThreadPool& pool, const kernels::KernelTable& kt) const {
    if (b.size() == 0) return;
    begin(b, caches, s, pool);
    for (int l = 0; l < hp_.n_layer; ++l) layer(l, b, caches, s, pool, kt);
    finish(b, s, logits, pool, kt);
}

void LlamaModel::begin(const Batch& b, std::span<KvCache* const> caches, LlamaScratch& s, ThreadPool& pool) const {
    const int nt = int(b.size());
    if (nt > s.max_tokens) fail(Status::internal, "forward: batch larger than the scratch");
    for (int t = 0; t < nt; ++t) {
        const size_t i = size_t(t);
        if (b.seq[i] < 0 || size_t(b.seq[i]) >= caches.size() || b.pos[i] < 0 || b.pos[i] >= s.max_ctx ||
            b.pos[i] >= caches[size_t(b.seq[i])]->pages() * kPageSize || b.token[i] < 0 || b.token[i] >= hp_.n_vocab)
            fail(Status::internal, "forward: batch entry out of range (unprepared cache?)");
    }
    const int E = hp_.n_embd, half = hp_.n_rot / 2;
    s.ffn_pending = false;
    // Per entry: its row of token_embd, and the rope angles of its position
    // (cos/sin of pos/scale * inv_freq[i]).
    for_rows(nt, int64_t(nt) * (E + 16 * half), pool, [&](int t) {
        const TensorView& te = w_.tok_embd;
        kernels::dequantize_ref(te.type, te.row(b.token[size_t(t)]), s.x.data() + size_t(t) * E, E);
        const double p = double(b.pos[size_t(t)]) / hp_.rope_scale;
        float* r = s.rope.data() + size_t(t) * hp_.n_rot;
        for (int i = 0; i < half; ++i) {
            const double a = p * inv_freq_[size_t(i)];
            r[2 * i] = float(std::cos(a));
            r[2 * i + 1] = float(std::sin(a));
        }
    });
}

void LlamaModel::layer(int l, const Batch& b, std::span<KvCache* const> caches, LlamaScratch& s, ThreadPool& pool,
                       const kernels::KernelTable& kt) const {
    const int nt = int(b.size());
    if (s.n_workers < pool.size()) fail(Status::internal, "forward: scratch has fewer worker slots than the pool");
    const int E = hp_.n_embd, Q = hp_.q_dim(), KV = hp_.kv_dim(), F = hp_.n_ff, hd = hp_.head_dim;
    const int group = hp_.n_head / hp_.n_head_kv;
    const float att_scale = 1.0f / std::sqrt(float(hd));
    const int half = hp_.n_rot / 2;
    auto rope = [&](float* vec, int t) { rotate_pairs(vec, s.rope.data() + size_t(t) * hp_.n_rot, half, hp_.rope_order); };
    const LlamaLayer& L = w_.layers[size_t(l)];
    float* const x = s.x.data();
    float* const xn = s.xn.data();
    // ---- attention. Row t's input: the previous layer's FFN output added to
    // the residual stream (deferred to here, see below), then the norm.
    const bool pending = s.ffn_pending;
    const auto attn_in_fn = [&](int t) {
        float* xt = x + size_t(t) * E;
        if (pending) kt.axpy_f32(1.0f, xn + size_t(t) * E, xt, E);
        kt.rmsnorm(xt, reinterpret_cast<const float*>(L.attn_norm.data), xn + size_t(t) * E, E, hp_.norm_eps);
    };
    const RowFn attn_in(attn_in_fn);
    s.ffn_pending = false;
    matmul({{&L.wq, s.q.data(), Q}, {&L.wk, s.k.data(), KV}, {&L.wv, s.v.data(), KV}}, xn, nt, E, s, pool, kt, &attn_in);
    for_rows(nt, int64_t(nt) * (Q + 2 * KV), pool, [&](int t) {
        float* q = s.q.data() + size_t(t) * Q;
        float* k = s.k.data() + size_t(t) * KV;
        float* v = s.v.data() + size_t(t) * KV;
        if (hp_.qkv_bias) {
            kt.axpy_f32(1.0f, reinterpret_cast<const float*>(L.bq.data), q, Q);
            kt.axpy_f32(1.0f, reinterpret_cast<const float*>(L.bk.data), k, KV);
            kt.axpy_f32(1.0f, reinterpret_cast<const float*>(L.bv.data), v, KV);
        }
        for (int h = 0; h < hp_.n_head; ++h) rope(q + h * hd, t);
        for (int h = 0; h < hp_.n_head_kv; ++h) rope(k + h * hd, t);
        KvCache& c = *caches[size_t(b.seq[size_t(t)])];
        const int pos = b.pos[size_t(t)];
        // each KV head's value row into its own run of the page, and its key
        // transposed (element d kPageSize elements after element d - 1)
        for (int g = 0; g < hp_.n_head_kv; ++g) {
            const float* kg = k + size_t(g) * size_t(hd);
            const float* vg = v + size_t(g) * size_t(hd);
            if (c.type() == DType::F16) {
                uint16_t* kd = reinterpret_cast<uint16_t*>(c.k(l, pos, g));
                uint16_t k16[256];
                for (int d0 = 0; d0 < hd; d0 += 256) {
                    const int n = std::min(256, hd - d0);
                    kt.encode_f16(kg + d0, k16, n);
                    for (int d = 0; d < n; ++d) kd[size_t(d0 + d) * kPageSize] = k16[d];
                }
                kt.encode_f16(vg, reinterpret_cast<uint16_t*>(c.v(l, pos, g)), hd);
            } else {
                float* kd = reinterpret_cast<float*>(c.k(l, pos, g));
                for (int d = 0; d < hd; ++d) kd[size_t(d) * kPageSize] = kg[d];
                std::memcpy(c.v(l, pos, g), vg, sizeof(float) * size_t(hd));
            }
        }
    });
    // Causal attention. Each entry sees its own sequence's positions 0..pos
    // (all written above, earlier batch entries included). Consecutive
    // entries of one sequence (a prefill) form tiles of attend_tile() queries:
    // one kernel call takes a tile's query heads that share a KV head, so each
    // key and value row read serves all of them. With many tiles (batched
    // sessions, prefill) a task is one tile and walks its KV heads in turn, so
    // the rows of K and V it streams from memory serve every head while they
    // are in L2; with few (one session decoding) a task is one (tile, KV head)
    // so all threads work. Short work runs on the calling thread: waking the
    // pool would cost more. A query's result does not depend on its tile.
    int64_t att_work = 0;
    for (int t = 0; t < nt; ++t) att_work += int64_t(b.pos[size_t(t)] + 1) * Q;
    const size_t max_pages = s.pages.size() / (2 * size_t(s.n_workers));
    // (checked here, on the calling thread: a task must not throw)
    for (int t = 0; t < nt; ++t) {
        const int n_pos = b.pos[size_t(t)] + 1;
        if (size_t((n_pos + kPageSize - 1) / kPageSize) > max_pages || size_t(n_pos) > size_t(s.max_ctx))
            fail(Status::internal, "forward: attention scratch is smaller than the context");
    }
    // Tiles of at most attend_tile() queries, and at least 8 per thread where
    // the batch has enough queries: a few long tiles would leave threads idle.
    const int tile_max = std::max(1, std::min(attend_tile(), (nt + 8 * pool.size() - 1) / (8 * pool.size())));
    std::vector<int>& tiles = s.tiles;  // first entry of each tile, then nt
    tiles.clear();
    for (int t = 0; t < nt; ++t)
        if (tiles.empty() || t - tiles.back() >= tile_max || b.seq[size_t(t)] != b.seq[size_t(t - 1)] ||
            b.pos[size_t(t)] != b.pos[size_t(t - 1)] + 1)
            tiles.push_back(t);
    const int n_tiles = int(tiles.size());
    tiles.push_back(nt);
    auto attend = [&](int tile, int g, int worker) {
        const int t0 = tiles[size_t(tile)], T = tiles[size_t(tile) + 1] - t0;
        const KvCache& c = *caches[size_t(b.seq[size_t(t0)])];
        const int n_pos = b.pos[size_t(t0 + T - 1)] + 1;
        const int n_pages = (n_pos + kPageSize - 1) / kPageSize;
        const size_t h0 = size_t(g) * size_t(group) * size_t(hd);
        float* sc = s.scores.data() + size_t(worker) * (s.scores.size() / size_t(s.n_workers));
        const float* qt = s.q.data() + size_t(t0) * Q + h0;
        float* ot = s.att.data() + size_t(t0) * Q + h0;
        // This task's page tables, of the cache's element type.
        auto run = [&]<class E>(std::vector<const E*>& tables, auto fn) {
            const E** kp = tables.data() + size_t(worker) * 2 * max_pages;
            const E** vp = kp + max_pages;
            for (int pg = 0; pg < n_pages; ++pg) {
                kp[pg] = reinterpret_cast<const E*>(c.k(l, pg * kPageSize, g));
                vp[pg] = reinterpret_cast<const E*>(c.v(l, pg * kPageSize, g));
            }
            fn(qt, size_t(Q), T, group, hd, kp, vp, kPageSize, size_t(hd), n_pos, att_scale, sc, ot, size_t(Q));
        };
        if (c.type() == DType::F16) run(s.pages16, kt.attend_f16);
        else run(s.pages, kt.attend);
    };
    const int n_kv = hp_.n_head_kv;
    if (att_work < (int64_t(1) << 16)) {
        for (int t = 0; t < n_tiles; ++t)
            for (int g = 0; g < n_kv; ++g) attend(t, g, 0);
    } else if (n_tiles >= 2 * int(pool.size())) {
        // the last tiles first: in a prompt they see the most positions, and a
        // thread that takes the longest last would keep the others waiting
        pool.parallel_for(n_tiles, [&](int64_t t, int worker) {
            for (int g = 0; g < n_kv; ++g) attend(n_tiles - 1 - int(t), g, worker);
        });
    } else {
        pool.parallel_for(int64_t(n_tiles) * n_kv,
                          [&](int64_t task, int worker) { attend(int(task / n_kv), int(task % n_kv), worker); });
    }
    matmul({{&L.wo, xn, E}}, s.att.data(), nt, Q, s, pool, kt);

    // ---- feed-forward (SwiGLU). Row t's input: the attention output added
    // to the residual stream, then the norm.
    const auto ffn_in_fn = [&](int t) {
        float* xt = x + size_t(t) * E;
        kt.axpy_f32(1.0f, xn + size_t(t) * E, xt, E);
        kt.rmsnorm(xt, reinterpret_cast<const float*>(L.ffn_norm.data), xn + size_t(t) * E, E, hp_.norm_eps);
    };
    const RowFn ffn_in(ffn_in_fn);
    matmul({{&L.w_gate, s.gate.data(), F}, {&L.w_up, s.up.data(), F}}, xn, nt, E, s, pool, kt, &ffn_in);
    const auto act_fn = [&](int t) {
        float* g = s.gate.data() + size_t(t) * F;
        kt.swiglu(g, s.up.data() + size_t(t) * F, g, F);
    };
    const RowFn act(act_fn);
    matmul({{&L.w_down, xn, E}}, s.gate.data(), nt, F, s, pool, kt, &act);
    // The FFN output stays in xn: the next layer's first step (or finish)
    // adds it to x, in the same region as its norm.
    s.ffn_pending = true;
}

void LlamaModel::finish(const Batch& b, LlamaScratch& s, float* logits, ThreadPool& pool,
                        const kernels::KernelTable& kt) const {
    finish_rows(b, s, logits, pool, kt, 0, hp_.n_vocab);
}

void LlamaModel::finish_rows(const Batch& b, LlamaScratch& s, float* logits, ThreadPool& pool,
                             const kernels::KernelTable& kt, int64_t row0, int64_t row1) const {
    const int nt = int(b.size()), E = hp_.n_embd;
    if (row0 == 0 && s.ffn_pending) {  // the last layer's FFN output into the residual stream
        for_rows(nt, int64_t(nt) * E, pool,
                 [&](int t) { kt.axpy_f32(1.0f, s.xn.data() + size_t(t) * E, s.x.data() + size_t(t) * E, E); });
        s.ffn_pending = false;
    }
    int n_out = 0;
    for (int t = 0; t < nt; ++t) {
        if (!b.logits[size_t(t)]) continue;
        // final norm once, written over xn rows in output order
        if (row0 == 0)
            kt.rmsnorm(s.x.data() + size_t(t) * E, reinterpret_cast<const float*>(w_.output_norm.data),
                       s.xn.data() + size_t(n_out) * E, E, hp_.norm_eps);
        ++n_out;
    }
    if (n_out > 0) matmul({{&w_.output, logits, hp_.n_vocab, row0, row1}}, s.xn.data(), n_out, E, s, pool, kt);
}

}  // namespace ember
