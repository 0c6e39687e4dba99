// WordPiece ("bert" vocabularies): BERT's normalizer and pre-tokenizer with
// ICU's Unicode data, then greedy longest-match-first word pieces. See
// ember/tokenizer/wpm.hpp for the rules and the reasons.
#include "ember/tokenizer/wpm.hpp"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <string>

#include "ember/common.hpp"

namespace ember {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581, llama.cpp's word-start mark

// BERT's CJK ideograph blocks (those the reference pads with spaces).
bool is_cjk(UChar32 c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// The reference's punctuation: ASCII punctuation (symbols such as '$' '+' '<'
// '^' '`' '|' '~' included) and every character of a P* category.
bool is_punct(UChar32 c) {
    if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                         (c >= 0x7B && c <= 0x7E);
    return u_ispunct(c);
}

bool is_upper_word(std::string_view t) {
    for (size_t i = 0; i < t.size();) {
        UChar32 c;
        U8_NEXT(t.data(), i, t.size(), c);
        if (c >= 0 && u_isUUppercase(c)) return true;
    }
    return false;
}

const UNormalizer2* nfd() {
    static const UNormalizer2* n = [] {
        UErrorCode err = U_ZERO_ERROR;
        const UNormalizer2* p = unorm2_getNFDInstance(&err);
        if (U_FAILURE(err) || !p)
            fail(Status::internal, std::string("ICU has no NFD normalizer: ") + u_errorName(err));
        return p;
    }();
    return n;
}

int32_t find_text(const std::vector<std::string>& texts, std::string_view t) {
    for (size_t id = 0; id < texts.size(); ++id)
        if (texts[id] == t) return int32_t(id);
    return -1;
}

}  // namespace

WpmTokenizer::WpmTokenizer(const gguf::GgufFile& file) : Tokenizer(file) {
    const int32_t n = n_vocab();
    const auto named = [&](const char* key, std::string_view text) {
        if (file.has(key)) {
            const int64_t id = file.get_int(key);
            if (id < 0 || id >= n)
                fail(Status::bad_format, std::string("metadata '") + key + "' = " + std::to_string(id) +
                                             " is not a token id (the vocabulary has " + std::to_string(n) + ")");
            return int32_t(id);
        }
        return find_text(texts_, text);
    };
    if (bos_ < 0) bos_ = named("tokenizer.ggml.cls_token_id", "[CLS]");
    if (sep_ < 0) sep_ = find_text(texts_, "[SEP]");
    if (unk_ < 0) unk_ = find_text(texts_, "[UNK]");
    add_space_prefix_ = false;

    // Which form the texts are in: count word-start marks against "##".
    size_t marks = 0, hashes = 0;
    for (int32_t id = 0; id < n; ++id) {
        const std::string& t = texts_[size_t(id)];
        if (t.compare(0, kSpaceMark.size(), kSpaceMark) == 0) ++marks;
        else if (t.size() > 2 && t.compare(0, 2, "##") == 0) ++hashes;
    }
    phantom_space_ = marks >= hashes;

    shown_.resize(size_t(n));
    size_t upper = 0, words = 0;
    for (int32_t id = 0; id < n; ++id) {
        const TokenType ty = types_[size_t(id)];
        if (ty == TokenType::control || ty == TokenType::unknown || ty == TokenType::byte) continue;
        const std::string_view t = texts_[size_t(id)];
        bool start;
        std::string_view bare;
        if (phantom_space_) {
            start = t.compare(0, kSpaceMark.size(), kSpaceMark) == 0;
            bare = start ? t.substr(kSpaceMark.size()) : t;
        } else {
            start = !(t.size() > 2 && t.compare(0, 2, "##") == 0);
            bare = start ? t : t.substr(2);
        }
        if (ty == TokenType::user_defined) start = true;  // an added token shows as a word of its own
        if (!bare.empty()) {
            (start ? start_ : cont_).emplace(bare, id);
            max_piece_ = std::max(max_piece_, bare.size());
        }
        std::string& s = shown_[size_t(id)];
        if (start) {
            // '.', ',', '?' and '!' attach to the previous word, as the
            // reference's clean-up of decoded text does.
            if (!(bare == "." || bare == "," || bare == "?" || bare == "!")) s.push_back(' ');
        }
        s += bare;
        if (ty == TokenType::normal && !(bare.size() > 1 && bare.front() == '[' && bare.back() == ']')) {
            ++words;
            if (is_upper_word(bare)) ++upper;
        }
    }
    // An uncased vocabulary has no upper-case pieces at all (a cased one has
    // thousands); a handful of strays are tolerated.
    lowercase_ = upper * 200 < words;

    matcher_.build(texts_, types_);
}

// ---- normalization and words ---------------------------------------------------------

template <class F>
void WpmTokenizer::for_each_word(std::string_view text, F&& f) const {
    // 1. Clean-up and CJK padding, into UTF-16 for ICU.
    std::u16string u;
    u.reserve(text.size() + 16);
    bool ascii = true;
    for (size_t i = 0; i < text.size();) {
        const auto b = uint8_t(text[i]);
        if (b < 0x80) {
            ++i;
            if (b == '\t' || b == '\n' || b == '\r' || b == ' ') u += u' ';
            else if (b >= 0x21 && b != 0x7F) u += char16_t(b);
            // NUL, other C0 controls (vertical tab and form feed too) and DEL are removed
            continue;
        }
        UChar32 c;
        U8_NEXT(text.data(), i, text.size(), c);
        if (c < 0 || c == 0xFFFD) continue;  // (text is valid UTF-8; U+FFFD is removed)
        const int8_t cat = u_charType(c);
        if (cat == U_CONTROL_CHAR || cat == U_FORMAT_CHAR || cat == U_PRIVATE_USE_CHAR || cat == U_SURROGATE) continue;
        if (u_isUWhiteSpace(c)) {
            u += u' ';
            continue;
        }
        ascii = false;
        const bool pad = is_cjk(c);
        if (pad) u += u' ';
        if (U_IS_BMP(c)) {
            u += char16_t(c);
        } else {
            u += char16_t(U16_LEAD(c));
            u += char16_t(U16_TRAIL(c));
        }
        if (pad) u += u' ';
    }

    // 2. Uncased vocabularies: NFD (then marks are dropped below).
    const bool strip = lowercase_;
    std::u16string d;
    if (strip && !ascii) {
        d.resize(u.size() + u.size() / 2 + 16);
        for (;;) {
            UErrorCode err = U_ZERO_ERROR;
            const int32_t len = unorm2_normalize(nfd(), reinterpret_cast<const UChar*>(u.data()), int32_t(u.size()),
                                                 reinterpret_cast<UChar*>(d.data()), int32_t(d.size()), &err);
            if (err == U_BUFFER_OVERFLOW_ERROR) {
                d.resize(size_t(len));
                continue;
            }
            if (U_FAILURE(err)) fail(Status::internal, std::string("ICU NFD failed: ") + u_errorName(err));
            d.resize(size_t(len));
            break;
        }
        u.swap(d);
    }

    // 3. Marks out, lower case, then words at spaces and around punctuation.
    std::string w;
    const auto flush = [&] {
        if (!w.empty()) f(std::string_view(w));
        w.clear();
    };
    for (size_t i = 0; i < u.size();) {
        UChar32 c;
        U16_NEXT(u.data(), i, u.size(), c);
        if (c < 0x80) {
            if (c == ' ') {
                flush();
                continue;
            }
            if (strip && c >= 'A' && c <= 'Z') c += 'a' - 'A';
        } else {
            if (strip && u_charType(c) == U_NON_SPACING_MARK) continue;
            if (strip) c = u_tolower(c);
        }
        if (is_punct(c)) {
            flush();
            char buf[4];
            int32_t k = 0;
            U8_APPEND_UNSAFE(buf, k, c);
            f(std::string_view(buf, size_t(k)));
            continue;
        }
        if (c < 0x80) {
            w += char(c);
        } else {
            char buf[4];
            int32_t k = 0;
            U8_APPEND_UNSAFE(buf, k, c);
            w.append(buf, size_t(k));
        }
    }
    flush();
}

std::vector<std::string> WpmTokenizer::words(std::string_view text) const {
    std::string sanitized;
    if (!utf8_valid(text)) {
        sanitized = utf8_sanitize(text);
        text = sanitized;
    }
    std::vector<std::string> out;
    for_each_word(text, [&](std::string_view w) { out.emplace_back(w); });
    return out;
}

// ---- WordPiece -------------------------------------------------------------------

void WpmTokenizer::encode_word(std::string_view w, std::vector<int32_t>& out) const {
    const auto cont_byte = [&](size_t k) { return k < w.size() && (uint8_t(w[k]) & 0xC0) == 0x80; };
    size_t chars = 0;
    for (char c : w) chars += (uint8_t(c) & 0xC0) != 0x80;
    const size_t before = out.size();
    if (chars <= kMaxWordChars) {
        for (size_t start = 0; start < w.size();) {
            const auto& map = start == 0 ? start_ : cont_;
            size_t end = std::min(w.size(), start + max_piece_);
            while (cont_byte(end)) --end;  // never cut a character
            int32_t hit = -1;
            while (end > start) {
                const auto it = map.find(w.substr(start, end - start));
                if (it != map.end()) {
                    hit = it->second;
                    break;
                }
                do --end;
                while (end > start && cont_byte(end));
            }
            if (hit < 0) {
                out.resize(before);  // no full cover: the whole word is unknown
                break;
            }
            out.push_back(hit);
            start = end;
        }
        if (out.size() > before) return;
    }
    if (unk_ >= 0) out.push_back(unk_);
}

std::vector<int32_t> WpmTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::string sanitized;
    if (!utf8_valid(text)) {
        sanitized = utf8_sanitize(text);
        text = sanitized;
    }
    std::vector<int32_t> out;
    out.reserve(text.size() / 4 + 2);
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    partition(
        text, parse_special,
        [&](std::string_view seg) { for_each_word(seg, [&](std::string_view w) { encode_word(w, out); }); },
        [&](int32_t id) { out.push_back(id); });
    if (add_bos && sep_ >= 0) out.push_back(sep_);
    return out;
}

std::string WpmTokenizer::piece(int32_t id, bool special) const {
    check_id(id);
    switch (types_[size_t(id)]) {
        case TokenType::normal:
        case TokenType::user_defined:
        case TokenType::unused: return shown_[size_t(id)];
        case TokenType::control:
        case TokenType::unknown:
        case TokenType::byte: break;
    }
    return special ? " " + texts_[size_t(id)] : std::string();
}

}  // namespace ember
