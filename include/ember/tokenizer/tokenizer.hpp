// ember/tokenizer/tokenizer.hpp — text <-> token ids, built from the GGUF vocabulary.
//
// One Tokenizer per model, immutable after construction, safe to use from many
// threads. The vocabulary type comes from `tokenizer.ggml.model`:
//   "llama" — SentencePiece (tokenizer/spm), through the sentencepiece library
//   (BPE over byte-level BPE "gpt2" and WordPiece "bert" come with their issue.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ember/gguf.hpp"

namespace ember {

// Token types as GGUF stores them in tokenizer.ggml.token_type (SentencePiece's values).
enum class TokenType : int32_t {
    normal = 1,
    unknown = 2,
    control = 3,
    user_defined = 4,
    unused = 5,
    byte = 6,
};

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Builds the tokenizer the file's metadata asks for. Throws ember::Error:
    // bad_format for a malformed vocabulary, unsupported for an unknown model type.
    static std::unique_ptr<Tokenizer> from_gguf(const gguf::GgufFile& file);

    // Token ids of `text`. add_bos prepends BOS (when the vocabulary has one);
    // parse_special lets control/user-defined token strings in the text map to
    // their ids — off, such strings are tokenized as plain text. Invalid UTF-8
    // never fails: each invalid byte is read as U+FFFD (as SentencePiece's
    // normalizer does), which then goes through byte fallback (or <unk>).
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;

    // The bytes token `id` contributes to decoded text: byte tokens give their
    // byte, the SentencePiece space mark gives ' ', control tokens give "" unless
    // `special` (then their text), unknown tokens give SentencePiece's " ⁇ " (U+2047)
    // unless `special`. Throws invalid_argument for an id out of range.
    virtual std::string piece(int32_t id, bool special) const = 0;

    // Whole-sequence decoding (the leading space of the dummy prefix removed,
    // as SentencePiece does; each byte of an invalid UTF-8 sequence becomes
    // U+FFFD). Throws invalid_argument for an id out of range.
    virtual std::string decode(const std::vector<int32_t>& ids, bool special) const;

    int32_t n_vocab() const { return int32_t(texts_.size()); }
    const std::string& text(int32_t id) const;   // the vocabulary entry as stored
    TokenType type(int32_t id) const;
    int32_t bos() const { return bos_; }         // -1 if none
    int32_t eos() const { return eos_; }         // -1 if none
    int32_t unk() const { return unk_; }         // -1 if none (unnamed: the first unknown-type token)
    int32_t eot() const { return eot_; }         // end of turn; -1 if none
    int32_t pad() const { return pad_; }         // -1 if none
    bool add_bos_default() const { return add_bos_; }
    bool adds_space_prefix() const { return add_space_prefix_; }
    // End of generation: EOS, EOT (if the vocabulary names one), and similar.
    bool is_eog(int32_t id) const;
    bool valid(int32_t id) const { return id >= 0 && id < n_vocab(); }

protected:
    // Reads the common vocabulary arrays and special ids; validates them.
    explicit Tokenizer(const gguf::GgufFile& file);
    void check_id(int32_t id) const;

    std::vector<std::string> texts_;
    std::vector<float> scores_;
    std::vector<TokenType> types_;
    int32_t bos_ = -1, eos_ = -1, unk_ = -1, eot_ = -1, pad_ = -1;
    std::vector<int32_t> eog_;   // every id is_eog() accepts (a handful)
    bool add_bos_ = true;
    bool add_space_prefix_ = true;
};

// Streams decoded text token by token without ever emitting a broken UTF-8
// sequence: bytes of a character split across tokens are held back until the
// character is complete. Invalid sequences become U+FFFD. One per generation.
class Detokenizer {
public:
    // strip_leading_space: drop the dummy-prefix space of the first piece
    // (true when decoding from the start of a text, false for a continuation).
    Detokenizer(const Tokenizer& tok, bool strip_leading_space, bool special = false)
        : tok_(&tok), strip_(strip_leading_space), special_(special) {}

    // Text that is complete after adding `id` (possibly empty).
    std::string push(int32_t id);
    // Whatever is still held back, with incomplete sequences as U+FFFD.
    std::string flush();

private:
    const Tokenizer* tok_;
    bool strip_;
    bool special_;
    bool first_ = true;
    std::string pending_;
};

// Length of the longest prefix of s[0..n) made of complete, valid UTF-8
// characters, stopping before an incomplete trailing sequence; invalid bytes
// count as complete (they are replaced when emitted).
size_t utf8_complete_prefix(std::string_view s);
// s with every invalid UTF-8 sequence replaced by U+FFFD.
std::string utf8_sanitize(std::string_view s);

}  // namespace ember
