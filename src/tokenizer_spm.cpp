// SentencePiece vocabularies through the sentencepiece library: the GGUF
// vocabulary becomes a serialized ModelProto (written here with the protobuf
// wire format, since Debian ships no sentencepiece_model.pb.h), which
// sentencepiece loads and then encodes with. See ember/tokenizer/spm.hpp for
// how the vocabulary is mapped and how special tokens are handled.
#include "ember/tokenizer/spm.hpp"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_set>

#include "ember/common.hpp"

namespace ember {

namespace {

// ---- ModelProto field numbers (sentencepiece_model.proto) -------------------
// ModelProto
constexpr int kModelPieces = 1;          // repeated SentencePiece
constexpr int kModelTrainerSpec = 2;     // TrainerSpec
constexpr int kModelNormalizerSpec = 3;  // NormalizerSpec
// ModelProto.SentencePiece
constexpr int kPiecePiece = 1;  // string
constexpr int kPieceScore = 2;  // float
constexpr int kPieceType = 3;   // enum Type
// TrainerSpec
constexpr int kTrainerModelType = 3;      // enum ModelType
constexpr int kTrainerVocabSize = 4;      // int32
constexpr int kTrainerByteFallback = 35;  // bool
constexpr int kTrainerUnkId = 40;         // int32
constexpr int kTrainerBosId = 41;         // int32
constexpr int kTrainerEosId = 42;         // int32
constexpr int kTrainerPadId = 43;         // int32
constexpr int kTrainerUnkPiece = 45;      // string
// NormalizerSpec
constexpr int kNormName = 1;                    // string
constexpr int kNormAddDummyPrefix = 3;          // bool
constexpr int kNormRemoveExtraWhitespaces = 4;  // bool
constexpr int kNormEscapeWhitespaces = 5;       // bool

constexpr uint64_t kModelTypeBpe = 2;  // TrainerSpec.ModelType.BPE

// ModelProto.SentencePiece.Type
enum PieceType : uint64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Protobuf wire format, just what a ModelProto needs.
class ProtoWriter {
public:
    void varint_field(int field, uint64_t v) {
        tag(field, 0);
        varint(v);
    }
    // int32 is sign-extended to 64 bits on the wire (so -1 takes ten bytes).
    void int32_field(int field, int32_t v) { varint_field(field, uint64_t(int64_t(v))); }
    void float_field(int field, float v) {
        tag(field, 5);
        uint32_t u;
        std::memcpy(&u, &v, 4);
        for (int k = 0; k < 4; ++k) buf_.push_back(char(u >> (8 * k)));  // little-endian
    }
    void bytes_field(int field, std::string_view s) {
        tag(field, 2);
        varint(s.size());
        buf_.append(s);
    }
    const std::string& bytes() const { return buf_; }

private:
    void tag(int field, int wire) { varint(uint64_t(field) << 3 | uint64_t(wire)); }
    void varint(uint64_t v) {
        while (v >= 0x80) {
            buf_.push_back(char(0x80 | (v & 0x7F)));
            v >>= 7;
        }
        buf_.push_back(char(v));
    }
    std::string buf_;
};

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// The byte of a "<0xNN>" token text (either case), or -1.
int parse_byte_piece(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// sentencepiece only accepts the upper-case spelling it writes itself.
bool is_canonical_byte_piece(std::string_view t) {
    return parse_byte_piece(t) >= 0 && !(t[3] >= 'a' && t[3] <= 'f') && !(t[4] >= 'a' && t[4] <= 'f');
}

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space
constexpr std::string_view kUnkSurface = " \xE2\x81\x87 ";  // sentencepiece's default for <unk>

}  // namespace

SpmTokenizer::SpmTokenizer(const gguf::GgufFile& file) : Tokenizer(file) {
    const int32_t n = n_vocab();
    byte_value_.assign(size_t(n), -1);
    for (int32_t id = 0; id < n; ++id)
        if (types_[size_t(id)] == TokenType::byte) byte_value_[size_t(id)] = int16_t(parse_byte_piece(texts_[size_t(id)]));

    matcher_.build(texts_, types_);

    // Chunked encoding is exact when no piece that text can produce holds a
    // space mark after something else: then no merge crosses the start of a
    // run of spaces, and sentencepiece's BPE (local merges by score, byte
    // fallback and unused-piece resegmentation per symbol) gives the same ids
    // chunk by chunk as for the whole text.
    chunks_ = true;
    for (int32_t id = 0; id < n && chunks_; ++id) {
        const TokenType t = types_[size_t(id)];
        if (!(t == TokenType::normal || t == TokenType::user_defined || t == TokenType::unused)) continue;
        const std::string& s = texts_[size_t(id)];
        for (size_t k = s.find(kSpaceMark, 1); k != std::string::npos; k = s.find(kSpaceMark, k + 1))
            if (k < kSpaceMark.size() || s.compare(k - kSpaceMark.size(), kSpaceMark.size(), kSpaceMark) != 0)
                chunks_ = false;
    }

    const std::string proto = build_model_proto();
    sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto st = sp_->LoadFromSerializedProto(proto);
    if (!st.ok()) fail(Status::bad_format, "vocabulary: sentencepiece rejected it: " + st.ToString());
}

SpmTokenizer::~SpmTokenizer() = default;

std::string SpmTokenizer::build_model_proto() {
    const auto n = size_t(n_vocab());

    // Byte fallback needs every byte exactly once, spelled as sentencepiece spells it.
    std::array<int32_t, 256> byte_id;
    byte_id.fill(-1);
    for (size_t id = 0; id < n; ++id)
        if (types_[id] == TokenType::byte && is_canonical_byte_piece(texts_[id]) && byte_id[size_t(byte_value_[id])] < 0)
            byte_id[size_t(byte_value_[id])] = int32_t(id);
    byte_fallback_ = std::find(byte_id.begin(), byte_id.end(), -1) == byte_id.end();

    std::vector<PieceType> ptype(n);
    for (size_t id = 0; id < n; ++id) {
        switch (types_[id]) {
            case TokenType::normal: ptype[id] = kNormal; break;
            case TokenType::user_defined: ptype[id] = kUserDefined; break;
            case TokenType::unused: ptype[id] = kUnused; break;
            case TokenType::byte: {
                const int v = byte_value_[id];
                ptype[id] = byte_fallback_ && v >= 0 && byte_id[size_t(v)] == int32_t(id) ? kByte : kControl;
                break;
            }
            // Only one UNKNOWN is allowed; other unknown-type tokens must not be
            // produced from text either, which CONTROL guarantees.
            case TokenType::unknown:
            case TokenType::control: ptype[id] = kControl; break;
        }
    }
    if (unk_ >= 0) ptype[size_t(unk_)] = kUnknown;

    // sentencepiece keeps two maps of texts — normal/user-defined/unused pieces,
    // and control/unknown/byte ones — and refuses a text twice in one map or an
    // empty text. A later repeat (sentencepiece would only ever produce the
    // first) and an empty text become CONTROL pieces under a fresh placeholder
    // text: control pieces are never produced from text, so it stays unseen.
    std::unordered_set<std::string> all(texts_.begin(), texts_.end());
    std::unordered_set<std::string_view> seen_plain, seen_reserved;
    std::vector<std::string> placeholder(n);
    auto make_placeholder = [&](std::string base) {
        while (all.count(base)) base += '#';
        all.insert(base);
        return base;
    };
    for (size_t id = 0; id < n; ++id) {
        const bool plain = ptype[id] == kNormal || ptype[id] == kUserDefined || ptype[id] == kUnused;
        auto& seen = plain ? seen_plain : seen_reserved;
        const std::string& t = texts_[id];
        if (!t.empty() && seen.insert(t).second) continue;
        placeholder[id] = make_placeholder("<ember:duplicate:" + std::to_string(id) + ">");
        if (ptype[id] != kUnknown) ptype[id] = kControl;
    }

    ProtoWriter model;
    auto add_piece = [&](std::string_view text, float score, PieceType type) {
        ProtoWriter p;
        p.bytes_field(kPiecePiece, text);
        p.float_field(kPieceScore, score);
        p.varint_field(kPieceType, type);
        model.bytes_field(kModelPieces, p.bytes());
    };
    for (size_t id = 0; id < n; ++id)
        add_piece(placeholder[id].empty() ? std::string_view(texts_[id]) : std::string_view(placeholder[id]),
                  scores_[id], ptype[id]);
    // sentencepiece cannot work without an UNKNOWN piece: give it a hidden one
    // past the vocabulary; encode() drops what maps to it.
    int32_t proto_unk = unk_;
    std::string unk_text;
    if (unk_ >= 0) unk_text = placeholder[size_t(unk_)].empty() ? texts_[size_t(unk_)] : placeholder[size_t(unk_)];
    if (unk_ < 0) {
        proto_unk = int32_t(n);
        unk_text = make_placeholder("<ember:unk>");
        add_piece(unk_text, 0.0f, kUnknown);
    }

    ProtoWriter trainer;
    trainer.varint_field(kTrainerModelType, kModelTypeBpe);
    trainer.int32_field(kTrainerVocabSize, int32_t(n) + (unk_ < 0 ? 1 : 0));
    trainer.varint_field(kTrainerByteFallback, byte_fallback_ ? 1 : 0);
    trainer.int32_field(kTrainerUnkId, proto_unk);
    trainer.int32_field(kTrainerBosId, bos_);
    trainer.int32_field(kTrainerEosId, eos_);
    trainer.int32_field(kTrainerPadId, pad_);
    trainer.bytes_field(kTrainerUnkPiece, unk_text);
    model.bytes_field(kModelTrainerSpec, trainer.bytes());

    // Identity normalization, extra whitespace kept, spaces escaped as U+2581:
    // Llama's own tokenizer.model says exactly this, and GGUF stores no
    // normalization table for "llama" vocabularies (llama.cpp applies none).
    // The dummy prefix is added by encode_plain().
    ProtoWriter norm;
    norm.bytes_field(kNormName, "identity");
    norm.varint_field(kNormAddDummyPrefix, 0);
    norm.varint_field(kNormRemoveExtraWhitespaces, 0);
    norm.varint_field(kNormEscapeWhitespaces, 1);
    model.bytes_field(kModelNormalizerSpec, norm.bytes());
    return model.bytes();
}

void SpmTokenizer::encode_chunk(std::string_view text, std::vector<int32_t>& out) const {
    std::vector<int> ids;
    const auto st = sp_->Encode(text, &ids);
    if (!st.ok()) fail(Status::internal, "sentencepiece failed to encode a text: " + st.ToString());
    const int32_t n = n_vocab();
    for (int id : ids)
        if (id >= 0 && id < n) out.push_back(int32_t(id));  // drops the hidden UNKNOWN, if any
}

namespace {
// Length of the space (' ' or the mark U+2581, which the model cannot tell
// apart) at s[i], or 0.
size_t space_at(std::string_view s, size_t i) {
    if (s[i] == ' ') return 1;
    return s.compare(i, kSpaceMark.size(), kSpaceMark) == 0 ? kSpaceMark.size() : 0;
}
}  // namespace

void SpmTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out, WordCache& cache) const {
    if (text.empty()) return;  // no dummy prefix for nothing, as sentencepiece does
    // The dummy prefix is prepended here rather than by sentencepiece's
    // normalizer (same result: " x" normalizes to "▁x") so that each segment
    // between special tokens gets it under our control.
    if (!chunks_) {
        if (!add_space_prefix_) return encode_chunk(text, out);
        std::string prefixed;
        prefixed.reserve(text.size() + 1);
        prefixed += ' ';
        prefixed += text;
        return encode_chunk(prefixed, out);
    }
    // Chunks: a run of spaces and the non-space text after it. The first
    // carries the dummy prefix and is encoded on its own; the others are
    // views of `text` and go through the cache.
    bool first = true;
    size_t start = 0;
    bool prev_space = true;
    const auto emit = [&](size_t end) {
        const std::string_view chunk = text.substr(start, end - start);
        if (first && add_space_prefix_) {
            std::string prefixed;
            prefixed.reserve(chunk.size() + 1);
            prefixed += ' ';
            prefixed += chunk;
            encode_chunk(prefixed, out);
        } else {
            cache.ids(chunk, out, [&](std::vector<int32_t>& o) { encode_chunk(chunk, o); });
        }
        first = false;
        start = end;
    };
    for (size_t i = 0; i < text.size();) {
        const size_t sp = space_at(text, i);
        if (sp && !prev_space && i > start) emit(i);
        prev_space = sp != 0;
        i += sp ? sp : 1;
    }
    emit(text.size());
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::vector<int32_t> out;
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    WordCache cache;
    // Without parse_special, sentencepiece itself finds user-defined pieces.
    if (!parse_special)
        encode_plain(text, out, cache);
    else
        partition(
            text, true, [&](std::string_view seg) { encode_plain(seg, out, cache); },
            [&](int32_t id) { out.push_back(id); });
    if (add_bos && add_eos_ && eos_ >= 0) out.push_back(eos_);
    return out;
}

std::string SpmTokenizer::piece(int32_t id, bool special) const {
    check_id(id);
    const std::string& t = texts_[size_t(id)];
    switch (types_[size_t(id)]) {
        case TokenType::byte:
            if (byte_value_[size_t(id)] >= 0) return std::string(1, char(byte_value_[size_t(id)]));
            return special ? t : std::string();  // a malformed byte token: treated as control
        case TokenType::control: return special ? t : std::string();
        case TokenType::unknown: return special ? t : std::string(kUnkSurface);
        case TokenType::normal:
        case TokenType::user_defined:
        case TokenType::unused: break;
    }
    std::string out;
    out.reserve(t.size());
    for (size_t k = 0; k < t.size();) {
        if (t.compare(k, kSpaceMark.size(), kSpaceMark) == 0) {
            out += ' ';
            k += kSpaceMark.size();
        } else {
            out += t[k++];
        }
    }
    return out;
}

}  // namespace ember
