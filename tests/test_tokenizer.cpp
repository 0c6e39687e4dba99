// Tokenizer: the conformance vectors of ../shared/testdata/vocab are the judge
// (every case of every vocabulary — SentencePiece, byte-level BPE, WordPiece —
// must encode to exactly the expected ids), the real sentencepiece processor
// loaded from Meta's llama2 tokenizer.model is a second judge, and the rest
// checks what the vectors cannot: lossless round trips over generated text,
// streaming detokenization, invalid UTF-8, memory linear in the text, bad ids,
// special tokens, BPE merging against a naive reference, WordPiece rules and
// malformed vocabularies.
#define BOOST_TEST_MODULE test_tokenizer
#include <boost/test/unit_test.hpp>

#include <malloc.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ember/gguf.hpp"
#include "ember/gguf_writer.hpp"
#include "ember/tokenizer/bpe.hpp"
#include "ember/tokenizer/spm.hpp"
#include "ember/tokenizer/tokenizer.hpp"
#include "ember/tokenizer/wpm.hpp"

// ---- heap accounting: every operator new of this binary is counted, so a test
// can measure the peak of live bytes while it tokenizes (malloc_usable_size
// gives the size back on delete) -------------------------------------------------------
namespace {
std::atomic<int64_t> g_live{0}, g_peak{0};
void* counted_alloc(size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p) throw std::bad_alloc();
    const int64_t live = g_live += int64_t(malloc_usable_size(p));
    for (int64_t peak = g_peak.load(); live > peak && !g_peak.compare_exchange_weak(peak, live);) {
    }
    return p;
}
void counted_free(void* p) noexcept {
    if (!p) return;
    g_live -= int64_t(malloc_usable_size(p));
    std::free(p);
}
}  // namespace
void* operator new(size_t n) { return counted_alloc(n); }
void* operator new[](size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, size_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t) noexcept { counted_free(p); }

using namespace ember;
namespace utf = boost::unit_test;

namespace {

const std::string kShared = EMBER_SHARED_DIR;
const std::string kVocabDir = kShared + "/testdata/vocab/";
const std::string kLlamaModel = kShared + "/models/llama2-tokenizer.model";
constexpr const char* kSeparator = "\n__ggml_vocab_test__\n";

std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A vocabulary-only GGUF kept in memory (the GgufFile views its bytes).
struct Vocab {
    std::vector<uint8_t> bytes;
    gguf::GgufFile file;
    std::unique_ptr<Tokenizer> tok;

    explicit Vocab(std::vector<uint8_t> b, const std::string& what = "vocab")
        : bytes(std::move(b)), file(gguf::GgufFile::parse(bytes.data(), bytes.size(), what)),
          tok(Tokenizer::from_gguf(file)) {}
};

std::unique_ptr<Vocab> load_vocab(const std::string& name) {
    const std::string path = kVocabDir + "ggml-vocab-" + name + ".gguf";
    const std::string s = slurp(path);
    return std::make_unique<Vocab>(std::vector<uint8_t>(s.begin(), s.end()), path);
}

// Skips a test (with the reason in the log) when a shared file is absent.
struct Needs {
    std::string path;
    boost::test_tools::assertion_result operator()(utf::test_unit_id) const {
        boost::test_tools::assertion_result r(std::filesystem::exists(path));
        if (!r) r.message() << path << " is absent (the shared test data is not checked out)";
        return r;
    }
};
Needs needs_vocab(const std::string& name) { return {kVocabDir + "ggml-vocab-" + name + ".gguf"}; }

// The .inp file holds each case followed by a line reading __ggml_vocab_test__
// (so "\n__ggml_vocab_test__\n" ends every case, the last one included; a case
// may be empty or hold newlines). The .out file has one line per case: the
// expected ids, each preceded by a space.
struct Case {
    std::string text;
    std::vector<int32_t> ids;
};

std::vector<Case> read_cases(const std::string& name) {
    const std::string base = kVocabDir + "ggml-vocab-" + name + ".gguf";
    const std::string inp = slurp(base + ".inp");
    std::vector<Case> cases;
    const std::string sep = kSeparator;
    for (size_t pos = 0;;) {
        const size_t end = inp.find(sep, pos);
        if (end == std::string::npos) {
            BOOST_REQUIRE_MESSAGE(pos == inp.size(), base << ".inp: text after the last separator");
            break;
        }
        cases.push_back({inp.substr(pos, end - pos), {}});
        pos = end + sep.size();
    }
    std::istringstream out(slurp(base + ".out"));
    std::string line;
    size_t k = 0;
    for (; std::getline(out, line); ++k) {
        BOOST_REQUIRE_MESSAGE(k < cases.size(), base << ".out has more lines than .inp has cases");
        std::istringstream ls(line);
        for (int32_t id; ls >> id;) cases[k].ids.push_back(id);
    }
    BOOST_REQUIRE_MESSAGE(k == cases.size(), base << ".out has " << k << " lines for " << cases.size() << " cases");
    return cases;
}

std::string show(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
        s += ' ';
        s += std::to_string(id);  // not " " + ...: GCC 12 gives a false -Wrestrict there (PR 105329)
    }
    return s;
}

int32_t id_of(const Tokenizer& tok, std::string_view text) {
    for (int32_t id = 0; id < tok.n_vocab(); ++id)
        if (tok.text(id) == text) return id;
    throw std::runtime_error("no token " + std::string(text));
}

std::vector<int32_t> to_ids(const std::vector<int>& v) { return {v.begin(), v.end()}; }

bool contains(const std::vector<int32_t>& ids, int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

bool is_valid_utf8(const std::string& s) { return utf8_sanitize(s) == s; }

bool is_wordpiece(const Tokenizer& tok) { return dynamic_cast<const WpmTokenizer*>(&tok) != nullptr; }

// Every case of a vocabulary encodes exactly; decoding gives the text back
// (SentencePiece with byte fallback and byte-level BPE are lossless;
// WordPiece normalizes, so only its ids are compared).
void check_conformance(const std::string& name) {
    const auto v = load_vocab(name);
    const Tokenizer& tok = *v->tok;
    const bool lossless = !is_wordpiece(tok);
    const std::vector<Case> cases = read_cases(name);
    BOOST_TEST_MESSAGE(name << ": " << cases.size() << " cases");
    BOOST_TEST(cases.size() > 40u);
    for (size_t k = 0; k < cases.size(); ++k) {
        BOOST_TEST_CONTEXT(name << " case " << k << " [" << cases[k].text << "]") {
            const std::vector<int32_t> got = tok.encode(cases[k].text, false, false);
            BOOST_TEST(got == cases[k].ids, "got" << show(got) << "\nwant" << show(cases[k].ids));
            if (lossless) BOOST_TEST(tok.decode(got, false) == cases[k].text);
            // As a whole sequence: BOS first, then the same ids, then what the
            // vocabulary closes a sequence with (BERT: [CLS] ... [SEP]). None
            // of these texts holds a special token, so parse_special changes nothing.
            std::vector<int32_t> whole{tok.bos()};
            whole.insert(whole.end(), cases[k].ids.begin(), cases[k].ids.end());
            if (is_wordpiece(tok)) whole.push_back(tok.sep());
            else if (tok.add_eos_default()) whole.push_back(tok.eos());
            BOOST_TEST(tok.encode(cases[k].text, true, true) == whole);
        }
    }
}

// A small SentencePiece-style vocabulary: <unk> <s> </s>, the 256 byte tokens
// (ids 3..258), then "▁" (259) and a few pieces scored by length, so longer
// merges win. Tests edit it before writing it out.
struct VocabSpec {
    std::string model = "llama";
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<int32_t> types;
    int64_t bos = 1, eos = 2, unk = 0;  // -1: not written
};

VocabSpec small_vocab(bool with_bytes = true) {
    VocabSpec s;
    s.tokens = {"<unk>", "<s>", "</s>"};
    s.types = {2, 3, 3};
    if (with_bytes) {
        char buf[8];
        for (int b = 0; b < 256; ++b) {
            std::snprintf(buf, sizeof buf, "<0x%02X>", b);
            s.tokens.emplace_back(buf);
            s.types.push_back(6);
        }
    }
    const std::string sp = "\xE2\x96\x81";
    for (const std::string& t : std::vector<std::string>{sp, "a", "b", "c", sp + "a", sp + "b", "ab", sp + "ab"}) {
        s.tokens.push_back(t);
        s.types.push_back(1);
    }
    s.scores.assign(s.tokens.size(), 0.0f);
    for (size_t i = 0; i < s.tokens.size(); ++i)
        if (s.types[i] == 1) s.scores[i] = float(s.tokens[i].size());
    return s;
}

std::vector<uint8_t> write_vocab(const VocabSpec& s) {
    gguf::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("tokenizer.ggml.model", s.model);
    if (!s.tokens.empty()) w.set_strings("tokenizer.ggml.tokens", s.tokens);
    if (!s.scores.empty()) w.set_f32s("tokenizer.ggml.scores", s.scores);
    if (!s.types.empty()) w.set_i32s("tokenizer.ggml.token_type", s.types);
    if (s.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(s.bos));
    if (s.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(s.eos));
    if (s.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(s.unk));
    return w.to_bytes();
}

void expect_vocab_error(const VocabSpec& s, Status want, const std::string& needle) {
    try {
        Vocab v(write_vocab(s));
        BOOST_ERROR("accepted a bad vocabulary (wanted: " << needle << ")");
    } catch (const Error& e) {
        BOOST_TEST(int(e.status()) == int(want), "status for '" << needle << "': " << e.what());
        BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos,
                   "message '" << e.what() << "' lacks '" << needle << "'");
    }
}

