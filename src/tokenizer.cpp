// The vocabulary-independent half of the tokenizer layer: reading and validating
// the common GGUF vocabulary arrays, the factory, streaming detokenization and
// the UTF-8 helpers it rests on, and the added-token matcher all vocabulary
// types share. Vocabulary-specific encoding lives in tokenizer_spm.cpp,
// tokenizer_bpe.cpp and tokenizer_wpm.cpp.
#include "ember/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ember/common.hpp"
#include "ember/tokenizer/bpe.hpp"
#include "ember/tokenizer/spm.hpp"
#include "ember/tokenizer/wpm.hpp"

namespace ember {

namespace {

constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTypes = "tokenizer.ggml.token_type";

// Control tokens that end a turn in common chat formats. Vocabularies rarely
// name them in tokenizer.ggml.eot_token_id, yet generation must stop there
// (Phi-3 ends a reply with <|end|>, its EOS being <|endoftext|>).
constexpr std::string_view kEndOfTurnTexts[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
};

// Reads an optional special-token id; absent gives -1, a present id outside
// the vocabulary is a malformed file.
int32_t special_id(const gguf::GgufFile& file, const char* key, int32_t n_vocab) {
    if (!file.has(key)) return -1;
    const int64_t id = file.get_int(key);
    if (id < 0 || id >= n_vocab)
        fail(Status::bad_format, std::string("metadata '") + key + "' = " + std::to_string(id) +
                                     " is not a token id (the vocabulary has " + std::to_string(n_vocab) + ")");
    return int32_t(id);
}

// How the bytes at the start of `s` read as UTF-8 (Unicode table 3-7: no
// overlong forms, no surrogates, nothing above U+10FFFF).
enum class Utf8Class { valid, invalid, truncated };

Utf8Class classify_utf8(std::string_view s, size_t* len) {
    const auto b = [&](size_t k) { return uint8_t(s[k]); };
    const uint8_t c = b(0);
    *len = 1;
    if (c < 0x80) return Utf8Class::valid;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;       // overlong below U+0800
        else if (c == 0xED) hi = 0x9F;  // surrogates U+D800..DFFF
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;       // overlong below U+10000
        else if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
        return Utf8Class::invalid;      // a continuation byte, C0/C1, F5..FF
    }
    for (size_t k = 1; k < need; ++k) {
        if (k >= s.size()) return Utf8Class::truncated;
        const uint8_t lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xBF;
        if (b(k) < lo_k || b(k) > hi_k) return Utf8Class::invalid;
    }
    *len = need;
    return Utf8Class::valid;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

// ---- Tokenizer ---------------------------------------------------------------

Tokenizer::Tokenizer(const gguf::GgufFile& file) {
    const gguf::Value* tokens = file.get_array(kTokens, gguf::ValueType::string);
    if (!tokens) fail(Status::bad_format, std::string("vocabulary: metadata '") + kTokens + "' is missing");
    if (tokens->count == 0) fail(Status::bad_format, "vocabulary: '" + std::string(kTokens) + "' is empty");
    if (tokens->count > uint64_t(INT32_MAX))
        fail(Status::bad_format, "vocabulary: " + std::to_string(tokens->count) + " tokens do not fit 32-bit ids");
    const auto n = size_t(tokens->count);
    texts_.reserve(n);
    for (std::string_view t : tokens->strings) texts_.emplace_back(t);

    scores_.assign(n, 0.0f);
    if (const gguf::Value* s = file.get_array(kScores, gguf::ValueType::f32)) {
        if (s->count != n)
            fail(Status::bad_format, "vocabulary: '" + std::string(kScores) + "' has " + std::to_string(s->count) +
                                         " entries for " + std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; ++i) {
            scores_[i] = float(s->elem_f64(i));
            // NaN has no order; merge priorities built on it would be meaningless.
            if (std::isnan(scores_[i]))
                fail(Status::bad_format, "vocabulary: the score of token " + std::to_string(i) + " is NaN");
        }
    }

    types_.assign(n, TokenType::normal);
    const gguf::Value* ty = file.get_array(kTypes, gguf::ValueType::i32);
    if (ty) {
        if (ty->count != n)
            fail(Status::bad_format, "vocabulary: '" + std::string(kTypes) + "' has " + std::to_string(ty->count) +
                                         " entries for " + std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; ++i) {
            const int64_t v = ty->elem_i64(i);
            // 0 is llama.cpp's "undefined", written by some converters for plain pieces.
            if (v == 0) continue;
            if (v < int64_t(TokenType::normal) || v > int64_t(TokenType::byte))
                fail(Status::bad_format, "vocabulary: token " + std::to_string(i) + " has unknown type " +
                                             std::to_string(v));
            types_[i] = TokenType(int32_t(v));
        }
    }

    const auto nv = int32_t(n);
    bos_ = special_id(file, "tokenizer.ggml.bos_token_id", nv);
    eos_ = special_id(file, "tokenizer.ggml.eos_token_id", nv);
    unk_ = special_id(file, "tokenizer.ggml.unknown_token_id", nv);
    eot_ = special_id(file, "tokenizer.ggml.eot_token_id", nv);
    pad_ = special_id(file, "tokenizer.ggml.padding_token_id", nv);
    // GGUF spells the key "seperator"; accept the correct spelling too.
    sep_ = special_id(file, "tokenizer.ggml.seperator_token_id", nv);
    if (sep_ < 0) sep_ = special_id(file, "tokenizer.ggml.separator_token_id", nv);
    add_bos_ = file.get_bool("tokenizer.ggml.add_bos_token", true);
    add_eos_ = file.get_bool("tokenizer.ggml.add_eos_token", false);
    add_space_prefix_ = file.get_bool("tokenizer.ggml.add_space_prefix", true);

    if (!ty) {
        // Without a type array the named special tokens are all we know of.
        for (int32_t id : {bos_, eos_, eot_, pad_, sep_})
            if (id >= 0) types_[size_t(id)] = TokenType::control;
        if (unk_ >= 0) types_[size_t(unk_)] = TokenType::unknown;
    }
    if (unk_ < 0) {
        const auto it = std::find(types_.begin(), types_.end(), TokenType::unknown);
        if (it != types_.end()) unk_ = int32_t(it - types_.begin());
    }

    for (int32_t id : {eos_, eot_})
        if (id >= 0) eog_.push_back(id);
    for (int32_t id = 0; id < nv; ++id) {
        if (types_[size_t(id)] != TokenType::control) continue;
        for (std::string_view t : kEndOfTurnTexts)
            if (texts_[size_t(id)] == t && std::find(eog_.begin(), eog_.end(), id) == eog_.end()) eog_.push_back(id);
    }
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::GgufFile& file) {
    const std::string_view model = file.get_string("tokenizer.ggml.model");
    if (model == "llama") return std::make_unique<SpmTokenizer>(file);
    if (model == "gpt2") return std::make_unique<BpeTokenizer>(file);
    if (model == "bert") return std::make_unique<WpmTokenizer>(file);
    fail(Status::unsupported, "tokenizer model '" + std::string(model) +
                                  "' is not supported (supported: 'llama' SentencePiece, 'gpt2' byte-level BPE, "
                                  "'bert' WordPiece)");
}

void Tokenizer::check_id(int32_t id) const {
    if (!valid(id))
        fail(Status::invalid_argument,
             "token id " + std::to_string(id) + " out of range [0, " + std::to_string(n_vocab()) + ")");
}

const std::string& Tokenizer::text(int32_t id) const {
    check_id(id);
    return texts_[size_t(id)];
}

TokenType Tokenizer::type(int32_t id) const {
    check_id(id);
    return types_[size_t(id)];
}

bool Tokenizer::strips_leading_space(TokenType t) const {
    // SentencePiece drops the dummy-prefix space of the first text-bearing
    // piece; byte, control and unknown pieces are never stripped.
    return add_space_prefix_ && (t == TokenType::normal || t == TokenType::user_defined || t == TokenType::unused);
}

bool Tokenizer::is_eog(int32_t id) const {
    return std::find(eog_.begin(), eog_.end(), id) != eog_.end();
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
    Detokenizer d(*this, /*strip_leading_space=*/true, special);
    std::string out;
    for (int32_t id : ids) out += d.push(id);
    out += d.flush();
    return out;
}

// ---- Detokenizer -------------------------------------------------------------

std::string Detokenizer::push(int32_t id) {
    std::string p = tok_->piece(id, special_);  // throws for a bad id before any state changes
    const TokenType t = tok_->type(id);
    std::string out;
    // A control or unknown token ends a pending incomplete byte sequence even
    // when it shows nothing: SentencePiece's decoder turns each run of byte
    // pieces into text on its own, so bytes never join across such a token.
    // (Byte-level BPE joins bytes across them instead, as its reference does.)
    if ((t == TokenType::control || t == TokenType::unknown) && !pending_.empty() && tok_->control_ends_byte_run())
        out = flush();
    if (first_) {
        // The first piece that shows text loses its leading space where the
        // vocabulary type adds one (see Tokenizer::strips_leading_space); any
        // visible text ends the start.
        if (strip_ && tok_->strips_leading_space(t) && !p.empty() && p[0] == ' ') {
            p.erase(0, 1);
            first_ = false;
        } else if (!p.empty()) {
            first_ = false;
        }
    }
    pending_ += p;
    const size_t n = utf8_complete_prefix(pending_);
    out += utf8_sanitize(std::string_view(pending_).substr(0, n));
    pending_.erase(0, n);
    return out;
}

std::string Detokenizer::flush() {
    std::string out = utf8_sanitize(pending_);
    pending_.clear();
    return out;
}

// ---- added tokens ------------------------------------------------------------------

void Tokenizer::SpecialMatcher::build(const std::vector<std::string>& texts, const std::vector<TokenType>& types) {
    nodes_.assign(1, Node{});
    first_.fill(-1);
    any_ = any_always_ = false;
    for (size_t id = 0; id < texts.size(); ++id) {
        const TokenType t = types[id];
        const bool always = t == TokenType::user_defined;
        if (texts[id].empty() || !(always || t == TokenType::control || t == TokenType::unknown)) continue;
        int32_t node = 0;
        for (size_t k = 0; k < texts[id].size(); ++k) {
            const auto b = uint8_t(texts[id][k]);
            int32_t child = k == 0 ? first_[b] : nodes_[size_t(node)].first_child;
            if (k > 0)
                while (child >= 0 && nodes_[size_t(child)].byte != b) child = nodes_[size_t(child)].next_sibling;
            if (child < 0) {
                child = int32_t(nodes_.size());
                Node n;
                n.byte = b;
                if (k == 0) {
                    first_[b] = child;
                } else {
                    n.next_sibling = nodes_[size_t(node)].first_child;
                    nodes_[size_t(node)].first_child = child;
                }
                nodes_.push_back(n);
            }
            node = child;
        }
        Node& end = nodes_[size_t(node)];
        if (end.id_special < 0) end.id_special = int32_t(id);  // ids ascend: the first is the lowest
        if (always && end.id_always < 0) end.id_always = int32_t(id);
        any_ = true;
        any_always_ = any_always_ || always;
    }
}

size_t Tokenizer::SpecialMatcher::find(std::string_view text, size_t pos, bool parse_special, int32_t* id,
                                       size_t* len) const {
    const size_t n = text.size();
    for (size_t i = pos; i < n; ++i) {
        int32_t node = first_[uint8_t(text[i])];
        int32_t best = -1;
        size_t best_len = 0;
        for (size_t k = i; node >= 0;) {
            const Node& nd = nodes_[size_t(node)];
            const int32_t hit = parse_special ? nd.id_special : nd.id_always;
            if (hit >= 0) {
                best = hit;
                best_len = k + 1 - i;
            }
            if (++k >= n) break;
            const auto b = uint8_t(text[k]);
            node = nd.first_child;
            while (node >= 0 && nodes_[size_t(node)].byte != b) node = nodes_[size_t(node)].next_sibling;
        }
        if (best >= 0) {
            *id = best;
            *len = best_len;
            return i;
        }
    }
    return n;
}

// ---- the per-call word cache ---------------------------------------------------------

uint64_t Tokenizer::WordCache::hash(std::string_view w) {
    const char* p = w.data();
    size_t n = w.size();
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t x;
        std::memcpy(&x, p, 8);
        h = (h ^ x) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t x = 0;
    std::memcpy(&x, p, n);
    h = (h ^ x) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
}

Tokenizer::WordCache::Slot* Tokenizer::WordCache::find(std::string_view w, uint64_t h) {
    if (slots_.empty()) slots_.resize(256);
    const size_t mask = slots_.size() - 1;
    for (size_t i = size_t(h) & mask;; i = (i + 1) & mask) {
        Slot& s = slots_[i];
        if (!s.p || (s.hash == h && s.len == w.size() && std::memcmp(s.p, w.data(), w.size()) == 0)) return &s;
    }
}

void Tokenizer::WordCache::grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& o : old) {
        if (!o.p) continue;
        size_t i = size_t(o.hash) & mask;
        while (slots_[i].p) i = (i + 1) & mask;
        slots_[i] = o;
    }
}

// ---- UTF-8 -------------------------------------------------------------------

size_t utf8_complete_prefix(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        size_t len;
        const Utf8Class c = classify_utf8(s.substr(i), &len);
        if (c == Utf8Class::truncated) break;
        i += len;  // an invalid byte counts as one complete (replaced) unit
    }
    return i;
}

bool utf8_valid(std::string_view s) {
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        // Eight ASCII bytes at a time: the common case costs one test.
        if (i + 8 <= n) {
            uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            if ((w & 0x8080808080808080ull) == 0) {
                i += 8;
                continue;
            }
        }
        if (uint8_t(s[i]) < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        if (classify_utf8(s.substr(i), &len) != Utf8Class::valid) return false;
        i += len;
    }
    return true;
}

std::string utf8_sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        size_t len;
        if (classify_utf8(s.substr(i), &len) == Utf8Class::valid) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            // One U+FFFD per offending byte, as SentencePiece's decoder does.
            out.append(kReplacement);
            i += 1;
        }
    }
    return out;
}

}  // namespace ember
