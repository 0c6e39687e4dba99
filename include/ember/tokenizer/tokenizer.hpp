// ember/tokenizer/tokenizer.hpp — text <-> token ids, built from the GGUF vocabulary.
//
// One Tokenizer per model, immutable after construction, safe to use from many
// threads. The vocabulary type comes from `tokenizer.ggml.model`:
//   "llama" — SentencePiece (tokenizer/spm.hpp), through the sentencepiece library
//   "gpt2"  — byte-level BPE (tokenizer/bpe.hpp), pre-tokenizer regexes through PCRE2
//   "bert"  — WordPiece (tokenizer/wpm.hpp), Unicode normalization through ICU
//
// Special and added tokens are handled alike for all three: user-defined
// tokens are recognised in any text; control and unknown-type token texts only
// when the caller passes parse_special (never by accident in user text). At
// each position the longest such text wins (then the lowest id), and the text
// between matches is encoded piece by piece.
#pragma once

#include <array>
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

    // Token ids of `text`. add_bos marks the text as a whole sequence: BOS is
    // prepended (when the vocabulary has one) and the closing token the
    // vocabulary asks for is appended — EOS when tokenizer.ggml.add_eos_token
    // is true, [SEP] for BERT (whose BOS is [CLS]). parse_special lets control
    // and unknown-type token texts in the text map to their ids — off, such
    // strings are tokenized as plain text (user-defined tokens are matched
    // either way). Invalid UTF-8 never fails and has one defined result for
    // every vocabulary type: the ids of utf8_sanitize(text), i.e. each invalid
    // byte reads as U+FFFD (as SentencePiece's normalizer and llama.cpp do);
    // byte-level BPE then encodes U+FFFD's three bytes, WordPiece drops it (BERT's
    // normalizer removes U+FFFD).
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;

    // The bytes token `id` contributes to decoded text (possibly part of a
    // UTF-8 character). Control tokens give "" unless `special` (then their
    // text); user-defined tokens give their text. SentencePiece: byte tokens
    // give their byte, the space mark gives ' ', unknown tokens give " ⁇ "
    // (U+2047) unless `special`. Byte-level BPE: the bytes the token stands for
    // (GPT-2's byte-to-unicode map undone). WordPiece: a word-start token gives
    // ' ' + its text, a continuation its text without "##" (see wpm.hpp).
    // Throws invalid_argument for an id out of range.
    virtual std::string piece(int32_t id, bool special) const = 0;

    // Whole-sequence decoding: the pieces joined, the leading space of the
    // first word removed where the vocabulary type adds one (SentencePiece's
    // dummy prefix, WordPiece's word separator), each byte of an invalid UTF-8
    // sequence as U+FFFD. Throws invalid_argument for an id out of range.
    virtual std::string decode(const std::vector<int32_t>& ids, bool special) const;

    // For the Detokenizer: whether the first piece of a text, of type `t`,
    // loses a leading ' ' (SentencePiece: its dummy prefix, on text pieces
    // only; WordPiece: the separator before the first word; BPE: never).
    virtual bool strips_leading_space(TokenType t) const;
    // For the Detokenizer: whether a control or unknown token ends a pending
    // incomplete UTF-8 sequence even when it shows nothing (SentencePiece
    // decodes each run of byte pieces on its own; byte-level BPE joins all
    // bytes, as its reference decoder does).
    virtual bool control_ends_byte_run() const { return true; }

    int32_t n_vocab() const { return int32_t(texts_.size()); }
    const std::string& text(int32_t id) const;   // the vocabulary entry as stored
    TokenType type(int32_t id) const;
    int32_t bos() const { return bos_; }         // -1 if none
    int32_t eos() const { return eos_; }         // -1 if none
    int32_t unk() const { return unk_; }         // -1 if none (unnamed: the first unknown-type token)
    int32_t eot() const { return eot_; }         // end of turn; -1 if none
    int32_t pad() const { return pad_; }         // -1 if none
    int32_t sep() const { return sep_; }         // BERT's [SEP]; -1 if none
    // Whether a new sequence starts with BOS (tokenizer.ggml.add_bos_token, or
    // the vocabulary type's default: SentencePiece and WordPiece yes, BPE per
    // pre-tokenizer — Llama 3 yes, GPT-2 no).
    bool add_bos_default() const { return add_bos_; }
    // Whether encode(add_bos = true) also appends EOS (tokenizer.ggml.add_eos_token).
    bool add_eos_default() const { return add_eos_; }
    bool adds_space_prefix() const { return add_space_prefix_; }
    // End of generation: EOS, EOT (if the vocabulary names one), and similar.
    bool is_eog(int32_t id) const;
    bool valid(int32_t id) const { return id >= 0 && id < n_vocab(); }

