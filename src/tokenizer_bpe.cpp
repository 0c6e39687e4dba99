// Byte-level BPE ("gpt2" vocabularies): the pre-tokenizers as PCRE2 regex
// splits, GPT-2's byte-to-unicode map, and BPE merging on token ids. See
// ember/tokenizer/bpe.hpp for the rules and the reasons.
#include "ember/tokenizer/bpe.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "ember/common.hpp"

namespace ember {

namespace {

// ---- GPT-2's byte-to-unicode map --------------------------------------------------
// Printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for
// themselves; the other 68 (controls, space, DEL, the C1 range, NBSP, soft
// hyphen) take U+0100, U+0101, ... in byte order, so every byte has a visible
// character and byte-level tokens are printable strings.
struct ByteMap {
    std::array<char32_t, 256> cp{};
    std::array<int16_t, 0x144> byte{};  // code point -> byte, -1 if not a mapped character

    ByteMap() {
        byte.fill(-1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            cp[size_t(b)] = printable ? char32_t(b) : char32_t(0x100 + extra++);
            byte[cp[size_t(b)]] = int16_t(b);
        }
    }
    // Appends the UTF-8 of byte b's character (one or two bytes: all are below U+0800).
    void append(std::string& out, uint8_t b) const {
        const char32_t c = cp[b];
        if (c < 0x80) {
            out += char(c);
        } else {
            out += char(0xC0 | (c >> 6));
            out += char(0x80 | (c & 0x3F));
        }
    }
};

const ByteMap& byte_map() {
    static const ByteMap m;
    return m;
}

// The bytes a token text stands for: each character through the reverse map;
// if any character is not a mapped one, the text's own UTF-8 (the reference
// decoder's rule). `text` is valid UTF-8 or not, either way this terminates.
std::string byte_decode(std::string_view text) {
    const ByteMap& m = byte_map();
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const auto c0 = uint8_t(text[i]);
        char32_t c;
        size_t len;
        if (c0 < 0x80) {
            c = c0;
            len = 1;
        } else if ((c0 & 0xE0) == 0xC0 && i + 1 < text.size() && (uint8_t(text[i + 1]) & 0xC0) == 0x80) {
            c = char32_t(c0 & 0x1F) << 6 | (uint8_t(text[i + 1]) & 0x3F);
            len = 2;
        } else {
            return std::string(text);  // beyond U+07FF (or malformed): not a byte-level string
        }
        if (c >= m.byte.size() || m.byte[c] < 0) return std::string(text);
        out += char(m.byte[c]);
        i += len;
    }
    return out;
}

// ---- the pre-tokenizers ---------------------------------------------------------------
// Each is the sequence of splits of the model family's tokenizer.json (Split
// and Digits/Punctuation pre-tokenizers, and ByteLevel's own regex when
// use_regex is set), in order. \s is rewritten at compile time (see bpe.hpp).

// GPT-2 (ByteLevel with use_regex).
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (and DBRX, Smaug, ChatGLM-4): case-insensitive contractions, numbers in threes.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as Llama 3 but single digits.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Mistral's Tekken: case-aware words, single digits.
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-4o (o200k): Tekken's words with contractions attached, numbers in threes.
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek's CJK ranges (U+4E00..U+9FA5, U+0800..U+4E00, Hangul U+AC00..U+D7FF).
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
// DeepSeek LLM's cased-letter class (Latin, Greek, Cyrillic, Armenian, Georgian, ...).
constexpr const char* kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
// BLOOM: anything but white space and a few sentence marks (the reference's
// nested class written flat; '(' '|' ')' are members, as there).
constexpr const char* kBloom = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";

struct Split {
    const char* pattern;
    bool mapped;  // after the byte-level mapping
};

struct PreSpec {
    const char* name;                              // canonical
    std::vector<std::string_view> aliases;         // values of tokenizer.ggml.pre
    std::vector<Split> splits;
    bool ignore_merges = false;
    bool add_bos = false;
};

const std::vector<PreSpec>& pre_specs() {
    static const std::vector<PreSpec> specs = {
        {"gpt2",
         {"gpt-2", "gpt2", "default", "phi-2", "mpt", "olmo", "jais", "roberta-bpe", "gigachat", "jina-es", "jina-de",
          "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code"},
         {{kGpt2, false}}},
        // Digits(individual_digits) then ByteLevel's regex.
        {"starcoder",
         {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
         {{R"(\p{N})", false}, {kGpt2, false}}},
        {"llama3", {"llama3", "llama-v3", "llama-bpe", "falcon3"}, {{kLlama3, false}}, true, true},
        {"dbrx", {"dbrx", "smaug-bpe", "chatglm-bpe"}, {{kLlama3, false}}},
        {"qwen2", {"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2"}, {{kQwen2, false}}},
        {"deepseek-llm",
         {"deepseek-llm"},
         {{R"([\r\n])", false},
          {kDeepseekLetters, false},
          {R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)", false},
          {R"(\s+$)", false},
          {kDeepseekCjk, false},
          {R"(\p{N}+)", false}}},
        {"deepseek-coder",
         {"deepseek-coder"},
         {{R"([\r\n])", false},
          {R"(\s?\p{L}+)", false},
          {R"(\s?\p{P}+)", false},
          {kDeepseekCjk, false},
          {R"(\p{N})", false}}},
        {"deepseek-v3",
         {"deepseek-v3"},
         {{R"(\p{N}{1,3})", false},
          {R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)", false},
          {R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
           false}}},
        // Punctuation (contiguous runs; ASCII symbols count, as Rust's
        // is_ascii_punctuation), ByteLevel's regex, then on the mapped text
        // Digits (contiguous) and numbers cut into threes.
        {"falcon",
         {"falcon"},
         {{R"([\p{P}\$\+<=>\^~\|`]+)", false}, {kGpt2, false}, {R"(\p{N}+)", true}, {R"([0-9][0-9][0-9])", true}}},
        {"bloom", {"bloom", "poro-chat", "gpt3-finnish"}, {{kBloom, false}}},
        {"viking", {"viking"}, {{kBloom, false}, {R"(\p{N})", false}}},
        {"tekken", {"tekken"}, {{kTekken, false}}, true, true},
        {"gpt-4o", {"gpt-4o"}, {{kGpt4o, false}}},
    };
    return specs;
}

// \s and \S as Unicode's White_Space (see bpe.hpp); "\\s" (an escaped
// backslash followed by s) is left alone.
std::string rewrite_space_classes(std::string_view p) {
    std::string out;
    out.reserve(p.size() + 32);
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '\\' && i + 1 < p.size()) {
            if (p[i + 1] == 's') {
                out += "\\p{White_Space}";
            } else if (p[i + 1] == 'S') {
                out += "\\P{White_Space}";
            } else {
                out += p[i];
                out += p[i + 1];
            }
            ++i;
        } else {
            out += p[i];
        }
    }
    return out;
}

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
    return reinterpret_cast<const char*>(buf);
}

