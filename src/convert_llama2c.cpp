#include "ember/convert_llama2c.hpp"

#include <sentencepiece_processor.h>

#include <cstring>

#include "ember/gguf_writer.hpp"
#include "ember/mapped_file.hpp"

namespace ember {

namespace {

class Reader {
public:
    Reader(const MappedFile& m, std::string what) : m_(m), what_(std::move(what)) {}
    template <class T>
    T get() {
        T v;
        std::memcpy(&v, take(sizeof(T)), sizeof(T));
        return v;
    }
    const uint8_t* take(uint64_t n) {
        if (n > m_.size() - off_) fail(Status::bad_format, what_ + ": truncated (needs " + std::to_string(n) +
                                                               " more bytes at offset " + std::to_string(off_) + ")");
        const uint8_t* p = m_.data() + off_;
        off_ += n;
        return p;
    }
    const float* floats(uint64_t n) { return reinterpret_cast<const float*>(take(n * 4)); }
    uint64_t remaining() const { return m_.size() - off_; }

private:
    const MappedFile& m_;
    std::string what_;
    uint64_t off_ = 0;
};

struct Vocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    int32_t unk = 0, bos = 1, eos = 2, pad = -1;
};

// llama2.c's tokenizer.bin: llama2.c's export replaced the SentencePiece space
// mark with ' ' and wrapped BOS/EOS in newlines; undo both to get the pieces.
Vocab read_llama2c_vocab(const std::string& tokenizer, int64_t vocab) {
    const MappedFile tk = MappedFile::open(tokenizer);
    Reader tr(tk, tokenizer);
    (void)tr.get<int32_t>();  // max_token_length
    Vocab v;
    for (int64_t i = 0; i < vocab; ++i) {
        const float score = tr.get<float>();
        const int32_t len = tr.get<int32_t>();
        if (len < 0 || len > 4096) fail(Status::bad_format, tokenizer + ": token " + std::to_string(i) + " has a bad length");
        std::string t(reinterpret_cast<const char*>(tr.take(uint64_t(len))), size_t(len));
        int32_t type = 1;  // normal
        if (i == 0) { t = "<unk>"; type = 2; }
        else if (i == 1) { t = "<s>"; type = 3; }
        else if (i == 2) { t = "</s>"; type = 3; }
        else if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') type = 6;
        else {
            std::string u;
            for (char c : t) u += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
            t = u;
        }
        v.tokens.push_back(std::move(t));
        v.scores.push_back(score);
        v.types.push_back(type);
    }
    return v;
}

// A SentencePiece model file, through the library.
Vocab read_spm_vocab(const std::string& tokenizer, int64_t vocab) {
    sentencepiece::SentencePieceProcessor sp;
    const auto st = sp.Load(tokenizer);
    if (!st.ok()) fail(Status::io_error, tokenizer + ": not a SentencePiece model: " + st.ToString());
    if (sp.GetPieceSize() != vocab)
        fail(Status::bad_format, tokenizer + ": the tokenizer has " + std::to_string(sp.GetPieceSize()) +
                                     " pieces but the checkpoint's vocabulary is " + std::to_string(vocab));
    Vocab v;
    for (int i = 0; i < sp.GetPieceSize(); ++i) {
        int32_t type = 1;  // normal (user-defined pieces are reported as normal: the library does not say)
        if (sp.IsUnknown(i)) type = 2;
        else if (sp.IsControl(i)) type = 3;
        else if (sp.IsUnused(i)) type = 5;
        else if (sp.IsByte(i)) type = 6;
        v.tokens.push_back(sp.IdToPiece(i));
        v.scores.push_back(sp.GetScore(i));
        v.types.push_back(type);
    }
    v.unk = sp.unk_id();
    v.bos = sp.bos_id();
    v.eos = sp.eos_id();
    v.pad = sp.pad_id();
    return v;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// GGUF's general.file_type (llama.cpp's "mostly" type of the weights).
uint32_t file_type(DType t) {
    switch (t) {
        case DType::F32: return 0;
        case DType::F16: return 1;
        case DType::Q4_0: return 2;
        case DType::Q8_0: return 7;
        case DType::BF16: return 32;
        default: return 0;
    }
}

}  // namespace

void convert_llama2c(const std::string& checkpoint, const std::string& tokenizer, const std::string& out_gguf,
                     DType wtype, const std::string& name) {
    ConvertOptions o;
    o.weight_type = wtype;
    o.name = name;
    convert_llama2c(checkpoint, tokenizer, out_gguf, o);
}

void convert_llama2c(const std::string& checkpoint, const std::string& tokenizer, const std::string& out_gguf,
                     const ConvertOptions& opt) {
    const DType wtype = opt.weight_type;
    for (const auto& [k, v] : opt.meta)
        if (k.empty()) fail(Status::invalid_argument, "metadata key is empty");
    const MappedFile ck = MappedFile::open(checkpoint);
    Reader r(ck, checkpoint);
    const int32_t dim = r.get<int32_t>(), hidden = r.get<int32_t>(), n_layers = r.get<int32_t>(),
                  n_heads = r.get<int32_t>(), n_kv = r.get<int32_t>(), vocab_raw = r.get<int32_t>(),
                  seq_len = r.get<int32_t>();
    const bool shared = vocab_raw > 0;
    const int64_t vocab = vocab_raw < 0 ? -int64_t(vocab_raw) : vocab_raw;
    if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv <= 0 || vocab <= 0 || seq_len <= 0 ||
        dim % n_heads != 0 || n_heads % n_kv != 0 || dim > (1 << 16) || hidden > (1 << 18) || n_layers > 512 ||
        vocab > (1 << 22) || seq_len > (1 << 22))
        fail(Status::bad_format, checkpoint + ": not a llama2.c checkpoint (implausible header)");
    const int64_t hd = dim / n_heads, kvd = n_kv * hd, L = n_layers;
    const int64_t need = 4 * (vocab * dim + L * dim + L * dim * dim + 2 * L * kvd * dim + L * dim * dim + L * dim +
                              3 * L * hidden * dim + dim + seq_len * hd) + (shared ? 0 : 4 * vocab * dim);
    if (uint64_t(need) != r.remaining())
        fail(Status::bad_format, checkpoint + ": size does not match its header (" + std::to_string(r.remaining()) +
                                     " bytes of tensors, expected " + std::to_string(need) + ")");

