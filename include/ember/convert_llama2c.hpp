// ember/convert_llama2c.hpp — llama2.c checkpoints to GGUF.
//
// A llama2.c checkpoint is a header of 7 int32 (dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared
// with the embedding — and seq_len) followed by float32 tensors; its tokenizer
// file holds max_token_length then, per token, a float32 score, an int32
// length and the bytes. The result is a `llama` GGUF with a SentencePiece
// vocabulary, in F32 or any supported type for the 2-D weights.
#pragma once

#include <string>

#include "ember/tensor.hpp"

namespace ember {

// Throws ember::Error: io_error for unreadable files, bad_format when the sizes
// in the header do not match the file.
void convert_llama2c(const std::string& checkpoint, const std::string& tokenizer, const std::string& out_gguf,
                     DType weight_type = DType::F32, const std::string& name = "");

}  // namespace ember