constexpr std::string_view kMergesKey = "tokenizer.ggml.merges";

}  // namespace

// ---- Regex: one compiled pattern ------------------------------------------------------

struct BpeTokenizer::Regex {
    pcre2_code* code = nullptr;
    bool jit = false;
    uint32_t captures = 0;

    explicit Regex(std::string_view pattern) {
        const std::string p = rewrite_space_classes(pattern);
        int err = 0;
        PCRE2_SIZE at = 0;
        code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &at,
                             nullptr);
        if (!code)
            fail(Status::internal, "pre-tokenizer regex does not compile at offset " + std::to_string(at) + ": " +
                                       pcre2_message(err));
        // Without JIT (a build of PCRE2 without it) the interpreter gives the same matches, slower.
        jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
        pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &captures);
    }
    ~Regex() { pcre2_code_free(code); }
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // The first match in s[0, n) starting at or after `start` (a character
    // boundary of valid UTF-8): sets [*b, *e) and returns true, or false.
    bool find(const char* s, size_t n, size_t start, pcre2_match_data* md, size_t* b, size_t* e) const {
        const auto subject = reinterpret_cast<PCRE2_SPTR>(s);
        int rc = jit ? pcre2_jit_match(code, subject, n, start, 0, md, nullptr)
                     : pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && jit)  // e.g. the JIT stack ran out: the interpreter has none
            rc = pcre2_match(code, subject, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) return false;
        if (rc < 0) fail(Status::internal, "pre-tokenizer regex failed: " + pcre2_message(rc));
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        *b = ov[0];
        *e = ov[1];
        return true;
    }
};

