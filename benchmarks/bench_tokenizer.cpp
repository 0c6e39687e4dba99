// bench_tokenizer: tokenizer throughput in MB/s on a deterministic mixed-script
// text (English prose, code, Chinese, Cyrillic, Greek, Arabic, emoji, numbers),
// per vocabulary file. Figures are printed, never asserted.
//
//   bench_tokenizer [-r RUNS] [--size BYTES] [--special] [--write-text FILE] VOCAB.gguf...
//
// For each file: load time, tokens produced, and the median over RUNS of the
// encode time (and of the decode time of the same ids) as MB/s of text.
// --write-text also saves the text, so another tokenizer can be timed on the
// very same bytes (benchmarks/README-tokenizer.md shows how).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "ember/common.hpp"
#include "ember/gguf.hpp"
#include "ember/mapped_file.hpp"
#include "ember/tokenizer/bpe.hpp"
#include "ember/tokenizer/tokenizer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Rng {
    uint64_t x = 0x2545F4914F6CDD1Dull;
    uint64_t next() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    }
    size_t below(size_t n) { return size_t(next() % n); }
};

template <size_t N>
const char* pick(Rng& r, const char* const (&a)[N]) {
    return a[r.below(N)];
}

const char* const kWords[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "model", "token", "language", "village", "river", "morning", "quickly", "remember",
    "beautiful", "computation", "unbelievable", "internationalization", "don't", "I'll", "we've", "it's",
    "they're", "Hello", "World", "Paris", "London", "OpenAI", "GitHub", "naïve", "café", "résumé", "Zürich",
};
const char* const kPunct[] = {".", ",", ";", ":", "!", "?", " -", " (see above)", "...", "\"", "'"};
const char* const kCode[] = {
    "for (int i = 0; i < n; ++i) {\n    sum += a[i] * b[i];\n}\n",
    "def tokenize(text: str) -> list[int]:\n    return [vocab[w] for w in text.split()]\n",
    "if (x != nullptr && x->next) { return x->next->value; }\n",
    "\tconst auto it = std::find_if(v.begin(), v.end(), [&](auto& e) { return e.id == 42; });\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;\n",
    "    self.assertEqual(len(result), 3)  # three items\n",
    "<div class=\"main\"><a href=\"https://example.com/a?b=1&c=2\">link</a></div>\n",
    "x = np.zeros((1024, 768), dtype=np.float32)\n",
    "        }\n    }\n}\n\n",
    "let mut map: HashMap<String, Vec<u32>> = HashMap::new();\n",
};
const char* const kChinese[] = {
    "我想在苹果工作一三一四一五一天。", "今天的天气非常好，我们去公园散步吧！", "机器学习是人工智能的一个重要分支。",
    "这个模型的词表包含了三万多个词元。", "北京是中国的首都，也是一座历史悠久的城市。", "他说：“你好，世界！”",
};
const char* const kCyrillic[] = {
    "Привет, как дела? ", "Москва — столица России. ", "нещо на Български език ", "Съешь же ещё этих мягких французских булок. ",
    "Токенизация текста выполняется быстро. ",
};
const char* const kOther[] = {
    "Καλημέρα κόσμε, τι κάνεις; ", "مرحبا بالعالم، كيف حالك؟ ", "こんにちは、世界！カタカナとひらがな。", "안녕하세요 세계 ",
    "Cửa Việt ", "कान्तैपिसेस ", "שלום עולם ",
};
const char* const kEmoji[] = {
    "🚀", "😀", "🦙", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "✅", "❤️", "😶‍🌫️", "🎉🎉🎉",
};