template <class F>
void expect_bad_id(F&& f, const std::string& needle) {
    try {
        f();
        BOOST_ERROR("accepted a bad token id (wanted: " << needle << ")");
    } catch (const Error& e) {
        BOOST_TEST(int(e.status()) == int(Status::invalid_argument), e.what());
        BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos,
                   "message '" << e.what() << "' lacks '" << needle << "'");
    }
}

// Strings that probe the edges: whitespace runs, scripts, emoji, and text
// that looks like special tokens.
const std::vector<std::string> kExtraTexts = {
    "<s>", "</s>", "<unk>", "a<s>b", "Hello</s>", "<0x41>", "\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81x",
    "\xEF\xBF\xBD", std::string("a\0b", 3), "\r\n\r\n", "\xF0\x9F\x98\x80\xF0\x9F\x98\x80", "  leading and trailing  ",
    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE6\x96\x87\xE7\xAB\xA0", "x", "\t\t",
};

// Invalid UTF-8 of every kind: lone continuation bytes, truncated sequences
// (also at the end), overlong forms, surrogates, bytes that never occur.
const std::vector<std::string> kInvalidTexts = {
    "\x80", "abc\xBF", "\xC3", "Hi \xE2\x82", "\xE2\x82 x", "\xF0\x9F\x98", "\xC0\xAF", "\xE0\x80\xAF",
    "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF5", "\xFF\xFE", "a\xC3\x28" "b", "\xF8\x88\x80\x80\x80",
};

}  // namespace

// ---- conformance vectors -------------------------------------------------------

BOOST_AUTO_TEST_CASE(conformance_llama_spm, *utf::precondition(needs_vocab("llama-spm"))) {
    check_conformance("llama-spm");
}

BOOST_AUTO_TEST_CASE(conformance_phi_3, *utf::precondition(needs_vocab("phi-3"))) {
    check_conformance("phi-3");
}

BOOST_AUTO_TEST_CASE(conformance_gpt_2, *utf::precondition(needs_vocab("gpt-2"))) {
    check_conformance("gpt-2");
}

BOOST_AUTO_TEST_CASE(conformance_deepseek_coder, *utf::precondition(needs_vocab("deepseek-coder"))) {
    check_conformance("deepseek-coder");
}

BOOST_AUTO_TEST_CASE(conformance_mpt, *utf::precondition(needs_vocab("mpt"))) {
    check_conformance("mpt");
}

BOOST_AUTO_TEST_CASE(conformance_starcoder, *utf::precondition(needs_vocab("starcoder"))) {
    check_conformance("starcoder");
}

BOOST_AUTO_TEST_CASE(conformance_refact, *utf::precondition(needs_vocab("refact"))) {
    check_conformance("refact");
}

BOOST_AUTO_TEST_CASE(conformance_bert_bge, *utf::precondition(needs_vocab("bert-bge"))) {
    check_conformance("bert-bge");
}

// Every .inp/.out pair in the folder has a test above (a new pair fails here
// until it gets one), and every vocabulary without vectors loads.
BOOST_AUTO_TEST_CASE(every_vector_file_is_tested, *utf::precondition(Needs{kVocabDir})) {
    const std::vector<std::string> tested = {"llama-spm", "phi-3",    "gpt-2",   "deepseek-coder",
                                             "mpt",       "starcoder", "refact", "bert-bge"};
    for (const auto& e : std::filesystem::directory_iterator(kVocabDir)) {
        const std::string f = e.path().filename().string();
        if (f.size() < 4 || f.substr(f.size() - 4) != ".inp") continue;
        const std::string name = f.substr(std::string("ggml-vocab-").size(), f.size() - 4 - 5 - 11);
        const bool has_test = std::find(tested.begin(), tested.end(), name) != tested.end();
        BOOST_TEST(has_test, f << " has no conformance test");
    }
}

// ---- the real sentencepiece model as a second judge ------------------------------

BOOST_AUTO_TEST_CASE(matches_sentencepiece_model_file,
                     *utf::precondition(needs_vocab("llama-spm")) * utf::precondition(Needs{kLlamaModel})) {
    sentencepiece::SentencePieceProcessor ref;
    BOOST_REQUIRE(ref.Load(kLlamaModel).ok());
    const auto v = load_vocab("llama-spm");
    const Tokenizer& tok = *v->tok;
    BOOST_REQUIRE(ref.GetPieceSize() == tok.n_vocab());

    std::vector<std::string> texts = kExtraTexts;
    for (const Case& c : read_cases("llama-spm")) texts.push_back(c.text);
    for (const std::string& t : kInvalidTexts) texts.push_back(t);
    for (const std::string& t : texts) {
        BOOST_TEST_CONTEXT("text [" << t << "]") {
            BOOST_TEST(tok.encode(t, false, false) == to_ids(ref.EncodeAsIds(t)));
        }
    }

    // Random bytes, mostly not UTF-8, and random mixes of characters.
    std::mt19937 text_rng(99);
    std::uniform_int_distribution<int> byte(0, 255), pick(0, 9), tlen(0, 20);
    const std::vector<std::string> atoms = {" ", "  ", "a", "Z", "\n", "\t", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\xA6\x99",
                                            "\xE6\x97\xA5", "<s>", "3"};
    std::uniform_int_distribution<size_t> atom(0, atoms.size() - 1);
    for (int trial = 0; trial < 1000; ++trial) {
        std::string t;
        for (int k = tlen(text_rng); k > 0; --k) {
            if (trial % 2) t += char(byte(text_rng));
            else t += pick(text_rng) ? atoms[atom(text_rng)] : std::string(1, char(byte(text_rng)));
        }
        BOOST_TEST_CONTEXT("text [" << t << "]") {
            BOOST_TEST(tok.encode(t, false, false) == to_ids(ref.EncodeAsIds(t)));
        }
    }

    // Decoding agrees on arbitrary id sequences, control, unknown and stray
    // byte tokens included (here the GGUF types are sentencepiece's own).
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> any_id(0, tok.n_vocab() - 1), small(0, 300), len(0, 12);
    for (int trial = 0; trial < 2000; ++trial) {
        std::vector<int32_t> ids(size_t(len(rng)));
        for (int32_t& id : ids) id = trial % 2 ? small(rng) : any_id(rng);
        const std::string want = ref.DecodeIds(std::vector<int>(ids.begin(), ids.end()));
        BOOST_TEST_CONTEXT("ids" << show(ids)) { BOOST_TEST(tok.decode(ids, false) == want); }
    }
}