// ---- per-call scratch ---------------------------------------------------------------

struct BpeTokenizer::Scratch {
    pcre2_match_data* md = nullptr;

    WordCache cache;  // words of this call already merged

    // BPE symbols of the word being merged.
    std::vector<int32_t> id, prev, next, rank, merged;
    struct Pair {
        int32_t rank, pos, left, right, merged;
    };
    std::vector<Pair> heap;
    std::string mapped;            // a word in byte-level characters (ignore_merges look-ups)
    std::string piece_mapped;      // a piece being split after the mapping (Falcon)
    std::vector<uint32_t> raw_at;  // piece_mapped offset -> raw offset

    explicit Scratch(uint32_t pairs) {
        md = pcre2_match_data_create(pairs, nullptr);
        if (!md) fail(Status::out_of_memory, "pre-tokenizer: no memory for match data");
    }
    ~Scratch() { pcre2_match_data_free(md); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

};

// ---- construction -----------------------------------------------------------------

std::vector<std::string> BpeTokenizer::supported_pre_tokenizers() {
    std::vector<std::string> names;
    for (const PreSpec& s : pre_specs())
        for (std::string_view a : s.aliases) names.emplace_back(a);
    return names;
}

BpeTokenizer::BpeTokenizer(const gguf::GgufFile& file) : Tokenizer(file) {
    const int32_t n = n_vocab();

    // The pre-tokenizer.
    const std::string_view pre = file.get_string("tokenizer.ggml.pre", "default");
    const PreSpec* spec = nullptr;
    for (const PreSpec& s : pre_specs())
        if (std::find(s.aliases.begin(), s.aliases.end(), pre) != s.aliases.end()) spec = &s;
    if (!spec) {
        std::string list;
        for (const std::string& a : supported_pre_tokenizers()) list += (list.empty() ? "" : ", ") + a;
        fail(Status::unsupported, "vocabulary: pre-tokenizer '" + std::string(pre) +
                                      "' (tokenizer.ggml.pre) is not supported; supported: " + list);
    }
    pre_name_ = spec->name;
    ignore_merges_ = spec->ignore_merges;
    for (const Split& sp : spec->splits) {
        Step st;
        st.re = std::make_unique<Regex>(sp.pattern);
        st.mapped = sp.mapped;
        max_captures_ = std::max(max_captures_, st.re->captures + 1);
        steps_.push_back(std::move(st));
    }
    add_bos_ = file.get_bool("tokenizer.ggml.add_bos_token", spec->add_bos);
    add_space_prefix_ = false;

    // Text -> id (the first id of a repeated text, as sentencepiece would).
    text_to_id_.reserve(size_t(n));
    for (int32_t id = 0; id < n; ++id) text_to_id_.emplace(texts_[size_t(id)], id);
    const auto lookup = [&](std::string_view t) {
        const auto it = text_to_id_.find(t);
        return it == text_to_id_.end() ? -1 : it->second;
    };

    // The token of each byte's character. Only normal tokens take part in BPE:
    // an added token of the same text (a user-defined "õ") is matched as such.
    const ByteMap& bm = byte_map();
    for (int b = 0; b < 256; ++b) {
        std::string c;
        bm.append(c, uint8_t(b));
        byte_token_[size_t(b)] = lookup(c);
    }

    // Merges, ranked by their order.
    const gguf::Value* merges = file.get_array(kMergesKey, gguf::ValueType::string);
    if (!merges && file.has(kMergesKey))
        fail(Status::bad_format, "vocabulary: '" + std::string(kMergesKey) + "' is not an array of strings");
    const size_t n_lines = merges ? merges->strings.size() : 0;
    size_t cap = 16;
    while (cap < 2 * n_lines + 2) cap *= 2;
    merges_.assign(cap, MergeSlot{});
    merge_shift_ = 64 - __builtin_ctzll(cap);
    std::string joined;
    for (size_t r = 0; r < n_lines; ++r) {
        const std::string_view line = merges->strings[r];
        // The separator is the first space after the first character (a
        // left part may itself be " " in a vocabulary that is not byte-level).
        const size_t sp = line.size() > 1 ? line.find(' ', 1) : std::string_view::npos;
        if (sp == std::string_view::npos)
            fail(Status::bad_format, "vocabulary: merge " + std::to_string(r) + " ('" + std::string(line) +
                                         "') is not two tokens separated by a space");
        const std::string_view a = line.substr(0, sp), b = line.substr(sp + 1);
        joined.assign(a);
        joined += b;
        const int32_t ia = lookup(a), ib = lookup(b), im = lookup(joined);
        // A merge of or into texts outside the vocabulary can never apply;
        // the reference refuses such files, here they are inert.
        if (ia < 0 || ib < 0 || im < 0) continue;
        if (find_merge(ia, ib)) continue;  // a repeated pair keeps its first (best) rank
        add_merge(ia, ib, int32_t(r), im);
        ++n_merges_;
    }

    decoded_.resize(size_t(n));
    for (int32_t id = 0; id < n; ++id)
        if (types_[size_t(id)] == TokenType::normal) decoded_[size_t(id)] = byte_decode(texts_[size_t(id)]);

    matcher_.build(texts_, types_);
}

BpeTokenizer::~BpeTokenizer() = default;

const BpeTokenizer::MergeSlot* BpeTokenizer::find_merge(int32_t left, int32_t right) const {
    const uint64_t key = uint64_t(uint32_t(left)) << 32 | uint32_t(right);
    const size_t mask = merges_.size() - 1;
    for (size_t i = size_t((key * 0x9E3779B97F4A7C15ull) >> merge_shift_);; i = (i + 1) & mask) {
        const MergeSlot& s = merges_[i];
        if (s.key == key) return &s;
        if (s.key == ~uint64_t(0)) return nullptr;
    }
}

void BpeTokenizer::add_merge(int32_t left, int32_t right, int32_t rank, int32_t id) {
    const uint64_t key = uint64_t(uint32_t(left)) << 32 | uint32_t(right);
    const size_t mask = merges_.size() - 1;
    size_t i = size_t((key * 0x9E3779B97F4A7C15ull) >> merge_shift_);
    while (merges_[i].key != ~uint64_t(0)) i = (i + 1) & mask;
    merges_[i] = MergeSlot{key, rank, id};
}

// ---- encoding -------------------------------------------------------------------

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
    std::string sanitized;
    if (!utf8_valid(text)) {
        sanitized = utf8_sanitize(text);
        text = sanitized;
    }
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos && bos_ >= 0) out.push_back(bos_);
    Scratch sc(max_captures_);
    partition(
        text, parse_special, [&](std::string_view seg) { encode_plain(seg, sc, out); },
        [&](int32_t id) { out.push_back(id); });
    if (add_bos && add_eos_ && eos_ >= 0) out.push_back(eos_);
    return out;
}