// About `size` bytes of mixed text, the same on every run and machine.
std::string make_text(size_t size) {
    Rng r;
    std::string t;
    t.reserve(size + 256);
    while (t.size() < size) {
        const size_t kind = r.below(100);
        if (kind < 45) {  // English prose
            const size_t n = 8 + r.below(20);
            for (size_t k = 0; k < n; ++k) {
                std::string w = pick(r, kWords);
                if (k == 0) w[0] = char(std::toupper(uint8_t(w[0])));
                t += w;
                t += r.below(8) == 0 ? pick(r, kPunct) : "";
                t += ' ';
            }
            t += r.below(3) == 0 ? ".\n" : ". ";
        } else if (kind < 65) {
            t += pick(r, kCode);
        } else if (kind < 75) {
            t += pick(r, kChinese);
        } else if (kind < 83) {
            t += pick(r, kCyrillic);
        } else if (kind < 88) {
            t += pick(r, kOther);
        } else if (kind < 94) {
            t += pick(r, kEmoji);
            t += ' ';
        } else {  // numbers
            char buf[64];
            switch (r.below(4)) {
                case 0: std::snprintf(buf, sizeof buf, "%llu ", (unsigned long long)(r.next() % 10000000)); break;
                case 1: std::snprintf(buf, sizeof buf, "%.3f ", double(r.next() % 100000) / 37.0); break;
                case 2:
                    std::snprintf(buf, sizeof buf, "2024-%02d-%02d ", int(1 + r.below(12)), int(1 + r.below(28)));
                    break;
                default:
                    std::snprintf(buf, sizeof buf, "$%d,%03d.%02d ", int(r.below(999)), int(r.below(1000)),
                                  int(r.below(100)));
                    break;
            }
            t += buf;
        }
        if (r.below(30) == 0) t += "\n\n";
        if (r.below(50) == 0) t += "    ";
    }
    // Cut at a character boundary.
    size_t n = size;
    while (n > 0 && (uint8_t(t[n]) & 0xC0) == 0x80) --n;
    t.resize(n);
    return t;
}

[[noreturn]] void usage(const char* m) {
    std::fprintf(stderr,
                 "bench_tokenizer: %s\nusage: bench_tokenizer [-r RUNS] [--size BYTES] [--special] [--write-text FILE] "
                 "VOCAB.gguf...\n",
                 m);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    int runs = 7;
    size_t size = 1 << 20;
    bool special = false;
    std::string write_text;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto value = [&] {
            if (i + 1 >= argc) usage(("missing value after " + a).c_str());
            return std::string(argv[++i]);
        };
        if (a == "-r") runs = std::max(1, std::atoi(value().c_str()));
        else if (a == "--size") size = size_t(std::strtoull(value().c_str(), nullptr, 10));
        else if (a == "--special") special = true;
        else if (a == "--write-text") write_text = value();
        else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
        else files.push_back(a);
    }
    const std::string text = make_text(size);
    if (!write_text.empty()) {
        std::ofstream f(write_text, std::ios::binary);
        f.write(text.data(), std::streamsize(text.size()));
        if (!f) usage(("cannot write " + write_text).c_str());
    }
    if (files.empty()) {
        if (write_text.empty()) usage("no vocabulary file");
        return 0;
    }
    const double mb = double(text.size()) / 1e6;
    std::printf("text: %zu bytes, %d runs (median), parse_special %s\n", text.size(), runs, special ? "on" : "off");
    std::printf("%-40s %-8s %-16s %9s %9s %10s %10s\n", "vocabulary", "type", "pre-tokenizer", "load ms", "tokens",
                "enc MB/s", "dec MB/s");
    int status = 0;
    for (const std::string& path : files) {
        try {
            const auto t0 = Clock::now();
            const ember::MappedFile mf = ember::MappedFile::open(path);
            const auto file = ember::gguf::GgufFile::parse(mf.data(), mf.size(), path);
            const auto tok = ember::Tokenizer::from_gguf(file);
            const double load_ms = ms_since(t0);
            std::string pre = "-";
            if (const auto* bpe = dynamic_cast<const ember::BpeTokenizer*>(tok.get())) pre = bpe->pre_tokenizer();
            std::vector<double> enc, dec;
            std::vector<int32_t> ids;
            for (int k = 0; k < runs; ++k) {
                const auto a = Clock::now();
                ids = tok->encode(text, false, special);
                enc.push_back(ms_since(a));
                const auto b = Clock::now();
                const std::string back = tok->decode(ids, false);
                dec.push_back(ms_since(b));
                if (back.empty()) status = 1;
            }
            const size_t slash = path.find_last_of('/');
            const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
            std::printf("%-40s %-8s %-16s %9.1f %9zu %10.2f %10.2f\n", name.c_str(),
                        std::string(file.get_string("tokenizer.ggml.model")).c_str(), pre.c_str(), load_ms, ids.size(),
                        mb / (median(enc) / 1e3), mb / (median(dec) / 1e3));
            std::fflush(stdout);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
            status = 1;
        }
    }
    return status;
}