// ---- pieces, decoding, streaming ------------------------------------------------

BOOST_AUTO_TEST_CASE(pieces, *utf::precondition(needs_vocab("llama-spm"))) {
    const auto v = load_vocab("llama-spm");
    const Tokenizer& tok = *v->tok;
    BOOST_TEST(tok.n_vocab() == 32000);
    BOOST_TEST(tok.bos() == 1);
    BOOST_TEST(tok.eos() == 2);
    BOOST_TEST(tok.unk() == 0);
    BOOST_TEST(tok.add_bos_default());
    BOOST_TEST(tok.adds_space_prefix());
    BOOST_TEST(tok.piece(29871, false) == " ");           // U+2581
    BOOST_TEST(tok.piece(15043, false) == " Hello");      // "▁Hello"
    BOOST_TEST(tok.piece(1, false) == "");                // control
    BOOST_TEST(tok.piece(1, true) == "<s>");
    BOOST_TEST(tok.piece(3 + 0x41, false) == "A");        // <0x41>
    BOOST_TEST(tok.piece(3 + 0xE2, false) == "\xE2");     // a lone byte, as is
    BOOST_TEST(tok.piece(0, false) == " \xE2\x81\x87 ");  // <unk> as sentencepiece shows it
    BOOST_TEST(tok.piece(0, true) == "<unk>");
    BOOST_TEST(tok.text(15043) == "\xE2\x96\x81Hello");
    BOOST_TEST(int(tok.type(1)) == int(TokenType::control));
    BOOST_TEST(int(tok.type(3)) == int(TokenType::byte));
    BOOST_TEST(tok.is_eog(2));
    BOOST_TEST(!tok.is_eog(1));
    BOOST_TEST(!tok.is_eog(15043));

    // The dummy-prefix space goes only at the start, only from a ▁ piece.
    BOOST_TEST(tok.decode({1, 15043, 3186}, false) == "Hello world");
    BOOST_TEST(tok.decode({1, 15043, 3186}, true) == "<s> Hello world");
    BOOST_TEST(tok.decode({3 + 0x20, 15043}, false) == "  Hello");  // a byte space is text
    BOOST_TEST(tok.decode({29871, 29871, 15043}, false) == "  Hello");
    BOOST_TEST(tok.decode({}, false) == "");
}

BOOST_AUTO_TEST_CASE(eog_names_end_of_turn, *utf::precondition(needs_vocab("phi-3"))) {
    const auto v = load_vocab("phi-3");
    const Tokenizer& tok = *v->tok;
    BOOST_TEST(tok.eos() == 32000);  // <|endoftext|>
    BOOST_TEST(tok.pad() == 32000);
    BOOST_TEST(tok.unk() == 0);
    BOOST_TEST(tok.is_eog(32000));
    BOOST_TEST(tok.is_eog(id_of(tok, "<|end|>")));
    BOOST_TEST(!tok.is_eog(id_of(tok, "<|user|>")));
    BOOST_TEST(!tok.is_eog(2));  // </s> is user-defined text in this vocabulary
}

BOOST_AUTO_TEST_CASE(detokenizer_streams_split_characters) {
    Vocab v(write_vocab(small_vocab()));
    const Tokenizer& tok = *v.tok;
    const int32_t space = id_of(tok, "\xE2\x96\x81"), ab = id_of(tok, "\xE2\x96\x81" "ab");
    const auto byte = [](int b) { return int32_t(3 + b); };  // small_vocab() puts <0x00> at 3

    // "€" is not in the vocabulary: three byte tokens after the dummy prefix.
    const std::vector<int32_t> euro = tok.encode("\xE2\x82\xAC", false, false);
    BOOST_TEST(euro == (std::vector<int32_t>{space, byte(0xE2), byte(0x82), byte(0xAC)}));
    {
        Detokenizer d(tok, true);
        BOOST_TEST(d.push(euro[0]) == "");  // the dummy prefix, stripped
        BOOST_TEST(d.push(euro[1]) == "");  // never a broken sequence
        BOOST_TEST(d.push(euro[2]) == "");
        BOOST_TEST(d.push(euro[3]) == "\xE2\x82\xAC");
        BOOST_TEST(d.flush() == "");
    }
    {
        // A continuation: the space stays.
        Detokenizer d(tok, false);
        BOOST_TEST(d.push(euro[0]) == " ");
        BOOST_TEST(d.push(ab) == " ab");
    }
    {
        // Cut short: flush gives U+FFFD for the incomplete character (one per
        // byte, as sentencepiece's decoder does).
        Detokenizer d(tok, true);
        BOOST_TEST(d.push(byte(0xE2)) == "");
        BOOST_TEST(d.flush() == "\xEF\xBF\xBD");
        BOOST_TEST(d.flush() == "");
        Detokenizer d2(tok, true);
        BOOST_TEST(d2.push(byte(0xE2)) == "");
        BOOST_TEST(d2.push(byte(0x82)) == "");
        BOOST_TEST(d2.flush() == "\xEF\xBF\xBD\xEF\xBF\xBD");
    }
    {
        // Interrupted by a normal piece: the broken bytes are replaced, the text follows.
        Detokenizer d(tok, false);
        BOOST_TEST(d.push(byte(0xE2)) == "");
        BOOST_TEST(d.push(ab) == "\xEF\xBF\xBD ab");
        BOOST_TEST(d.push(byte(0x80)) == "\xEF\xBF\xBD");  // a lone continuation byte is never completed
    }
    {
        // An invisible control token ends the sequence too (sentencepiece decodes
        // each run of byte pieces on its own): "\xC3" <s> "\x9A" is not "Ú".
        Detokenizer d(tok, false);
        BOOST_TEST(d.push(byte(0xC3)) == "");
        BOOST_TEST(d.push(1) == "\xEF\xBF\xBD");
        BOOST_TEST(d.push(byte(0x9A)) == "\xEF\xBF\xBD");
        BOOST_TEST(tok.decode({byte(0xC3), 1, byte(0x9A)}, false) == "\xEF\xBF\xBD\xEF\xBF\xBD");
        BOOST_TEST(tok.decode({byte(0xC3), byte(0x9A)}, false) == "\xC3\x9A");
    }
    {
        // The whole of decode() is the stream of pushes plus the flush.
        const std::vector<int32_t> ids = tok.encode("ab \xE2\x82\xAC\xF0\x9F\xA6\x99 c", true, false);
        Detokenizer d(tok, true);
        std::string all;
        for (int32_t id : ids) {
            const std::string s = d.push(id);
            BOOST_TEST(is_valid_utf8(s));
            all += s;
        }
        all += d.flush();
        BOOST_TEST(all == "ab \xE2\x82\xAC\xF0\x9F\xA6\x99 c");
        BOOST_TEST(tok.decode(ids, false) == all);
    }
}

BOOST_AUTO_TEST_CASE(detokenizer_streams_conformance_texts, *utf::precondition(needs_vocab("llama-spm"))) {
    const auto v = load_vocab("llama-spm");
    const Tokenizer& tok = *v->tok;
    // Streaming each case token by token gives valid UTF-8 at every step and,
    // in all, the text itself (🦙 alone is four byte tokens).
    BOOST_TEST(tok.encode("\xF0\x9F\xA6\x99", false, false) ==
               (std::vector<int32_t>{29871, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99}));
    for (const Case& c : read_cases("llama-spm")) {
        BOOST_TEST_CONTEXT("text [" << c.text << "]") {
            Detokenizer d(tok, true);
            std::string all;
            for (int32_t id : c.ids) {
                const std::string s = d.push(id);
                BOOST_TEST(is_valid_utf8(s));
                all += s;
            }
            all += d.flush();
            BOOST_TEST(all == c.text);
        }
    }
}

