// ember/tokenizer/wpm.hpp — WordPiece vocabularies (tokenizer.ggml.model = "bert").
//
// BERT-style encoders (BGE, MiniLM, nomic, ...). The reference is Hugging
// Face's BertNormalizer + BertPreTokenizer + WordPiece, with which the
// conformance vectors were made. Encoding a text:
//   1. added tokens are split off (Tokenizer::partition: [CLS], [SEP], [MASK],
//      ... only with parse_special; user-defined tokens always);
//   2. normalization: NUL, U+FFFD and other characters of categories Cc, Cf
//      and Co are removed (tab, newline, carriage return excepted); white space
//      (Unicode White_Space) becomes ' '; CJK ideographs get a space on either
//      side; then, for an uncased vocabulary, NFD with non-spacing marks (Mn)
//      removed ("accent stripping") and lower-casing;
//   3. words: split at spaces (removed) and around punctuation (Unicode P*
//      and every ASCII punctuation character, '$' '+' '<' ... included);
//   4. WordPiece: greedy longest match from the start of the word; what
//      follows matches continuation pieces; a word with no full cover, or of
//      more than 100 characters, becomes [UNK] as a whole.
//
// Unicode data comes from ICU (Debian's libicu): NFD needs the canonical
// decomposition and combining-class tables, which no hand-written table
// should replace, and ICU is the reference implementation of them. (PCRE2,
// used by the BPE pre-tokenizers, knows categories but not decompositions.)
// The reference takes its categories from an older Unicode version; the two
// differ only for characters assigned since, and the reference treats
// unassigned (Cn) characters as ordinary ones, as this does.
//
// Cased or uncased: GGUF does not record BERT's do_lower_case, so it is read
// from the vocabulary: uncased when no word piece holds an upper-case letter.
//
// Vocabulary texts come in either form: llama.cpp's converter writes word
// starts as "▁word" and continuations bare ("##ing" -> "ing"), [..] tokens as
// they are; Hugging Face's own form has bare word starts and "##" continuations.
// The form is detected from the texts.
//
// Decoding: a word-start token gives ' ' + word, a continuation its bare text,
// so pieces concatenate to words separated by single spaces (the first space
// is dropped by decode/Detokenizer). As the reference's clean-up does, '.', ',',
// '?' and '!' attach to the word before them. Control and unknown tokens give
// "" unless `special` (then ' ' + their text). Normalization loses case,
// accents and spacing, so decode(encode(text)) is not text.
//
// Immutable after construction; encode/piece/decode may run on many threads.
#pragma once

#include <string>
#include <unordered_map>

#include "ember/tokenizer/tokenizer.hpp"

namespace ember {

class WpmTokenizer final : public Tokenizer {
public:
    // Reads the vocabulary. BOS is [CLS] (tokenizer.ggml.cls_token_id or
    // bos_token_id, else the token "[CLS]"), SEP is [SEP] likewise, unknown
    // is [UNK]. Throws ember::Error(bad_format) for a malformed vocabulary.
    explicit WpmTokenizer(const gguf::GgufFile& file);

    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override;
    std::string piece(int32_t id, bool special) const override;
    bool strips_leading_space(TokenType) const override { return true; }

    bool lowercase() const { return lowercase_; }
    static constexpr size_t kMaxWordChars = 100;

    // The normalized words of `text` (steps 2 and 3 above), for tests and tools.
    std::vector<std::string> words(std::string_view text) const;

private:
    template <class F>
    void for_each_word(std::string_view text, F&& f) const;
    void encode_word(std::string_view w, std::vector<int32_t>& out) const;

    bool lowercase_ = true;
    bool phantom_space_ = true;  // llama.cpp's "▁word" form (else "##" continuations)
    size_t max_piece_ = 1;       // longest piece text, in bytes
    std::unordered_map<std::string_view, int32_t> start_;  // word-start pieces, by bare text
    std::unordered_map<std::string_view, int32_t> cont_;   // continuation pieces, by bare text
    std::vector<std::string> shown_;  // [n_vocab] what piece() gives for a normal token
};

}  // namespace ember