protected:
    // Reads the common vocabulary arrays and special ids; validates them.
    explicit Tokenizer(const gguf::GgufFile& file);
    void check_id(int32_t id) const;

    // Finds added-token texts in a text. User-defined tokens are always
    // candidates, control and unknown-type tokens only with parse_special; at
    // a position the longest text wins, then the lowest id (leftmost-longest,
    // as Hugging Face's added-token matcher). A byte trie: a scan costs one
    // table look-up per byte plus the length of each partial match.
    class SpecialMatcher {
    public:
        void build(const std::vector<std::string>& texts, const std::vector<TokenType>& types);
        // First match starting at or after `pos`: returns its start and sets
        // *id and *len; returns text.size() when there is none.
        size_t find(std::string_view text, size_t pos, bool parse_special, int32_t* id, size_t* len) const;
        // Whether any token is a candidate.
        bool empty(bool parse_special) const { return parse_special ? !any_ : !any_always_; }

    private:
        struct Node {
            int32_t first_child = -1, next_sibling = -1;
            int32_t id_special = -1;  // lowest id ending here among all candidates
            int32_t id_always = -1;   // lowest user-defined id ending here
            uint8_t byte = 0;
        };
        std::vector<Node> nodes_;     // [0] is the root
        std::array<int32_t, 256> first_{};  // child of the root per first byte, -1 if none
        bool any_ = false, any_always_ = false;
    };

    // Ids of the words of one encode() call, so each distinct word is encoded
    // once: open addressing over (views of the words, which must outlive the
    // cache) -> a range of a flat id array. Grows with the text, never beyond
    // a constant times its size. Words longer than kMaxWord are not kept.
    class WordCache {
    public:
        static constexpr size_t kMaxWord = 256;
        // Appends the ids of `w`: the remembered ones, or those compute(out)
        // appends (which are then remembered).
        template <class Compute>
        void ids(std::string_view w, std::vector<int32_t>& out, Compute&& compute) {
            if (w.size() > kMaxWord) {
                compute(out);
                return;
            }
            const uint64_t h = hash(w);
            Slot* slot = find(w, h);
            if (slot->p) {
                out.insert(out.end(), ids_.begin() + slot->off, ids_.begin() + slot->off + slot->count);
                return;
            }
            const size_t before = out.size();
            compute(out);
            const auto off = uint32_t(ids_.size());
            ids_.insert(ids_.end(), out.begin() + ptrdiff_t(before), out.end());
            *slot = Slot{w.data(), uint32_t(w.size()), off, uint32_t(out.size() - before), h};
            if (++used_ * 2 > slots_.size()) grow();
        }
        size_t size() const { return used_; }

    private:
        struct Slot {
            const char* p = nullptr;  // nullptr: empty
            uint32_t len = 0, off = 0, count = 0;
            uint64_t hash = 0;
        };
        static uint64_t hash(std::string_view w);
        Slot* find(std::string_view w, uint64_t h);
        void grow();
        std::vector<Slot> slots_;
        size_t used_ = 0;
        std::vector<int32_t> ids_;
    };

    // Splits `text` at the added tokens `matcher` finds: calls plain(segment)
    // for each stretch of ordinary text (never empty) and special(id) for each match.
    template <class Plain, class Special>
    void partition(std::string_view text, bool parse_special, Plain&& plain, Special&& special) const {
        if (matcher_.empty(parse_special)) {
            if (!text.empty()) plain(text);
            return;
        }
        size_t seg = 0;
        for (;;) {
            int32_t id = -1;
            size_t len = 0;
            const size_t at = matcher_.find(text, seg, parse_special, &id, &len);
            if (at > seg) plain(text.substr(seg, at - seg));
            if (at >= text.size()) break;
            special(id);
            seg = at + len;
        }
    }

    std::vector<std::string> texts_;
    std::vector<float> scores_;
    std::vector<TokenType> types_;
    int32_t bos_ = -1, eos_ = -1, unk_ = -1, eot_ = -1, pad_ = -1, sep_ = -1;
    std::vector<int32_t> eog_;   // every id is_eog() accepts (a handful)
    bool add_bos_ = true;
    bool add_eos_ = false;
    bool add_space_prefix_ = true;
    SpecialMatcher matcher_;     // built by the vocabulary types that use partition()
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
// Whether s is entirely valid UTF-8 (the same rules: no overlong forms, no
// surrogates, nothing above U+10FFFF, nothing truncated).
bool utf8_valid(std::string_view s);

}  // namespace ember