BOOST_AUTO_TEST_CASE(many_threads_share_one_tokenizer, *utf::precondition(needs_vocab("llama-spm"))) {
    for (const char* name : {"llama-spm", "gpt-2", "bert-bge"}) {
        if (!std::filesystem::exists(kVocabDir + "ggml-vocab-" + name + ".gguf")) continue;
        const auto v = load_vocab(name);
        const Tokenizer& tok = *v->tok;
        const bool lossless = !is_wordpiece(tok);
        const std::vector<Case> cases = read_cases(name);
        std::atomic<int> wrong{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&] {
                for (int round = 0; round < 20; ++round)
                    for (const Case& c : cases)
                        if (tok.encode(c.text, false, false) != c.ids ||
                            (lossless && tok.decode(c.ids, false) != c.text))
                            ++wrong;
            });
        for (auto& th : threads) th.join();
        BOOST_TEST(wrong.load() == 0, name);
    }
}

// ---- bad input ------------------------------------------------------------------

// Invalid UTF-8 never throws and has a defined result: each invalid byte reads
// as U+FFFD, and decoding gives that sanitized text back.
void check_invalid_utf8(const Tokenizer& tok) {
    auto check = [&](const std::string& t) {
        BOOST_TEST_CONTEXT("text [" << t << "]") {
            std::vector<int32_t> ids;
            BOOST_REQUIRE_NO_THROW(ids = tok.encode(t, false, false));
            BOOST_TEST(ids == tok.encode(utf8_sanitize(t), false, false));
            if (!is_wordpiece(tok)) BOOST_TEST(tok.decode(ids, false) == utf8_sanitize(t));
            BOOST_REQUIRE_NO_THROW(tok.encode(t, true, true));
        }
    };
    for (const std::string& t : kInvalidTexts) check(t);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> byte(0, 255), len(0, 24);
    for (int trial = 0; trial < 3000; ++trial) {
        std::string t(size_t(len(rng)), '\0');
        for (char& c : t) c = char(trial % 3 ? byte(rng) : 0x80 + byte(rng) % 0x80);
        check(t);
    }
}

BOOST_AUTO_TEST_CASE(invalid_utf8_input) {
    Vocab v(write_vocab(small_vocab()));
    check_invalid_utf8(*v.tok);
    // U+FFFD is not a piece here: "▁" and its three bytes.
    BOOST_TEST(v.tok->encode("\x80", false, false) == (std::vector<int32_t>{3 + 256, 3 + 0xEF, 3 + 0xBF, 3 + 0xBD}));
}

BOOST_AUTO_TEST_CASE(invalid_utf8_input_llama, *utf::precondition(needs_vocab("llama-spm"))) {
    const auto v = load_vocab("llama-spm");
    check_invalid_utf8(*v->tok);
    BOOST_TEST(v->tok->encode("\x80", false, false) == (std::vector<int32_t>{29871, 30140}));  // "▁", "\uFFFD"
}

BOOST_AUTO_TEST_CASE(utf8_helpers) {
    BOOST_TEST(utf8_complete_prefix("") == 0u);
    BOOST_TEST(utf8_complete_prefix("abc") == 3u);
    BOOST_TEST(utf8_complete_prefix("a\xE2\x82\xAC") == 4u);  // "a€"
    BOOST_TEST(utf8_complete_prefix("a\xE2\x82") == 1u);      // € cut short
    BOOST_TEST(utf8_complete_prefix("a\xF0") == 1u);
    BOOST_TEST(utf8_complete_prefix("a\x80") == 2u);          // invalid: complete (replaced)
    BOOST_TEST(utf8_complete_prefix("a\xE2x") == 3u);         // cannot be completed any more
    BOOST_TEST(utf8_complete_prefix("\xED\xA0") == 2u);       // a surrogate never completes
    BOOST_TEST(utf8_complete_prefix("\xF4\x90") == 2u);       // beyond U+10FFFF
    BOOST_TEST(utf8_complete_prefix("\xE0\x80") == 2u);       // overlong
    BOOST_TEST(utf8_complete_prefix("\xC0") == 1u);           // never a lead byte

    const std::string r = "\xEF\xBF\xBD";
    BOOST_TEST(utf8_sanitize("ok \xE2\x82\xAC") == "ok \xE2\x82\xAC");
    BOOST_TEST(utf8_sanitize("\xF0\x9F\xA6\x99") == "\xF0\x9F\xA6\x99");
    BOOST_TEST(utf8_sanitize("a\x80" "b") == "a" + r + "b");
    BOOST_TEST(utf8_sanitize("\xE2\x82") == r + r);
    BOOST_TEST(utf8_sanitize("\xC0\xAF") == r + r);
    BOOST_TEST(utf8_sanitize("\xED\xA0\x80") == r + r + r);
    BOOST_TEST(utf8_sanitize(std::string("\0", 1)) == std::string("\0", 1));
}

BOOST_AUTO_TEST_CASE(out_of_range_ids) {
    Vocab v(write_vocab(small_vocab()));
    const Tokenizer& tok = *v.tok;
    const int32_t n = tok.n_vocab();
    const std::string msg = "token id " + std::to_string(n) + " out of range [0, " + std::to_string(n) + ")";
    expect_bad_id([&] { tok.piece(n, false); }, msg);
    expect_bad_id([&] { tok.piece(-1, true); }, "token id -1 out of range [0, " + std::to_string(n) + ")");
    expect_bad_id([&] { tok.decode({3 + 'a', n}, false); }, msg);
    expect_bad_id([&] { tok.text(n); }, msg);
    expect_bad_id([&] { tok.type(INT32_MAX); }, "token id 2147483647 out of range");
    expect_bad_id([&] { tok.type(INT32_MIN); }, "token id -2147483648 out of range");
    Detokenizer d(tok, true);
    BOOST_TEST(d.push(3 + 0xC3) == "");
    expect_bad_id([&] { d.push(40000); }, "token id 40000 out of range");
    BOOST_TEST(d.push(3 + 0xA9) == "\xC3\xA9");  // the detokenizer is unharmed
    BOOST_TEST(!tok.valid(-5));
    BOOST_TEST(!tok.valid(n));
    BOOST_TEST(tok.valid(n - 1));
    BOOST_TEST(!tok.is_eog(-5));
    BOOST_TEST(!tok.is_eog(n));
}

// ---- special tokens -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(parse_special_llama, *utf::precondition(needs_vocab("llama-spm"))) {
    const auto v = load_vocab("llama-spm");
    const Tokenizer& tok = *v->tok;
    // Off: "<s>" typed by a user is text.
    const std::vector<int32_t> plain = tok.encode("<s>", false, false);
    BOOST_TEST(plain.size() > 1u);
    BOOST_TEST(!contains(plain, 1));
    BOOST_TEST(tok.decode(plain, false) == "<s>");
    BOOST_TEST(tok.encode("<s>", true, false)[0] == 1);  // BOS comes from add_bos only
    BOOST_TEST(tok.encode("<s>", true, false).size() == plain.size() + 1);
    // On: it is the control token; the text around it is encoded piecewise,
    // each piece with its dummy prefix (as llama.cpp does).
    BOOST_TEST(tok.encode("<s>", false, true) == (std::vector<int32_t>{1}));
    BOOST_TEST(tok.encode("Hello<s>world", false, true) == (std::vector<int32_t>{15043, 1, 3186}));
    BOOST_TEST(tok.encode("<s></s>", true, true) == (std::vector<int32_t>{1, 1, 2}));
    BOOST_TEST(tok.encode("<s", false, true) == tok.encode("<s", false, false));
    BOOST_TEST(tok.encode("<unk>", false, true) == (std::vector<int32_t>{0}));
    BOOST_TEST(tok.decode(tok.encode("Hello<s>world", false, true), true) == "Hello<s> world");
}