    const Vocab vb = ends_with(tokenizer, ".model") ? read_spm_vocab(tokenizer, vocab)
                                                    : read_llama2c_vocab(tokenizer, vocab);

    gguf::GgufWriter w;
    const std::string a = "llama";
    w.set_string("general.architecture", a);
    w.set_string("general.name", opt.name.empty() ? "llama2.c checkpoint" : opt.name);
    if (!opt.license.empty()) w.set_string("general.license", opt.license);
    w.set_u32("general.file_type", file_type(wtype));
    w.set_u32(a + ".context_length", uint32_t(seq_len));
    w.set_u32(a + ".embedding_length", uint32_t(dim));
    w.set_u32(a + ".block_count", uint32_t(n_layers));
    w.set_u32(a + ".feed_forward_length", uint32_t(hidden));
    w.set_u32(a + ".attention.head_count", uint32_t(n_heads));
    w.set_u32(a + ".attention.head_count_kv", uint32_t(n_kv));
    w.set_u32(a + ".rope.dimension_count", uint32_t(hd));
    w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32(a + ".rope.freq_base", 10000.0f);
    w.set_string("tokenizer.ggml.model", "llama");
    w.set_strings("tokenizer.ggml.tokens", vb.tokens);
    w.set_f32s("tokenizer.ggml.scores", vb.scores);
    w.set_i32s("tokenizer.ggml.token_type", vb.types);
    if (vb.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(vb.unk));
    if (vb.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(vb.bos));
    if (vb.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(vb.eos));
    if (vb.pad >= 0) w.set_u32("tokenizer.ggml.padding_token_id", uint32_t(vb.pad));
    w.set_bool("tokenizer.ggml.add_bos_token", vb.bos >= 0);
    w.set_bool("tokenizer.ggml.add_space_prefix", true);
    if (!opt.chat_template.empty()) w.set_string("tokenizer.chat_template", opt.chat_template);
    for (const auto& [k, v] : opt.meta) w.set_string(k, v);

    // Matrices keep llama2.c's [out][in] row-major layout = GGUF ne {in, out}.
    // A weight type whose block does not divide a row stays F32.
    auto mat = [&](const std::string& n, int64_t in, int64_t out, const float* p) {
        const DType t = in % type_info(wtype).block_size == 0 ? wtype : DType::F32;
        w.add_tensor_f32(n, t, {in, out}, p);
    };
    auto vec = [&](const std::string& n, int64_t len, const float* p) { w.add_tensor_f32(n, DType::F32, {len}, p); };

    const float* embd = r.floats(uint64_t(vocab * dim));
    mat("token_embd.weight", dim, vocab, embd);
    auto blk = [](int64_t l, const char* n) { return "blk." + std::to_string(l) + "." + n; };
    const float* rms_att = r.floats(uint64_t(L * dim));
    const float* wq = r.floats(uint64_t(L * dim * dim));
    const float* wk = r.floats(uint64_t(L * kvd * dim));
    const float* wv = r.floats(uint64_t(L * kvd * dim));
    const float* wo = r.floats(uint64_t(L * dim * dim));
    const float* rms_ffn = r.floats(uint64_t(L * dim));
    const float* w1 = r.floats(uint64_t(L * hidden * dim));
    const float* w2 = r.floats(uint64_t(L * dim * hidden));
    const float* w3 = r.floats(uint64_t(L * hidden * dim));
    const float* rms_final = r.floats(uint64_t(dim));
    (void)r.floats(uint64_t(seq_len * hd));  // freq_cis_real/imag: recomputed from rope.freq_base
    const float* wcls = shared ? nullptr : r.floats(uint64_t(vocab * dim));
    for (int64_t l = 0; l < L; ++l) {
        vec(blk(l, "attn_norm.weight"), dim, rms_att + l * dim);
        mat(blk(l, "attn_q.weight"), dim, dim, wq + l * dim * dim);
        mat(blk(l, "attn_k.weight"), dim, kvd, wk + l * kvd * dim);
        mat(blk(l, "attn_v.weight"), dim, kvd, wv + l * kvd * dim);
        mat(blk(l, "attn_output.weight"), dim, dim, wo + l * dim * dim);
        vec(blk(l, "ffn_norm.weight"), dim, rms_ffn + l * dim);
        mat(blk(l, "ffn_gate.weight"), dim, hidden, w1 + l * hidden * dim);
        mat(blk(l, "ffn_down.weight"), hidden, dim, w2 + l * dim * hidden);
        mat(blk(l, "ffn_up.weight"), dim, hidden, w3 + l * hidden * dim);
    }
    vec("output_norm.weight", dim, rms_final);
    if (wcls) mat("output.weight", dim, vocab, wcls);
    w.write(out_gguf);
}

}  // namespace ember
