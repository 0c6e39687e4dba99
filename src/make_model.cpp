#include "ember/make_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "ember/sampling.hpp"

namespace ember {

namespace {

std::vector<std::string> synthetic_vocab(int n_vocab, std::vector<float>& scores, std::vector<int32_t>& types) {
    std::vector<std::string> t{"<unk>", "<s>", "</s>"};
    types = {2, 3, 3};
    char buf[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        t.emplace_back(buf);
        types.push_back(6);
    }
    const std::string sp = "\xe2\x96\x81";  // the SentencePiece space mark
    std::vector<std::string> normal{sp};
    for (char c = 'a'; c <= 'z'; ++c) normal.emplace_back(1, c);
    for (char c = 'A'; c <= 'Z'; ++c) normal.emplace_back(1, c);
    for (const char* p : {".", ",", "!", "?", "'", "\"", ":", "-"}) normal.emplace_back(p);
    for (const char* w : {"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "the", "and", "ing", "ou"})
        normal.emplace_back(w);
    for (const char* w : {"the", "a", "to", "and", "of", "in", "is", "you", "that", "it", "he", "was", "for", "on",
                          "are", "with", "as", "I", "his", "they", "be", "at", "one", "have", "this", "hello",
                          "world", "time", "upon", "once", "there", "little", "girl", "boy", "day"})
        normal.push_back(sp + w);
    scores.assign(t.size(), 0.0f);
    for (size_t i = 0; i < normal.size() && int(t.size()) < n_vocab; ++i) {
        t.push_back(normal[i]);
        types.push_back(1);
        // single characters score lowest so merges win (SentencePiece BPE uses scores as merge priority)
        scores.push_back(normal[i].size() <= 1 ? -1000.0f - float(i) : -float(i));
    }
    for (int k = 0; int(t.size()) < n_vocab; ++k) {
        t.push_back("<unused" + std::to_string(k) + ">");
        types.push_back(5);
        scores.push_back(-1e9f);
    }
    return t;
}

}  // namespace

gguf::GgufWriter make_random_model(const RandomModelSpec& s) {
    if (s.arch != "llama" && s.arch != "qwen2") fail(Status::invalid_argument, "make-model: arch must be llama or qwen2");
    if (s.n_vocab < 259 + 1 || s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 ||
        s.n_head % s.n_head_kv != 0 || s.n_embd % s.n_head != 0 || s.n_ff <= 0 || s.n_ctx <= 0)
        fail(Status::invalid_argument, "make-model: inconsistent shape (vocab >= 260, heads divide width, kv heads divide heads)");
    const uint32_t bs = type_info(s.type).block_size;
    const int hd = s.n_embd / s.n_head, kvd = s.n_head_kv * hd;
    if (s.n_embd % int(bs) || s.n_ff % int(bs))
        fail(Status::invalid_argument, "make-model: width " + std::to_string(s.n_embd) + " and ffn " + std::to_string(s.n_ff) +
                                           " must be multiples of the " + dtype_name(s.type) + " block size " +
                                           std::to_string(bs) + " (set --dim and --ffn)");

    gguf::GgufWriter w;
    const std::string& a = s.arch;
    w.set_string("general.architecture", a);
    w.set_string("general.name", "random " + a + " " + std::to_string(s.n_embd) + "x" + std::to_string(s.n_layer));
    w.set_u32(a + ".context_length", uint32_t(s.n_ctx));
    w.set_u32(a + ".embedding_length", uint32_t(s.n_embd));
    w.set_u32(a + ".block_count", uint32_t(s.n_layer));
    w.set_u32(a + ".feed_forward_length", uint32_t(s.n_ff));
    w.set_u32(a + ".attention.head_count", uint32_t(s.n_head));
    w.set_u32(a + ".attention.head_count_kv", uint32_t(s.n_head_kv));
    w.set_u32(a + ".rope.dimension_count", uint32_t(hd));
    w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32(a + ".rope.freq_base", s.rope_base);
    if (s.rope_scale != 1.0f) {
        w.set_string(a + ".rope.scaling.type", "linear");
        w.set_f32(a + ".rope.scaling.factor", s.rope_scale);
    }
    std::vector<float> scores;
    std::vector<int32_t> types;
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", synthetic_vocab(s.n_vocab, scores, types));
    w.set_f32s("tokenizer.ggml.scores", scores);
    w.set_i32s("tokenizer.ggml.token_type", types);
    w.set_u32("tokenizer.ggml.unknown_token_id", 0);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    w.set_u32("tokenizer.ggml.eos_token_id", 2);

    Rng rng(s.seed);
    std::vector<float> buf;
    auto normal = [&](size_t n, float scale) {  // Box-Muller from our RNG: reproducible everywhere
        buf.resize(n);
        for (size_t i = 0; i < n; i += 2) {
            const float u1 = std::max(rng.uniform(), 1e-7f), u2 = rng.uniform();
            const float r = std::sqrt(-2.0f * std::log(u1)) * scale;
            buf[i] = r * std::cos(6.2831853f * u2);
            if (i + 1 < n) buf[i + 1] = r * std::sin(6.2831853f * u2);
        }
        return buf.data();
    };
    auto mat = [&](const std::string& name, int in, int out) {
        w.add_tensor_f32(name, s.type, {in, out}, normal(size_t(in) * size_t(out), 1.0f / std::sqrt(float(in))));
    };
    auto norm = [&](const std::string& name, int n) {
        float* p = normal(size_t(n), 0.1f);
        for (int i = 0; i < n; ++i) p[i] += 1.0f;
        w.add_tensor_f32(name, DType::F32, {n}, p);
    };
    w.add_tensor_f32("token_embd.weight", s.type, {s.n_embd, s.n_vocab}, normal(size_t(s.n_embd) * s.n_vocab, 1.0f));
    for (int l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        norm(p + "attn_norm.weight", s.n_embd);
        mat(p + "attn_q.weight", s.n_embd, s.n_embd);
        mat(p + "attn_k.weight", s.n_embd, kvd);
        mat(p + "attn_v.weight", s.n_embd, kvd);
        if (a == "qwen2") {
            w.add_tensor_f32(p + "attn_q.bias", DType::F32, {s.n_embd}, normal(size_t(s.n_embd), 0.5f));
            w.add_tensor_f32(p + "attn_k.bias", DType::F32, {kvd}, normal(size_t(kvd), 0.5f));
            w.add_tensor_f32(p + "attn_v.bias", DType::F32, {kvd}, normal(size_t(kvd), 0.5f));
        }
        mat(p + "attn_output.weight", s.n_embd, s.n_embd);
        norm(p + "ffn_norm.weight", s.n_embd);
        mat(p + "ffn_gate.weight", s.n_embd, s.n_ff);
        mat(p + "ffn_up.weight", s.n_embd, s.n_ff);
        mat(p + "ffn_down.weight", s.n_ff, s.n_embd);
    }
    norm("output_norm.weight", s.n_embd);
    if (!s.tied_output) mat("output.weight", s.n_embd, s.n_vocab);
    return w;
}

RandomModelSpec shape_by_name(const std::string& name) {
    RandomModelSpec s;
    if (name == "tiny") return s;
    if (name == "110M") {
        s.n_vocab = 32000; s.n_embd = 768; s.n_layer = 12; s.n_head = 12; s.n_head_kv = 12; s.n_ff = 2048; s.n_ctx = 2048;
        s.tied_output = false;
        return s;
    }
    if (name == "1.1B") {
        s.n_vocab = 32000; s.n_embd = 2048; s.n_layer = 22; s.n_head = 32; s.n_head_kv = 4; s.n_ff = 5632; s.n_ctx = 2048;
        s.tied_output = false;
        return s;
    }
    fail(Status::invalid_argument, "unknown shape '" + name + "' (tiny, 110M, 1.1B)");
}

}  // namespace ember
