// ember/tokenizer/bpe.hpp — byte-level BPE vocabularies (tokenizer.ggml.model = "gpt2").
//
// GPT-2, Llama 3, Qwen, DeepSeek, StarCoder, Falcon, MPT, ... The reference is
// the model's own Hugging Face tokenizer (tokenizer.json), which the
// conformance vectors were made with. Encoding a text:
//   1. added tokens are split off (Tokenizer::partition; user-defined always,
//      control/unknown only with parse_special);
//   2. each plain stretch goes through the pre-tokenizer named by
//      tokenizer.ggml.pre: a sequence of regex splits, each keeping both the
//      matches and the text between them as pieces ("Isolated"), run through
//      PCRE2 (UTF + UCP, JIT-compiled). Most splits see the raw text; a few
//      (Falcon's digit splits) come after the byte-level mapping and see the
//      mapped text, as in the reference;
//   3. each piece ("word") is mapped byte by byte through GPT-2's
//      byte-to-unicode table and merged by BPE: the adjacent pair with the
//      lowest merge rank (its line in tokenizer.ggml.merges) first, the
//      leftmost on ties, until no pair merges. Llama 3 and Tekken look the
//      whole word up first ("ignore_merges").
//
// Regexes are the pre-tokenizers' originals with one change: \s and \S are
// written as \p{White_Space} / \P{White_Space}, because PCRE2's \s also
// matches U+180E, which Unicode (since 6.3) and Oniguruma — the engine of the
// reference — no longer count as white space.
//
// Speed: words are merged on token ids (a 256-entry byte table and an
// open-addressed (left id, right id) -> (rank, merged id) table; no strings),
// each distinct word of one encode() call is merged once (a per-call cache),
// short words by a rank array scan and long ones by a min-heap with lazy
// invalidation, so a long word costs O(n log n).
//
// Decoding: a normal token gives the bytes its characters stand for (when a
// character lies outside the byte map, the token's UTF-8 text instead, as the
// reference decoder does); user-defined tokens give their text as stored;
// control, unknown and unused tokens give "" unless `special`. No clean-up of
// spaces is applied, so for every text decode(encode(text)) == utf8_sanitize(text).
//
// Departures, each deliberate: a missing tokenizer.ggml.pre (old files such
// as GPT-NeoX's) and "default" select GPT-2's own pre-tokenizer, the one the
// "gpt2" model type names (llama.cpp uses a Falcon-like split there);
// tokenizer.ggml.add_space_prefix is ignored (as llama.cpp does). A byte whose
// character is not in the vocabulary (no real vocabulary lacks one) is dropped,
// as the reference does without an unknown token.
//
// Immutable after construction; encode/piece/decode may run on many threads.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <unordered_map>

#include "ember/tokenizer/tokenizer.hpp"

namespace ember {

class BpeTokenizer final : public Tokenizer {
public:
    // Reads the vocabulary and merges and compiles the pre-tokenizer.
    // Throws ember::Error: bad_format for a malformed vocabulary or merge list,
    // unsupported for an unknown tokenizer.ggml.pre.
    explicit BpeTokenizer(const gguf::GgufFile& file);
    ~BpeTokenizer() override;

    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override;
    std::string piece(int32_t id, bool special) const override;
    bool control_ends_byte_run() const override { return false; }

    // The pre-tokenizer in use (the canonical name of its family, e.g. "llama3").
    const std::string& pre_tokenizer() const { return pre_name_; }
    int32_t n_merges() const { return n_merges_; }

    // Pre-tokenizer names accepted in tokenizer.ggml.pre.
    static std::vector<std::string> supported_pre_tokenizers();

    struct Regex;       // a compiled PCRE2 pattern (tokenizer_bpe.cpp)
    struct Scratch;     // per-call buffers (tokenizer_bpe.cpp)

private:
    struct Step {
        std::unique_ptr<Regex> re;
        bool mapped = false;  // applies to the byte-level-mapped text
    };
    struct MergeSlot {
        uint64_t key = ~uint64_t(0);  // (left id << 32) | right id; all ones: empty
        int32_t rank = 0;
        int32_t id = 0;               // the merged token
    };

    // Appends the ids of one plain stretch of text (valid UTF-8).
    void encode_plain(std::string_view text, Scratch& sc, std::vector<int32_t>& out) const;
    // Splits [s, s+n) with steps_[k..] and hands each final piece to sc's word sink.
    void split(size_t k, const char* s, size_t n, Scratch& sc, std::vector<int32_t>& out) const;
    void split_mapped(size_t k, const char* s, size_t n, Scratch& sc, std::vector<int32_t>& out) const;
    // Ids of one pre-tokenized word (raw bytes), through the per-call cache.
    void word(std::string_view w, Scratch& sc, std::vector<int32_t>& out) const;
    // BPE of one word, uncached.
    void merge_word(std::string_view w, Scratch& sc, std::vector<int32_t>& out) const;
    const MergeSlot* find_merge(int32_t left, int32_t right) const;
    void add_merge(int32_t left, int32_t right, int32_t rank, int32_t id);

    std::string pre_name_;
    std::vector<Step> steps_;
    bool ignore_merges_ = false;
    uint32_t max_captures_ = 1;

    std::array<int32_t, 256> byte_token_{};   // id of the token of each byte's mapped character, -1 if none
    std::vector<MergeSlot> merges_;           // open addressing, power-of-two size
    int merge_shift_ = 64;
    int32_t n_merges_ = 0;
    std::unordered_map<std::string_view, int32_t> text_to_id_;  // views into texts_; the first id of a text
    std::vector<std::string> decoded_;        // [n_vocab] the bytes each normal token stands for
};

}  // namespace ember
