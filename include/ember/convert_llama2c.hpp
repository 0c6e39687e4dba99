// ember/convert_llama2c.hpp — llama2.c checkpoints to GGUF.
//
// A llama2.c checkpoint is a header of 7 int32 (dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared
// with the embedding — and seq_len) followed by float32 tensors; its tokenizer
// file holds max_token_length then, per token, a float32 score, an int32
// length and the bytes. The tokenizer may instead be a SentencePiece model
// (a file whose name ends in ".model"), read through the sentencepiece
// library: pieces, scores and types (normal, unknown, control, unused, byte)
// as it reports them, its BOS/EOS/UNK/PAD ids. The result is a `llama` GGUF
// with a SentencePiece vocabulary, in F32 or any supported type for the 2-D
// weights, with rope base 10000 and RMSNorm epsilon 1e-5 (llama2.c's).
//
// emberlm (like llama.cpp) tokenizes a `llama` vocabulary with identity
// normalization and adds the dummy-prefix space itself
// (tokenizer.ggml.add_space_prefix = true); a SentencePiece model converted
// here should be a BPE model trained for that (tools/train/tokenizer.py).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ember/tensor.hpp"

namespace ember {

struct ConvertOptions {
    DType weight_type = DType::F32;  // 2-D weights whose rows divide into its blocks; the rest stay F32
    std::string name;                // general.name ("" = "llama2.c checkpoint")
    std::string license;             // general.license ("" = not written)
    std::string chat_template;       // tokenizer.chat_template, a Jinja template ("" = not written)
    // Further string metadata, written last in this order (so it may replace any key above).
    std::vector<std::pair<std::string, std::string>> meta;
};

// Throws ember::Error: io_error for unreadable files, bad_format when the sizes
// in the header do not match the file or the tokenizer's vocabulary does not
// match the checkpoint's, invalid_argument for an empty metadata key.
void convert_llama2c(const std::string& checkpoint, const std::string& tokenizer, const std::string& out_gguf,
                     const ConvertOptions& options);
void convert_llama2c(const std::string& checkpoint, const std::string& tokenizer, const std::string& out_gguf,
                     DType weight_type = DType::F32, const std::string& name = "");

}  // namespace ember