BOOST_AUTO_TEST_CASE(parse_special_phi_3, *utf::precondition(needs_vocab("phi-3"))) {
    const auto v = load_vocab("phi-3");
    const Tokenizer& tok = *v->tok;
    const int32_t user = id_of(tok, "<|user|>"), end = id_of(tok, "<|end|>");
    const std::vector<int32_t> on = tok.encode("<|user|>\nHi<|end|>", false, true);
    BOOST_TEST(on.front() == user);
    BOOST_TEST(on.back() == end);
    BOOST_TEST(tok.decode(on, true) == "<|user|> \nHi<|end|>");  // the segment's dummy prefix shows
    const std::vector<int32_t> off = tok.encode("<|user|>\nHi<|end|>", false, false);
    BOOST_TEST(!contains(off, user));
    BOOST_TEST(!contains(off, end));
    BOOST_TEST(tok.decode(off, false) == "<|user|>\nHi<|end|>");
    // </s> is a user-defined piece here: sentencepiece matches it inside text
    // even without parse_special; <s> is control and is not.
    BOOST_TEST(tok.encode("a</s>", false, false) == (std::vector<int32_t>{263, 2}));
    const std::vector<int32_t> s = tok.encode("<s>", false, false);
    BOOST_TEST(!contains(s, 1));
    // Several unknown-type tokens ([PADnnnnn]) are fine, and are never produced from text.
    const std::vector<int32_t> pad = tok.encode("[PAD32011]", false, false);
    BOOST_TEST(!contains(pad, 32011));
    BOOST_TEST(tok.encode("[PAD32011]", false, true) == (std::vector<int32_t>{32011}));
}

// ---- vocabularies that are malformed, or merely unusual -----------------------------------

BOOST_AUTO_TEST_CASE(malformed_vocabularies) {
    {
        VocabSpec s = small_vocab();
        s.model = "rwkv";
        expect_vocab_error(s, Status::unsupported, "'rwkv'");
    }
    {
        VocabSpec s = small_vocab();
        s.tokens.clear();
        s.scores.clear();
        s.types.clear();
        expect_vocab_error(s, Status::bad_format, "tokenizer.ggml.tokens");
    }
    {
        VocabSpec s = small_vocab();
        s.scores.pop_back();
        expect_vocab_error(s, Status::bad_format, "tokenizer.ggml.scores");
    }
    {
        VocabSpec s = small_vocab();
        s.types.push_back(1);
        expect_vocab_error(s, Status::bad_format, "tokenizer.ggml.token_type");
    }
    {
        VocabSpec s = small_vocab();
        s.types[5] = 9;
        expect_vocab_error(s, Status::bad_format, "unknown type 9");
    }
    {
        VocabSpec s = small_vocab();
        s.scores[4] = std::numeric_limits<float>::quiet_NaN();
        expect_vocab_error(s, Status::bad_format, "NaN");
    }
    {
        VocabSpec s = small_vocab();
        s.bos = int64_t(s.tokens.size());
        expect_vocab_error(s, Status::bad_format, "tokenizer.ggml.bos_token_id");
    }
    {
        VocabSpec s = small_vocab();
        s.eos = 100000;
        expect_vocab_error(s, Status::bad_format, "tokenizer.ggml.eos_token_id");
    }
}

BOOST_AUTO_TEST_CASE(unusual_vocabularies_load) {
    const int32_t sp = 3 + 256;  // id of "▁" in small_vocab()
    {
        // The plain small vocabulary: merges by score, byte fallback for the rest.
        Vocab v(write_vocab(small_vocab()));
        const Tokenizer& tok = *v.tok;
        BOOST_TEST(dynamic_cast<const SpmTokenizer&>(tok).byte_fallback());
        BOOST_TEST(tok.encode("ab", false, false) == (std::vector<int32_t>{id_of(tok, "\xE2\x96\x81" "ab")}));
        BOOST_TEST(tok.encode("ab z", false, false) ==
                   (std::vector<int32_t>{id_of(tok, "\xE2\x96\x81" "ab"), sp, 3 + 'z'}));
        BOOST_TEST(tok.decode(tok.encode("ab z", false, false), false) == "ab z");
    }
    {
        // Repeated texts, an empty text, several unknown-type tokens, invalid
        // UTF-8 in a text: sentencepiece would refuse each as given.
        VocabSpec s = small_vocab();
        for (auto [t, ty] : std::vector<std::pair<std::string, int32_t>>{
                 {"ab", 1}, {"", 1}, {"<s>", 3}, {"<unk>", 2}, {"[PAD]", 2}, {"\xFF\xFE", 1}, {"<0x41>", 6}}) {
            s.tokens.push_back(t);
            s.types.push_back(ty);
            s.scores.push_back(0.0f);
        }
        Vocab v(write_vocab(s));
        const Tokenizer& tok = *v.tok;
        BOOST_TEST(tok.n_vocab() == int32_t(s.tokens.size()));
        BOOST_TEST(tok.encode("ab", false, false) == (std::vector<int32_t>{id_of(tok, "\xE2\x96\x81" "ab")}));
        BOOST_TEST(tok.encode("b ab", false, false).size() == 2u);
        BOOST_TEST(tok.encode("<s>", false, true) == (std::vector<int32_t>{1}));  // the first of the two
        BOOST_TEST(tok.piece(int32_t(s.tokens.size()) - 1, false) == "A");     // a repeated byte token still decodes
    }
    {
        // No byte tokens and no unknown token at all: unknown characters are
        // dropped rather than failing.
        VocabSpec s = small_vocab(false);
        s.types[0] = 3;
        s.unk = -1;
        Vocab v(write_vocab(s));
        const Tokenizer& tok = *v.tok;
        BOOST_TEST(tok.unk() == -1);
        BOOST_TEST(!dynamic_cast<const SpmTokenizer&>(tok).byte_fallback());
        BOOST_TEST(tok.encode("ab", false, false) == (std::vector<int32_t>{id_of(tok, "\xE2\x96\x81" "ab")}));
        BOOST_TEST(tok.encode("abz", false, false) == (std::vector<int32_t>{id_of(tok, "\xE2\x96\x81" "ab")}));
    }
    {
        // No byte fallback, an unknown token: unknown characters map to it.
        VocabSpec s = small_vocab(false);
        Vocab v(write_vocab(s));
        const Tokenizer& tok = *v.tok;
        BOOST_TEST(tok.encode("abz", false, false) == (std::vector<int32_t>{id_of(tok, "\xE2\x96\x81" "ab"), 0}));
        BOOST_TEST(tok.decode({id_of(tok, "\xE2\x96\x81" "ab"), 0}, false) == "ab \xE2\x81\x87 ");
    }
    {
        // Only some byte tokens: byte fallback is off, the byte tokens still decode.
        VocabSpec s = small_vocab();
        s.tokens[3 + 7] = "<0x0g>";  // malformed
        Vocab v(write_vocab(s));
        const Tokenizer& tok = *v.tok;
        BOOST_TEST(!dynamic_cast<const SpmTokenizer&>(tok).byte_fallback());
        BOOST_TEST(tok.piece(3 + 'A', false) == "A");
        BOOST_TEST(tok.piece(3 + 7, false) == "");
        BOOST_TEST(tok.encode("z", false, false) == (std::vector<int32_t>{sp, 0}));
    }
    {
        // No token types and no scores: still loads; the named ids become control.
        VocabSpec s = small_vocab(false);
        s.types.clear();
        s.scores.clear();
        Vocab v(write_vocab(s));
        const Tokenizer& tok = *v.tok;
        BOOST_TEST(int(tok.type(1)) == int(TokenType::control));
        BOOST_TEST(int(tok.type(0)) == int(TokenType::unknown));
        BOOST_TEST(tok.decode(tok.encode("ab", true, false), false) == "ab");
    }
}

// ---- generated text: lossless round trips, streaming, invalid UTF-8, memory ---------------

