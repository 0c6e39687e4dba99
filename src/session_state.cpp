// Savegames: a session serialised to bytes and restored in another process.
//
// Format v1 and v2, little-endian:
//   "EMBRSAVE"  u32 version  u32 flags (1 = KV included, 2 = logits included,
//               4 = the KV is float16: version 2; a float32 KV is written as v1)
//   u64 model content hash
//   u32 n_ctx  i32 n_keep  u32 n_history  u32 n_evaluated  u32 n_vocab
//   sampler: f32 temperature, i32 top_k, f32 top_p, f32 min_p, f32 repeat_penalty,
//            i32 repeat_last_n, u64 seed, u64 rng[4]
//   i32 tokens[n_history]
//   if KV:     u32 n_layer, u32 kv_dim, then per layer K[n_evaluated][kv_dim], V[...] as f32 (f16 with flag 4)
//   if logits: f32 logits[n_vocab]
//   u64 checksum of every byte before it
// Without KV, load keeps the history and re-evaluates it on the next request.
// A KV saved in one type loads into a session of the other (converted: f16 to
// f32 exactly, f32 to f16 rounded to nearest as when written).
#include <cstring>

#include "ember/kernels/quant_ref.hpp"
#include "ember/session.hpp"

namespace ember {

namespace {

constexpr char kMagic[8] = {'E', 'M', 'B', 'R', 'S', 'A', 'V', 'E'};
constexpr uint32_t kVersion = 2;  // newest written and read; v1 is read too

uint64_t checksum(const uint8_t* p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

class Writer {
public:
    template <class T>
    void put(T v) {
        uint8_t tmp[sizeof v];
        std::memcpy(tmp, &v, sizeof v);
        b.insert(b.end(), tmp, tmp + sizeof v);
    }
    void put_bytes(const void* p, size_t n) {
        const auto* c = static_cast<const uint8_t*>(p);
        b.insert(b.end(), c, c + n);
    }
    std::vector<uint8_t> b;
};

class Reader {
public:
    explicit Reader(std::span<const uint8_t> s) : s_(s) {}
    template <class T>
    T get() {
        T v;
        std::memcpy(&v, take(sizeof v), sizeof v);
        return v;
    }
    const uint8_t* take(size_t n) {
        if (n > s_.size() - off_) fail(Status::bad_format, "savegame is truncated");
        const uint8_t* p = s_.data() + off_;
        off_ += n;
        return p;
    }
    size_t off() const { return off_; }

private:
    std::span<const uint8_t> s_;
    size_t off_ = 0;
};

}  // namespace

std::vector<uint8_t> Session::save(bool with_kv) const {
    const LlamaHParams& hp = model_->hparams();
    Writer w;
    w.put_bytes(kMagic, 8);
    const bool kv16 = with_kv && cache_.type() == DType::F16;
    w.put<uint32_t>(kv16 ? 2u : 1u);
    const bool logits = with_kv && has_logits_;
    w.put<uint32_t>((with_kv ? 1u : 0u) | (logits ? 2u : 0u) | (kv16 ? 4u : 0u));
    w.put<uint64_t>(model_->content_hash());
    w.put<uint32_t>(uint32_t(n_ctx_));
    w.put<int32_t>(n_keep_);
    w.put<uint32_t>(uint32_t(history_.size()));
    w.put<uint32_t>(uint32_t(with_kv ? n_eval_ : 0));
    w.put<uint32_t>(uint32_t(hp.n_vocab));
    const SamplerParams& sp = sampler_.params();
    w.put<float>(sp.temperature);
    w.put<int32_t>(sp.top_k);
    w.put<float>(sp.top_p);
    w.put<float>(sp.min_p);
    w.put<float>(sp.repeat_penalty);
    w.put<int32_t>(sp.repeat_last_n);
    w.put<uint64_t>(sp.seed);
    for (uint64_t x : const_cast<Session*>(this)->sampler_.rng().state()) w.put<uint64_t>(x);
    w.put_bytes(history_.data(), history_.size() * sizeof(int32_t));
    if (with_kv) {
        w.put<uint32_t>(uint32_t(hp.n_layer));
        w.put<uint32_t>(uint32_t(hp.kv_dim()));
        // Rows of all heads in order (the format does not depend on the pages' layout).
        std::vector<uint8_t> row(cache_.pool()->row_bytes());
        for (int l = 0; l < hp.n_layer; ++l) {
            for (int p = 0; p < n_eval_; ++p) cache_.get_k(l, p, row.data()), w.put_bytes(row.data(), row.size());
            for (int p = 0; p < n_eval_; ++p) cache_.get_v(l, p, row.data()), w.put_bytes(row.data(), row.size());
        }
    }
    if (logits) w.put_bytes(logits_.data(), logits_.size() * sizeof(float));
    w.put<uint64_t>(checksum(w.b.data(), w.b.size()));
    return std::move(w.b);
}

void Session::load(std::span<const uint8_t> bytes) {
    const LlamaHParams& hp = model_->hparams();
    if (bytes.size() < 16 || std::memcmp(bytes.data(), kMagic, 8) != 0)
        fail(Status::bad_format, bytes.size() < 8 ? "savegame is truncated" : "not an emberlm savegame (bad magic)");
    if (bytes.size() < 8 + 4 + 4 + 8 + 8) fail(Status::bad_format, "savegame is truncated");
    uint64_t stored;
    std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
    Reader r(bytes);
    r.take(8);
    const uint32_t version = r.get<uint32_t>();
    if (version < 1 || version > kVersion)
        fail(Status::unsupported, "savegame version " + std::to_string(version) + " is not supported (this reads 1 to " +
                                      std::to_string(kVersion) + ")");
    const uint32_t flags = r.get<uint32_t>();
    const bool kv16 = (flags & 4u) != 0;
    if ((flags & ~7u) != 0 || (kv16 && (version < 2 || !(flags & 1u))))
        fail(Status::bad_format, "savegame is corrupt (flags)");
    const uint64_t hash = r.get<uint64_t>();
    const uint32_t n_ctx = r.get<uint32_t>();
    const int32_t n_keep = r.get<int32_t>();
    const uint32_t n_hist = r.get<uint32_t>();
    const uint32_t n_eval = r.get<uint32_t>();
    const uint32_t n_vocab = r.get<uint32_t>();
    // Sizes first (a truncated file says so), then the checksum (tampering), then the model.
    size_t expect = r.off() + 4 * 6 + 8 + 32 + size_t(n_hist) * 4;
    const size_t saved_elem = kv16 ? 2 : 4;
    if (flags & 1u) expect += 8 + size_t(2) * hp.n_layer * n_eval * size_t(hp.kv_dim()) * saved_elem;
    if (flags & 2u) expect += size_t(n_vocab) * 4;
    expect += 8;
    if (n_hist > (1u << 24) || n_eval > n_hist) fail(Status::bad_format, "savegame is corrupt (token counts)");
    if (bytes.size() < expect) fail(Status::bad_format, "savegame is truncated");
    if (bytes.size() > expect || checksum(bytes.data(), bytes.size() - 8) != stored)
        fail(Status::bad_format, "savegame checksum mismatch: the data was modified or corrupted");
    if (hash != model_->content_hash())
        fail(Status::invalid_argument, "savegame was made with a different model (content hash differs)");
    if (n_hist > uint32_t(n_ctx_) || n_vocab != uint32_t(hp.n_vocab))
        fail(Status::invalid_argument, "savegame holds " + std::to_string(n_hist) + " tokens but this session's n_ctx is " +
                                           std::to_string(n_ctx_));
    (void)n_ctx;
    SamplerParams sp;
    sp.temperature = r.get<float>();
    sp.top_k = r.get<int32_t>();
    sp.top_p = r.get<float>();
    sp.min_p = r.get<float>();
    sp.repeat_penalty = r.get<float>();
    sp.repeat_last_n = r.get<int32_t>();
    sp.seed = r.get<uint64_t>();
    std::array<uint64_t, 4> rng;
    for (auto& x : rng) x = r.get<uint64_t>();
    std::vector<int32_t> hist(n_hist);
    std::memcpy(hist.data(), r.take(size_t(n_hist) * 4), size_t(n_hist) * 4);
    for (int32_t t : hist)
        if (t < 0 || t >= hp.n_vocab) fail(Status::bad_format, "savegame holds an out-of-range token id");
    Sampler sampler(sp, hp.n_vocab);  // validates the settings
    sampler.rng().set_state(rng);

    // Everything checked: now change the session.
    KvCache cache(pool_, n_ctx_);
    int evaluated = 0;
    if (flags & 1u) {
        if (r.get<uint32_t>() != uint32_t(hp.n_layer) || r.get<uint32_t>() != uint32_t(hp.kv_dim()))
            fail(Status::bad_format, "savegame KV geometry does not match the model");
        cache.prepare(0, int(n_eval));
        const int kv = hp.kv_dim();
        const size_t row = size_t(kv) * saved_elem;
        if (kv16 == (cache.type() == DType::F16)) {  // the same type: bytes as they are
            for (int l = 0; l < hp.n_layer; ++l) {
                for (uint32_t p = 0; p < n_eval; ++p) cache.put_k(l, int(p), r.take(row));
                for (uint32_t p = 0; p < n_eval; ++p) cache.put_v(l, int(p), r.take(row));
            }
        } else {  // through float (the saved row copied out first: the buffer may be unaligned)
            std::vector<float> f(static_cast<size_t>(kv));
            std::vector<uint8_t> saved(row);
            auto to_float = [&](const uint8_t* src) {
                std::memcpy(saved.data(), src, row);
                kernels::dequantize_ref(kv16 ? DType::F16 : DType::F32, saved.data(), f.data(), kv);
            };
            for (int l = 0; l < hp.n_layer; ++l) {
                for (uint32_t p = 0; p < n_eval; ++p) to_float(r.take(row)), cache.write_k(l, int(p), f.data());
                for (uint32_t p = 0; p < n_eval; ++p) to_float(r.take(row)), cache.write_v(l, int(p), f.data());
            }
        }
        evaluated = int(n_eval);
    }
    const bool logits = (flags & 2u) && evaluated == int(n_hist);
    if (flags & 2u) {
        const uint8_t* p = r.take(size_t(n_vocab) * 4);
        if (logits) std::memcpy(logits_.data(), p, size_t(n_vocab) * 4);
    }
    cache_ = std::move(cache);
    history_ = std::move(hist);
    n_eval_ = evaluated;
    has_logits_ = logits;
    n_keep_ = n_keep;
    sampler_ = std::move(sampler);
    params_.sampling = sp;
}

}  // namespace ember