void BpeTokenizer::encode_plain(std::string_view text, Scratch& sc, std::vector<int32_t>& out) const {
    split(0, text.data(), text.size(), sc, out);
}

void BpeTokenizer::split(size_t k, const char* s, size_t n, Scratch& sc, std::vector<int32_t>& out) const {
    if (k == steps_.size()) {
        word(std::string_view(s, n), sc, out);
        return;
    }
    if (steps_[k].mapped) {
        // Map this piece to byte-level characters once; the remaining splits
        // all see mapped text (mapped steps come last).
        const ByteMap& bm = byte_map();
        std::string& pm = sc.piece_mapped;
        pm.clear();
        sc.raw_at.clear();
        for (size_t i = 0; i < n; ++i) {
            const size_t before = pm.size();
            bm.append(pm, uint8_t(s[i]));
            for (size_t j = before; j < pm.size(); ++j) sc.raw_at.push_back(uint32_t(i));
        }
        sc.raw_at.push_back(uint32_t(n));
        // Pieces of the mapped text are handed back as raw ranges.
        const char* raw = s;
        struct Frame {
            size_t k, b, e;
        };
        std::vector<Frame> todo{{k, 0, pm.size()}};
        // Depth-first, in order: a stack of pending ranges, pushed in reverse.
        while (!todo.empty()) {
            const Frame f = todo.back();
            todo.pop_back();
            if (f.k == steps_.size()) {
                const size_t rb = sc.raw_at[f.b], re = sc.raw_at[f.e];
                word(std::string_view(raw + rb, re - rb), sc, out);
                continue;
            }
            std::vector<Frame> parts;
            const char* m = pm.data() + f.b;
            const size_t mn = f.e - f.b;
            size_t pos = 0, gap = 0, mb, me;
            while (pos < mn && steps_[f.k].re->find(m, mn, pos, sc.md, &mb, &me)) {
                if (me == mb) {  // an empty match splits nothing
                    pos = mb + 1;
                    while (pos < mn && (uint8_t(m[pos]) & 0xC0) == 0x80) ++pos;
                    continue;
                }
                if (mb > gap) parts.push_back({f.k + 1, f.b + gap, f.b + mb});
                parts.push_back({f.k + 1, f.b + mb, f.b + me});
                pos = gap = me;
            }
            if (gap < mn) parts.push_back({f.k + 1, f.b + gap, f.e});
            for (auto it = parts.rbegin(); it != parts.rend(); ++it) todo.push_back(*it);
        }
        return;
    }
    const Regex& re = *steps_[k].re;
    size_t pos = 0, gap = 0, b, e;
    while (pos < n && re.find(s, n, pos, sc.md, &b, &e)) {
        if (e == b) {  // an empty match splits nothing; step over one character
            pos = b + 1;
            while (pos < n && (uint8_t(s[pos]) & 0xC0) == 0x80) ++pos;
            continue;
        }
        if (b > gap) split(k + 1, s + gap, b - gap, sc, out);
        split(k + 1, s + b, e - b, sc, out);
        pos = gap = e;
    }
    if (gap < n) split(k + 1, s + gap, n - gap, sc, out);
}

