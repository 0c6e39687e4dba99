#include "ember/perplexity.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ember/batch.hpp"
#include "ember/common.hpp"

namespace ember {

PerplexityResult perplexity(const Model& model, std::span<const int32_t> ids, const PerplexityParams& params) {
    const LlamaModel& arch = model.arch();
    const int n_vocab = model.hparams().n_vocab;
    const int n_ctx = params.n_ctx > 0 ? params.n_ctx : model.hparams().n_ctx_train;
    if (n_ctx < 2) fail(Status::invalid_argument, "perplexity: the window must hold at least 2 tokens");
    if (ids.size() < 2) fail(Status::invalid_argument, "perplexity: the text must have at least 2 tokens");
    for (int32_t id : ids)
        if (id < 0 || id >= n_vocab)
            fail(Status::invalid_argument, "perplexity: token id " + std::to_string(id) + " out of range");
    const int n_batch = std::clamp(params.n_batch, 1, n_ctx);

    KvCache cache = arch.make_cache(n_ctx, model.kv_type());  // every window overwrites the positions it reads
    LlamaScratch scratch = arch.make_scratch(n_batch, n_ctx, int(model.pool().size()));
    std::vector<float> logits(size_t(n_batch) * size_t(n_vocab));
    KvCache* caches[] = {&cache};
    Batch b;

    PerplexityResult r;
    r.n_ctx = n_ctx;
    r.n_ids = int64_t(ids.size());
    const int64_t n_windows = (int64_t(ids.size()) + n_ctx - 1) / n_ctx;
    for (int64_t w = 0; w < n_windows; ++w) {
        const size_t start = size_t(w) * size_t(n_ctx);
        const int len = int(std::min(ids.size() - start, size_t(n_ctx)));
        if (len >= 2) {
            ++r.n_windows;
            // Positions [0, len - 1) predict the ids at [1, len); the window's last id is only scored.
            for (int p0 = 0; p0 < len - 1; p0 += n_batch) {
                const int n = std::min(n_batch, len - 1 - p0);
                b.clear();
                for (int i = 0; i < n; ++i) b.add(ids[start + size_t(p0 + i)], p0 + i, 0, true);
                arch.forward(b, caches, scratch, logits.data(), model.pool(), model.kernels());
                for (int i = 0; i < n; ++i) {
                    const float* l = logits.data() + size_t(i) * size_t(n_vocab);
                    const int32_t next = ids[start + size_t(p0 + i + 1)];
                    double mx = l[0];
                    for (int v = 1; v < n_vocab; ++v) mx = std::max(mx, double(l[v]));
                    double sum = 0;
                    for (int v = 0; v < n_vocab; ++v) sum += std::exp(double(l[v]) - mx);
                    r.nll -= double(l[next]) - mx - std::log(sum);
                    ++r.n_scored;
                }
            }
        }
        if (params.on_window && params.on_window(w + 1, n_windows)) fail(Status::cancelled, "perplexity: cancelled");
    }
    r.perplexity = std::exp(r.nll / double(r.n_scored));
    return r;
}

PerplexityResult perplexity_of_text(const Model& model, std::string_view text, const PerplexityParams& params) {
    const Tokenizer& tok = model.tokenizer();
    const std::vector<int32_t> ids = tok.encode(text, tok.bos() >= 0 && tok.add_bos_default(), false);
    return perplexity(model, ids, params);
}

}  // namespace ember
