// ember/quantize.hpp — re-encodes a GGUF model's weights in another type
// (`ember quantize`).
//
// A scheme is either one weight type for every matrix ("q4_k", "q8_0", "f16",
// any type tensor.hpp marks supported) or a named mixture:
//
//   Q4_K_M  matrices Q4_K; output.weight (token_embd.weight when the output
//           is tied to it) Q6_K; attn_v.weight and ffn_down.weight Q6_K in the
//           first and last eighth of the layers and every third layer between
//   Q5_K_M  the same with Q5_K in place of Q4_K
//
// (llama.cpp's rules for these mixtures, so the files mean what users expect.)
// A plain type is pure: every matrix gets it, output.weight included. A matrix
// whose rows are not a multiple of the chosen type's block falls back to a
// type with 32-element blocks (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
// Q2_K/Q3_K/IQ4_XS -> IQ4_NL), and to F16 if even that does not divide it.
//
// Sources: matrices in F32, F16, BF16 or Q8_0 (a quantized source would be
// quantized twice: refused with Status::unsupported naming the tensor).
// One-dimensional tensors (norms, biases) are written as F32. Every metadata
// key is kept; general.file_type and general.quantization_version are set.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ember/tensor.hpp"

namespace ember {

struct QuantizeScheme {
    std::string name;        // as the user wrote it, upper-cased ("Q4_K_M", "Q6_K")
    DType base = DType::F32; // the type of most matrices
    bool mixture = false;    // Q4_K_M / Q5_K_M rules on top of `base`
    uint32_t file_type = 0;  // general.file_type (llama.cpp's enumeration)
};

// "q4_k_m", "Q5_K_M", or a supported type name in either case. Throws
// invalid_argument with the list of accepted names.
QuantizeScheme quantize_scheme(std::string_view name);

// The accepted names, for usage text: "Q4_K_M Q5_K_M F32 F16 ...".
std::string quantize_scheme_names();

struct QuantizeParams {
    int n_threads = 0;  // <= 0: the hardware's, at most 8
    // Called once per tensor before it is encoded (index from 0); may be empty.
    std::function<void(size_t index, size_t count, const std::string& name, DType from, DType to)> on_tensor;
};

struct QuantizeResult {
    uint64_t bytes_in = 0;    // tensor data read
    uint64_t bytes_out = 0;   // tensor data written
    int n_tensors = 0;
    int n_fallback = 0;       // matrices whose row length forced another type
};

// Reads `in`, writes `out` (through a temporary file, renamed at the end).
// Throws ember::Error: io_error, bad_format (a corrupt input), unsupported (a
// source type we do not re-encode), invalid_argument (in == out).
QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeScheme& scheme,
                              const QuantizeParams& params = {});

// The type a mixture or plain scheme gives one tensor, before the row-length
// fallback. `layer` is the block index for blk.N tensors (else -1), n_layer the
// model's block count. Exposed for the tests.
DType quantize_type_for(const QuantizeScheme& s, std::string_view name, int layer, int n_layer, bool has_output);

}  // namespace ember