void BpeTokenizer::word(std::string_view w, Scratch& sc, std::vector<int32_t>& out) const {
    if (w.size() == 1 && !ignore_merges_) {
        const int32_t id = byte_token_[uint8_t(w[0])];
        if (id >= 0) out.push_back(id);
        return;
    }
    sc.cache.ids(w, out, [&](std::vector<int32_t>& o) { merge_word(w, sc, o); });
}

void BpeTokenizer::merge_word(std::string_view w, Scratch& sc, std::vector<int32_t>& out) const {
    const size_t n = w.size();
    if (ignore_merges_) {
        // Llama 3 / Tekken: a word that is itself a token is taken whole.
        const ByteMap& bm = byte_map();
        sc.mapped.clear();
        for (char c : w) bm.append(sc.mapped, uint8_t(c));
        const auto it = text_to_id_.find(sc.mapped);
        if (it != text_to_id_.end() && types_[size_t(it->second)] == TokenType::normal) {
            out.push_back(it->second);
            return;
        }
        if (n == 1) {
            const int32_t id = byte_token_[uint8_t(w[0])];
            if (id >= 0) out.push_back(id);
            return;
        }
    }
    auto& id = sc.id;
    auto& prev = sc.prev;
    auto& next = sc.next;
    id.resize(n);
    prev.resize(n);
    next.resize(n);
    for (size_t i = 0; i < n; ++i) {
        id[i] = byte_token_[uint8_t(w[i])];
        prev[i] = int32_t(i) - 1;
        next[i] = i + 1 < n ? int32_t(i + 1) : -1;
    }
    // Joins symbol j into its left neighbour i as token m.
    const auto join = [&](int32_t i, int32_t j, int32_t m) {
        id[size_t(i)] = m;
        id[size_t(j)] = -2;  // gone
        next[size_t(i)] = next[size_t(j)];
        if (next[size_t(j)] >= 0) prev[size_t(next[size_t(j)])] = i;
    };

    if (n <= 48) {
        // Short words: the rank of each adjacent pair in an array, the best
        // found by a scan; each merge looks up only the two pairs it changes.
        auto& rank = sc.rank;
        auto& merged = sc.merged;
        rank.resize(n);
        merged.resize(n);
        const auto set_pair = [&](int32_t i) {
            const int32_t j = next[size_t(i)];
            const MergeSlot* m = j >= 0 && id[size_t(i)] >= 0 && id[size_t(j)] >= 0
                                     ? find_merge(id[size_t(i)], id[size_t(j)])
                                     : nullptr;
            rank[size_t(i)] = m ? m->rank : INT32_MAX;
            merged[size_t(i)] = m ? m->id : -1;
        };
        for (size_t i = 0; i < n; ++i) set_pair(int32_t(i));
        for (;;) {
            int32_t best = -1, best_rank = INT32_MAX;
            for (int32_t i = 0; i >= 0; i = next[size_t(i)])
                if (rank[size_t(i)] < best_rank) {  // strict: the leftmost of equal ranks
                    best_rank = rank[size_t(i)];
                    best = i;
                }
            if (best < 0) break;
            join(best, next[size_t(best)], merged[size_t(best)]);
            set_pair(best);
            if (prev[size_t(best)] >= 0) set_pair(prev[size_t(best)]);
        }
    } else {
        // Long words: a min-heap of candidate pairs ordered by (rank, position);
        // an entry whose symbols have changed since it was pushed is skipped.
        auto& heap = sc.heap;
        heap.clear();
        const auto later = [](const Scratch::Pair& a, const Scratch::Pair& b) {
            return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
        };
        const auto push = [&](int32_t i) {
            if (i < 0) return;
            const int32_t j = next[size_t(i)];
            if (j < 0 || id[size_t(i)] < 0 || id[size_t(j)] < 0) return;
            if (const MergeSlot* m = find_merge(id[size_t(i)], id[size_t(j)])) {
                heap.push_back({m->rank, i, id[size_t(i)], id[size_t(j)], m->id});
                std::push_heap(heap.begin(), heap.end(), later);
            }
        };
        for (size_t i = 0; i + 1 < n; ++i) push(int32_t(i));
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), later);
            const Scratch::Pair p = heap.back();
            heap.pop_back();
            const int32_t j = next[size_t(p.pos)];
            if (id[size_t(p.pos)] != p.left || j < 0 || id[size_t(j)] != p.right) continue;  // stale
            join(p.pos, j, p.merged);
            push(prev[size_t(p.pos)]);
            push(p.pos);
        }
    }
    for (int32_t i = 0; i >= 0; i = next[size_t(i)])
        if (id[size_t(i)] >= 0) out.push_back(id[size_t(i)]);
}

// ---- decoding -------------------------------------------------------------------

std::string BpeTokenizer::piece(int32_t id, bool special) const {
    check_id(id);
    switch (types_[size_t(id)]) {
        case TokenType::normal: return decoded_[size_t(id)];
        case TokenType::user_defined: return texts_[size_t(id)];
        case TokenType::control:
        case TokenType::unknown:
        case TokenType::unused:
        case TokenType::byte: break;
    }
    return special ? texts_[size_t(id)] : std::string();
}

}  // namespace ember
