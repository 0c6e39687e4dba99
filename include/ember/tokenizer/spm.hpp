// ember/tokenizer/spm.hpp — SentencePiece vocabularies (tokenizer.ggml.model = "llama").
//
// Encoding goes through the sentencepiece library itself, so ids match the
// reference exactly: the GGUF vocabulary (pieces, scores, types) is turned into
// a serialized ModelProto — a BPE model with byte fallback when the vocabulary
// has all 256 byte pieces, an identity normalizer that only escapes spaces —
// and loaded with SentencePieceProcessor::LoadFromSerializedProto.
//
// A few things real GGUF vocabularies contain would make sentencepiece refuse
// the model; they are mapped so encoding stays exact and every id keeps its
// place:
//   - exactly one piece may be UNKNOWN: the vocabulary's unk id (or the first
//     unknown-type token); other unknown-type tokens become CONTROL pieces
//     (never produced from text). With no unknown token at all, a hidden
//     UNKNOWN piece is appended after the vocabulary and characters mapped to
//     it are dropped from the output;
//   - a piece text that repeats an earlier one of the same kind, and empty
//     texts, get a unique placeholder text as CONTROL pieces (sentencepiece
//     would only ever produce the first id anyway);
//   - byte tokens count as byte fallback only when all 256 <0xNN> are present;
//     otherwise they become CONTROL and byte fallback is off.
// Decoding (piece/decode) reads the GGUF types, not the mapped ones.
//
// Speed: sentencepiece's BPE costs about a microsecond per character on long
// inputs. When the vocabulary allows it (no piece has a space mark after
// another character: Llama, Phi-3, Baichuan...), text is cut before each run
// of spaces and each distinct chunk is encoded once per call, which gives the
// same ids (see the constructor) at many times the speed.
//
// Special tokens: with parse_special, control, unknown-type and user-defined
// token texts in the input are matched first (Tokenizer::partition: longest
// match wins, then the lowest id) and the text between them is encoded segment
// by segment, each segment with its own dummy-prefix space (as llama.cpp and
// the "legacy" Hugging Face Llama tokenizer do). Without it, control and unknown texts are
// plain text, and user-defined pieces are still recognised inside the text by
// sentencepiece itself, as the reference does.
//
// Immutable after construction; encode/piece/decode may run on many threads.
#pragma once

#include <array>
#include <memory>

#include "ember/tokenizer/tokenizer.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ember {

class SpmTokenizer final : public Tokenizer {
public:
    // Reads the vocabulary (see Tokenizer) and loads it into sentencepiece.
    // Throws ember::Error(bad_format) when the vocabulary is malformed or
    // sentencepiece refuses it (its message is kept).
    explicit SpmTokenizer(const gguf::GgufFile& file);
    ~SpmTokenizer() override;

    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override;
    std::string piece(int32_t id, bool special) const override;

    // True when byte tokens are used as byte fallback (all 256 present).
    bool byte_fallback() const { return byte_fallback_; }

private:
    // Appends the ids of one plain-text segment (no special-token parsing).
    void encode_plain(std::string_view text, std::vector<int32_t>& out, WordCache& cache) const;
    // Appends sentencepiece's ids for `text` as it is.
    void encode_chunk(std::string_view text, std::vector<int32_t>& out) const;
    // Serialized ModelProto for sentencepiece; sets byte_fallback_.
    std::string build_model_proto();

    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    bool byte_fallback_ = false;
    bool chunks_ = false;  // encode chunk by chunk (see the constructor)
    std::vector<int16_t> byte_value_;  // [n_vocab] the byte a byte token stands for, -1 if none
};

}  // namespace ember