namespace {

// Pieces of text from every script, emoji (ZWJ sequences, modifiers, flags),
// control characters, white space of every kind and runs of it, digits of
// several systems, and strings that look like special tokens.
const std::vector<std::string> kAtoms = {
    " ", "  ", "    ", "\t", "\n", "\r\n", "\n\n\n", "\xC2\xA0", "\xC2\x85", "\xE1\xA0\x8E", "\xE2\x80\xA8",
    "\xE3\x80\x80", "\xE2\x80\x8B", "\xEF\xBB\xBF", "\v", "\f", "\x1C", std::string("\0", 1), "\x7F", "\x01",
    "a", "Z", "hello", "World", "'s", "'LL", "\xE2\x80\x99s", "\xC5\xBF", "I", "\xC4\xB0", "\xC3\x9F",
    "0", "7", "42", "1234567", "\xD9\xA3", "\xEF\xBC\x91\xEF\xBC\x92", "\xC2\xB2", "\xC2\xBD", "\xE2\x85\xAB",
    ".", ",", "!", "?", "...", "--", "$", "+", "<=>", "^", "~", "|", "`", "@", "#", "%", "&", "*", "(", ")",
    "[", "]", "{", "}", "/", "\\", "\"", "'", "\xC2\xAB", "\xE2\x80\x9C", "\xE2\x80\xA6", "\xE3\x80\x82",
    "\xEF\xBC\x8C", "\xC3\xA9", "e\xCC\x81", "\xC3\xB1", "\xC3\xBC", "\xC3\xB5", "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD",
    "\xCF\x82", "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",
    "\xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7", "\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\xA8\xE0\xA5\x8D\xE0\xA4\xA6\xE0\xA5\x80",
    "\xE0\xB9\x84\xE0\xB8\x97\xE0\xB8\xA2", "\xE1\x9E\x81\xE1\x9F\x92\xE1\x9E\x98\xE1\x9F\x82\xE1\x9E\x9A",
    "\xE4\xB8\xAD\xE6\x96\x87", "\xE6\x88\x91\xE6\x83\xB3\xE5\x9C\xA8", "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
    "\xE3\x82\xAB\xE3\x82\xBF\xE3\x82\xAB\xE3\x83\x8A", "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", "\xEA\xB0\x80",
    "\xF0\x9F\xA6\x99", "\xF0\x9F\x9A\x80", "\xF0\x9F\x98\x80", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",
    "\xE2\x9D\xA4\xEF\xB8\x8F", "\xE2\x9C\x85", "\xEF\xBF\xBD", "\xE2\x96\x81", "\xC4\xA0", "\xEE\x80\x80",
    "\xF3\xB0\x80\x80", "\xF0\x90\x90\x80", "<|endoftext|>", "<s>", "</s>", "[CLS]", "<|im_start|>", "x86_64",
    "CamelCase", "don't", "http://a.b/c?d=1", "3.14", "-42", "#include", "->", "::", "!=", "/*",
};

std::string random_text(std::mt19937& rng, size_t max_atoms) {
    std::uniform_int_distribution<size_t> n(0, max_atoms), pick(0, kAtoms.size() - 1);
    std::string t;
    for (size_t k = n(rng); k > 0; --k) t += kAtoms[pick(rng)];
    return t;
}

// About `bytes` of generated text.
std::string long_text(size_t bytes, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string t;
    while (t.size() < bytes) t += random_text(rng, 40);
    return t;
}

// Vocabularies that lose nothing: byte-level BPE, SentencePiece with byte fallback.
const std::vector<std::string> kLossless = {"gpt-2",     "deepseek-coder", "mpt",       "starcoder", "refact",
                                            "gpt-neox", "llama-spm",      "phi-3",     "baichuan"};

// decode(encode(t)) == t, also streamed token by token (valid UTF-8 at every
// step). SentencePiece's one loss: its space mark U+2581 typed in a text is a
// space to the model, so it comes back as ' '.
void check_round_trip(const Tokenizer& tok, const std::string& text) {
    std::string t = text;
    if (dynamic_cast<const SpmTokenizer*>(&tok))
        for (size_t k = t.find("\xE2\x96\x81"); k != std::string::npos; k = t.find("\xE2\x96\x81", k))
            t.replace(k, 3, 1, ' ');
    const std::vector<int32_t> ids = tok.encode(text, false, false);
    BOOST_TEST(tok.decode(ids, false) == t, "ids" << show(ids));
    Detokenizer d(tok, true);
    std::string all;
    for (int32_t id : ids) {
        const std::string p = d.push(id);
        BOOST_TEST(is_valid_utf8(p));
        all += p;
    }
    all += d.flush();
    BOOST_TEST(all == t);
    // As a whole sequence (BOS, and EOS if asked for): control tokens show nothing.
    BOOST_TEST(tok.decode(tok.encode(text, true, false), false) == t);
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_generated_text, *utf::precondition(Needs{kVocabDir})) {
    int vocabs = 0;
    for (const std::string& name : kLossless) {
        if (!std::filesystem::exists(kVocabDir + "ggml-vocab-" + name + ".gguf")) continue;
        ++vocabs;
        const auto v = load_vocab(name);
        std::mt19937 rng(7);
        for (int trial = 0; trial < 400; ++trial) {
            const std::string t = random_text(rng, 16);
            BOOST_TEST_CONTEXT(name << " text [" << t << "]") { check_round_trip(*v->tok, t); }
        }
        // Long runs: white space, one long word, repeated emoji.
        for (const std::string& t : {std::string(3000, ' '), std::string(2000, 'a'), std::string(500, '\n') + "x",
                                     long_text(20000, 3)}) {
            BOOST_TEST_CONTEXT(name << " long text of " << t.size() << " bytes") { check_round_trip(*v->tok, t); }
        }
    }
    BOOST_TEST(vocabs == int(kLossless.size()));
}

BOOST_AUTO_TEST_CASE(invalid_utf8_input_bpe_and_wordpiece,
                     *utf::precondition(needs_vocab("gpt-2")) * utf::precondition(needs_vocab("bert-bge"))) {
    // (gpt-2 and deepseek-coder have a token for every byte; starcoder lacks
    // 0xF1, the lead byte of the unassigned planes 4-7, and drops it as the
    // reference does, so its decoded text can differ from the input there.)
    for (const char* name : {"gpt-2", "deepseek-coder", "bert-bge"}) {
        BOOST_TEST_CONTEXT(name) {
            const auto v = load_vocab(name);
            check_invalid_utf8(*v->tok);
        }
    }
    // Byte-level BPE encodes U+FFFD's bytes; WordPiece's normalizer drops it.
    const auto gpt2 = load_vocab("gpt-2");
    BOOST_TEST(gpt2->tok->decode(gpt2->tok->encode("a\x80" "b", false, false), false) == "a\xEF\xBF\xBD" "b");
    const auto bert = load_vocab("bert-bge");
    BOOST_TEST(bert->tok->encode("a\x80" "b", false, false) == bert->tok->encode("ab", false, false));
    if (std::filesystem::exists(kVocabDir + "ggml-vocab-starcoder.gguf")) {
        const auto sc = load_vocab("starcoder");
        BOOST_TEST(sc->tok->decode(sc->tok->encode("\xF1\x80\x80\x80", false, false), false) ==
                   "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    }
}

// Tokenizing a text needs memory in proportion to it: the peak of live heap
// bytes during encode() (ids included) stays within a constant per input byte,
// and four times the text costs about four times the memory.
BOOST_AUTO_TEST_CASE(memory_linear_in_text,
                     *utf::precondition(needs_vocab("gpt-2")) * utf::precondition(needs_vocab("bert-bge")) *
                         utf::precondition(needs_vocab("llama-spm"))) {
    const std::string small = long_text(256 << 10, 11), large = long_text(1 << 20, 11);
    for (const char* name : {"gpt-2", "deepseek-coder", "bert-bge", "llama-spm"}) {
        if (!std::filesystem::exists(kVocabDir + "ggml-vocab-" + name + ".gguf")) continue;
        const auto v = load_vocab(name);
        const auto peak = [&](const std::string& t) {
            const int64_t base = g_live.load();
            g_peak = base;
            const std::vector<int32_t> ids = v->tok->encode(t, false, true);
            BOOST_TEST(!ids.empty());
            return double(g_peak.load() - base);
        };
        const double ps = peak(small), pl = peak(large);
        BOOST_TEST_MESSAGE(name << ": peak heap " << ps / double(small.size()) << " B per input byte at "
                                << small.size() << " B, " << pl / double(large.size()) << " at " << large.size());
        BOOST_TEST(pl <= 32.0 * double(large.size()), name << ": " << pl << " bytes for " << large.size());
        BOOST_TEST(pl <= 6.0 * ps, name << ": " << pl << " bytes at 1 MiB vs " << ps << " at 256 KiB");
    }
}

// ---- byte-level BPE --------------------------------------------------------------------------

namespace {

// A byte-level vocabulary over the 256 byte characters plus merges built from
// random pairs of existing tokens over "abcd" (ranked in order).
struct ToyBpe {
    std::vector<std::string> tokens, merges;
    std::map<std::string, int32_t> id;
    std::map<std::pair<std::string, std::string>, int> rank;

    explicit ToyBpe(uint32_t seed, int n_merges) {
        // GPT-2's byte map: printable bytes stand for themselves, the rest from U+0100 in order.
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
            const int cp = printable ? b : 0x100 + extra++;
            std::string c;
            if (cp < 0x80) c += char(cp);
            else c += {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
            add(c);
        }
        std::mt19937 rng(seed);
        std::vector<std::string> pool = {"a", "b", "c", "d"};
        while (int(merges.size()) < n_merges) {
            std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
            const std::string l = pool[pick(rng)], r = pool[pick(rng)];
            if (l.size() + r.size() > 8 || rank.count({l, r})) continue;
            rank[{l, r}] = int(merges.size());
            merges.push_back(l + " " + r);
            if (!id.count(l + r)) {
                add(l + r);
                pool.push_back(l + r);
            }
        }
    }
    void add(const std::string& t) {
        id.emplace(t, int32_t(tokens.size()));
        tokens.push_back(t);
    }
    std::vector<uint8_t> gguf(const std::string& pre = "gpt-2") const {
        gguf::GgufWriter w;
        w.set_string("general.architecture", "gpt2");
        w.set_string("tokenizer.ggml.model", "gpt2");
        w.set_string("tokenizer.ggml.pre", pre);
        w.set_strings("tokenizer.ggml.tokens", tokens);
        w.set_i32s("tokenizer.ggml.token_type", std::vector<int32_t>(tokens.size(), 1));
        w.set_strings("tokenizer.ggml.merges", merges);
        return w.to_bytes();
    }
    // The textbook algorithm: repeatedly merge the leftmost pair of lowest rank.
    std::vector<int32_t> naive(const std::string& word) const {
        std::vector<std::string> sym;
        for (char c : word) sym.emplace_back(1, c);
        for (;;) {
            int best = INT_MAX;
            size_t at = 0;
            for (size_t i = 0; i + 1 < sym.size(); ++i) {
                const auto it = rank.find({sym[i], sym[i + 1]});
                if (it != rank.end() && it->second < best) {
                    best = it->second;
                    at = i;
                }
            }
            if (best == INT_MAX) break;
            sym[at] += sym[at + 1];
            sym.erase(sym.begin() + ptrdiff_t(at) + 1);
        }
        std::vector<int32_t> ids;
        for (const std::string& s : sym) ids.push_back(id.at(s));
        return ids;
    }
};

}  // namespace

// Short words (the rank-array scan) and long ones (the heap) both merge
// exactly as the textbook algorithm, ties to the leftmost pair included.
BOOST_AUTO_TEST_CASE(bpe_merges_match_naive_reference) {
    for (uint32_t seed : {1u, 2u, 3u}) {
        const ToyBpe toy(seed, seed == 3 ? 12 : 150);
        Vocab v(toy.gguf());
        const auto& bpe = dynamic_cast<const BpeTokenizer&>(*v.tok);
        BOOST_TEST(bpe.n_merges() == int32_t(toy.merges.size()));
        BOOST_TEST(bpe.pre_tokenizer() == "gpt2");
        std::mt19937 rng(seed);
        std::uniform_int_distribution<int> letter(0, 3), len(1, 300);
        for (int trial = 0; trial < 300; ++trial) {
            std::string w(size_t(trial < 100 ? 1 + trial % 60 : len(rng)), 'a');
            for (char& c : w) c = char('a' + letter(rng));
            BOOST_TEST_CONTEXT("seed " << seed << " word " << w) {
                BOOST_TEST(v.tok->encode(w, false, false) == toy.naive(w));
                BOOST_TEST(v.tok->decode(v.tok->encode(w, false, false), false) == w);
            }
        }
        // Many repeats of one word go through the per-call cache: " w" is the
        // space's token (no merge involves it) and then w's own merges.
        const std::string w = "abcdabcabd";
        std::string text = w;
        std::vector<int32_t> want = toy.naive(w);
        for (int k = 1; k < 200; ++k) {
            text += " " + w;
            want.push_back(toy.id.at("\xC4\xA0"));  // 'Ġ', the space
            for (int32_t id : toy.naive(w)) want.push_back(id);
        }
        BOOST_TEST(v.tok->encode(text, false, false) == want);
        // Long words: the heap path against the reference, and a 100 000-byte word.
        std::string longw(2000, 'a');
        for (size_t k = 0; k < longw.size(); ++k) longw[k] = char('a' + (k * 7 + k / 3) % 4);
        BOOST_TEST(v.tok->encode(longw, false, false) == toy.naive(longw));
        std::string huge(100000, 'a');
        for (size_t k = 0; k < huge.size(); ++k) huge[k] = char('a' + (k * 5 + k / 7) % 4);
        BOOST_TEST(v.tok->decode(v.tok->encode(huge, false, false), false) == huge);
    }
}

BOOST_AUTO_TEST_CASE(bpe_pre_tokenizers_compile_and_split) {
    const ToyBpe toy(1, 20);
    for (const std::string& pre : BpeTokenizer::supported_pre_tokenizers()) {
        BOOST_TEST_CONTEXT("pre-tokenizer " << pre) {
            Vocab v(toy.gguf(pre));
            std::mt19937 rng(5);
            for (int trial = 0; trial < 50; ++trial) {
                const std::string t = random_text(rng, 12);
                BOOST_TEST(v.tok->decode(v.tok->encode(t, false, false), false) == t);
            }
        }
    }
    // Falcon splits digits after the byte-level mapping: "²" (C2 B2) maps to
    // "Â²", and '²' is a digit there, so its two bytes are separate words.
    Vocab falcon(toy.gguf("falcon"));
    BOOST_TEST(falcon.tok->encode("\xC2\xB2", false, false).size() == 2u);
    Vocab gpt2(toy.gguf("gpt-2"));
    BOOST_TEST(gpt2.tok->encode("\xC2\xB2", false, false).size() == 2u);  // no merges for them either way
}

BOOST_AUTO_TEST_CASE(bpe_malformed_vocabularies) {
    const ToyBpe toy(1, 20);
    {
        ToyBpe bad = toy;
        bad.merges[3] = "abc";
        try {
            Vocab v(bad.gguf());
            BOOST_ERROR("accepted a merge without a separator");
        } catch (const Error& e) {
            BOOST_TEST(int(e.status()) == int(Status::bad_format));
            BOOST_TEST(std::string(e.what()).find("merge 3") != std::string::npos, e.what());
        }
    }
    try {
        Vocab v(toy.gguf("no-such-pre"));
        BOOST_ERROR("accepted an unknown pre-tokenizer");
    } catch (const Error& e) {
        BOOST_TEST(int(e.status()) == int(Status::unsupported));
        BOOST_TEST(std::string(e.what()).find("'no-such-pre'") != std::string::npos, e.what());
    }
    {
        // Merges of texts outside the vocabulary are inert, not fatal.
        ToyBpe odd = toy;
        odd.merges.push_back("zz yy");
        Vocab v(odd.gguf());
        BOOST_TEST(dynamic_cast<const BpeTokenizer&>(*v.tok).n_merges() == 20);
    }
}

BOOST_AUTO_TEST_CASE(bpe_special_tokens_and_defaults,
                     *utf::precondition(needs_vocab("gpt-2")) * utf::precondition(needs_vocab("mpt")) *
                         utf::precondition(needs_vocab("deepseek-coder"))) {
    const auto g = load_vocab("gpt-2");
    const Tokenizer& gpt2 = *g->tok;
    BOOST_TEST(!gpt2.add_bos_default());  // GPT-2 does not start with BOS
    BOOST_TEST(gpt2.bos() == 50256);
    BOOST_TEST(gpt2.is_eog(50256));
    // Control text is text unless parse_special.
    BOOST_TEST(!contains(gpt2.encode("<|endoftext|>", false, false), 50256));
    BOOST_TEST(gpt2.encode("<|endoftext|>", false, true) == (std::vector<int32_t>{50256}));
    BOOST_TEST(gpt2.encode("Hello<|endoftext|> world", false, true) == (std::vector<int32_t>{15496, 50256, 995}));
    BOOST_TEST(gpt2.encode("<|endoftext", false, true) == gpt2.encode("<|endoftext", false, false));
    // Pieces: bytes, not GPT-2's characters; control tokens only with `special`.
    BOOST_TEST(gpt2.piece(220, false) == " ");
    BOOST_TEST(gpt2.piece(198, false) == "\n");
    BOOST_TEST(gpt2.piece(995, false) == " world");
    BOOST_TEST(gpt2.piece(50256, false) == "");
    BOOST_TEST(gpt2.piece(50256, true) == "<|endoftext|>");
    BOOST_TEST(gpt2.decode({15496, 50256, 995}, true) == "Hello<|endoftext|> world");
    // Streaming: " 🦙" is " \xF0\x9F" + "\xA6" + "\x99"; nothing broken comes out,
    // and bytes join across an invisible control token (as the reference decoder does).
    const std::vector<int32_t> llama = gpt2.encode(" \xF0\x9F\xA6\x99", false, false);
    BOOST_TEST(llama == (std::vector<int32_t>{12520, 99, 247}));
    Detokenizer d(gpt2, true);
    BOOST_TEST(d.push(12520) == " ");
    BOOST_TEST(d.push(50256) == "");
    BOOST_TEST(d.push(99) == "");
    BOOST_TEST(d.push(247) == "\xF0\x9F\xA6\x99");
    BOOST_TEST(d.flush() == "");

    // User-defined tokens are matched in any text: MPT's runs of spaces,
    // DeepSeek's added "ü"; DeepSeek's control tokens only with parse_special.
    const auto m = load_vocab("mpt");
    BOOST_TEST(m->tok->encode("   x", false, false).front() == 50275);
    BOOST_TEST(m->tok->decode({50275}, false) == "   ");
    const auto ds = load_vocab("deepseek-coder");
    const Tokenizer& deepseek = *ds->tok;
    BOOST_TEST(deepseek.add_bos_default());  // tokenizer.ggml.add_bos_token
    BOOST_TEST(!deepseek.add_eos_default());
    BOOST_TEST(deepseek.encode("\xC3\xBC", false, false) == (std::vector<int32_t>{32009}));
    BOOST_TEST(deepseek.decode({32009}, false) == "\xC3\xBC");
    const std::string bos_text = deepseek.text(32013);
    BOOST_TEST(!contains(deepseek.encode(bos_text, false, false), 32013));
    BOOST_TEST(deepseek.encode(bos_text + "x", false, true).front() == 32013);
    BOOST_TEST(deepseek.encode("x", true, false).front() == 32013);
}

BOOST_AUTO_TEST_CASE(vocabularies_without_vectors_load,
                     *utf::precondition(needs_vocab("baichuan")) * utf::precondition(needs_vocab("gpt-neox")) *
                         utf::precondition(needs_vocab("gpt-2"))) {
    const auto b = load_vocab("baichuan");
    BOOST_TEST(b->tok->n_vocab() == 64000);
    BOOST_TEST(dynamic_cast<const SpmTokenizer*>(b->tok.get()) != nullptr);
    const auto n = load_vocab("gpt-neox");
    BOOST_TEST(n->tok->n_vocab() == 50432);
    // No tokenizer.ggml.pre: GPT-2's own pre-tokenizer.
    BOOST_TEST(dynamic_cast<const BpeTokenizer&>(*n->tok).pre_tokenizer() == "gpt2");
    for (const Case& c : read_cases("gpt-2")) {
        BOOST_TEST_CONTEXT("text [" << c.text << "]") {
            BOOST_TEST(b->tok->decode(b->tok->encode(c.text, false, false), false) == c.text);
            BOOST_TEST(n->tok->decode(n->tok->encode(c.text, false, false), false) == c.text);
        }
    }
}

// ---- WordPiece -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(wordpiece_rules, *utf::precondition(needs_vocab("bert-bge"))) {
    const auto v = load_vocab("bert-bge");
    const Tokenizer& tok = *v->tok;
    const auto& wpm = dynamic_cast<const WpmTokenizer&>(tok);
    BOOST_TEST(wpm.lowercase());  // an uncased vocabulary
    BOOST_TEST(tok.bos() == 101);  // [CLS]
    BOOST_TEST(tok.sep() == 102);
    BOOST_TEST(tok.unk() == 100);
    BOOST_TEST(tok.add_bos_default());

    // Normalization and words: case and accents go, control and format
    // characters vanish, white space separates, punctuation and CJK stand alone.
    const std::vector<std::string> want = {"hello", ",",  "world", "!", "cua", "viet", "\xE6\x88\x91", "\xE6\x83\xB3",
                                           "\xC2\xBD", "xyz", "$", "5"};
    BOOST_TEST(wpm.words("Hello, WORLD! C\xE1\xBB\xAD" "a Vi\xE1\xBB\x87t\xE6\x88\x91\xE6\x83\xB3 \xC2\xBD x" +
                         std::string("\0", 1) + "y\xE2\x80\x8Bz\t$5") == want);

    // ## continuations, [UNK] for a word without a full cover, the length cap.
    const std::vector<int32_t> ids = tok.encode("unaffable discards", false, false);
    BOOST_TEST(ids.size() >= 3u);
    BOOST_TEST(tok.decode(ids, false) == "unaffable discards");
    BOOST_TEST(tok.encode("\xF0\x9F\xA6\x99", false, false) == (std::vector<int32_t>{100}));
    BOOST_TEST(tok.encode(std::string(100, 'a'), false, false) != (std::vector<int32_t>{100}));
    BOOST_TEST(tok.encode(std::string(101, 'a'), false, false) == (std::vector<int32_t>{100}));

    // Special tokens: [CLS] ... [SEP] around a sequence; their texts only with parse_special.
    BOOST_TEST(tok.encode("hello", true, false) == (std::vector<int32_t>{101, 7592, 102}));
    BOOST_TEST(tok.encode("[CLS] hello", false, true) == (std::vector<int32_t>{101, 7592}));
    BOOST_TEST(!contains(tok.encode("[CLS] hello", false, false), 101));

    // Decoding: words separated by spaces, punctuation attached, control tokens on request.
    BOOST_TEST(tok.decode(tok.encode("Hello, world!", true, false), false) == "hello, world!");
    BOOST_TEST(tok.decode(tok.encode("Hello", true, false), true) == "[CLS] hello [SEP]");
    BOOST_TEST(tok.piece(7592, false) == " hello");
    Detokenizer d(tok, true);
    BOOST_TEST(d.push(101) == "");
    BOOST_TEST(d.push(7592) == "hello");
    BOOST_TEST(d.push(2088) == " world");
}
