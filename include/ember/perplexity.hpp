// ember/perplexity.hpp — how well a model predicts a text.
//
// The convention (the trainer in tools/train/train.py computes exactly the same):
//   1. The text is tokenized as one string: BOS first (when the model adds one
//      to a prompt: tokenizer.ggml.add_bos_token, true unless the file says
//      otherwise), then the text's tokens (dummy-prefix space included, as encode()
//      always does; special-token strings in the text are plain text).
//   2. The ids are cut into consecutive, non-overlapping windows of n_ctx ids;
//      the last window may be shorter. A window of one id is skipped.
//   3. Each window is evaluated from an empty context, its first id at
//      position 0. Every id of a window except its first is scored: its
//      log-probability under the model given the ids before it in the window
//      (log-softmax of the logits, in double precision).
//   4. perplexity = exp(-(sum of the scored log-probabilities) / (scored ids)).
// So a text of N ids in W windows scores N - W ids.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "ember/model.hpp"

namespace ember {

struct PerplexityResult {
    double perplexity = 0;  // exp(nll / n_scored)
    double nll = 0;         // total negative log-likelihood of the scored ids, in nats
    int64_t n_ids = 0;      // ids evaluated (BOS included)
    int64_t n_scored = 0;   // ids scored
    int64_t n_windows = 0;
    int n_ctx = 0;          // window length used
};

struct PerplexityParams {
    int n_ctx = 0;      // window length; 0 = the model's training context
    int n_batch = 128;  // ids per forward pass (bounds the logits buffer; does not change the result)
    // Called after each window with (windows done, windows in all); return true to cancel
    // (throws Status::cancelled).
    std::function<bool(int64_t, int64_t)> on_window;
};

// Perplexity of token ids as given (no BOS added). Throws invalid_argument for
// fewer than two ids, an id out of range, or n_ctx < 2.
PerplexityResult perplexity(const Model& model, std::span<const int32_t> ids, const PerplexityParams& params = {});

// Tokenizes `text` as described above, then perplexity(ids).
PerplexityResult perplexity_of_text(const Model& model, std::string_view text, const PerplexityParams& params = {});

}  // namespace ember
