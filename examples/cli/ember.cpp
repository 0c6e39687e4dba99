// ember — the command-line tool: run a model, convert llama2.c checkpoints,
// dump logits for the golden tests, inspect a file.
//
//   ember run -m MODEL -p PROMPT [-n N] [--steps N] [--temp T] [--top-k K] [--top-p P]
//             [--min-p P] [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX] [--stop S]... [--f16-as-bf16]
//             [--kv-type f32|f16]
//   ember convert-llama2c CHECKPOINT.bin TOKENIZER.bin|TOKENIZER.model OUT.gguf [--type T]
//             [--name NAME] [--license L] [--meta KEY=VALUE]... [--chat-template FILE]
//   ember logits -m MODEL --ids "1 2 3" --out FILE [-t THREADS]
//   ember make-model OUT.gguf [--shape tiny|110M|1.1B] [--arch llama|qwen2] [--dim N] [--layers N]
//             [--heads N] [--kv-heads N] [--ffn N] [--vocab N] [--ctx N] [--tied 0|1] [--type T] [--seed S]
//   ember quantize IN.gguf OUT.gguf TYPE [-t THREADS]    (TYPE: q4_k_m, q5_k_m, or a weight type)
//   ember perplexity -m MODEL -f TEXT [-c CTX] [-t THREADS] [--batch N] [--f16-as-bf16] [--kv-type f32|f16]
//   ember info -m MODEL
//   ember tokenize -m MODEL [--ids] [--special] [--no-bos]    (text on stdin)
//   ember detokenize -m MODEL [--special]                     (ids on stdin)
//
// `run` goes through the public C ABI, as a host would. Errors print one line
// on stderr and exit with status 1 (2 for usage errors).
#include <cerrno>
#include <chrono>
#include <climits>
#include <iostream>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ember.h"
#include "ember/convert_llama2c.hpp"
#include "ember/make_model.hpp"
#include "ember/model.hpp"
#include "ember/perplexity.hpp"
#include "ember/quantize.hpp"
#include "ember/mapped_file.hpp"
#include "ember/tokenizer/tokenizer.hpp"

int ember_bench_main(int argc, char** argv);  // benchmarks/bench.cpp

namespace {

bool g_quiet = false;

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr, "ember: %s\n", msg);
    std::fprintf(stderr,
                 "usage:\n"
                 "  ember run -m MODEL -p PROMPT [-n N] [--steps N] [--temp T] [--top-k K] [--top-p P]\n"
                 "            [--min-p P] [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX] [--stop S]...\n"
                 "            [--f16-as-bf16]   (F16 weights rounded to BF16 for AVX512-BF16: faster, lossy)\n"
                 "            [--kv-type f32|f16] (f16: half the KV memory, keys and values rounded to float16)\n"
                 "  ember convert-llama2c CHECKPOINT.bin TOKENIZER.bin|TOKENIZER.model OUT.gguf [--type T]\n"
                 "            [--name NAME] [--license L] [--meta KEY=VALUE]... [--chat-template FILE]\n"
                 "  ember logits -m MODEL --ids \"1 2 3\" --out FILE [-t THREADS]\n"
                 "  ember make-model OUT.gguf [--shape tiny|110M|1.1B] [--arch llama|qwen2] [--dim N] [--layers N]\n"
                 "            [--heads N] [--kv-heads N] [--ffn N] [--vocab N] [--ctx N] [--tied 0|1] [--type T] [--seed S]\n"
                 "  ember quantize IN.gguf OUT.gguf TYPE [-t THREADS]\n"
                 "            TYPE: Q4_K_M Q5_K_M (mixtures) or one weight type for every matrix:\n"
                 "            F32 F16 BF16 Q8_0 Q6_K Q5_K Q5_1 Q5_0 Q4_K Q4_1 Q4_0 IQ4_XS IQ4_NL Q3_K Q2_K\n"
                 "  ember bench -m MODEL [-p 128] [-n 64] [-t THREADS] [-r 3] [--sessions N] [--f16-as-bf16] [--kv-type f32|f16] [--json]\n"
                 "  ember perplexity -m MODEL -f TEXT [-c CTX] [-t THREADS] [--batch N] [--f16-as-bf16] [--kv-type f32|f16]\n"
                 "  ember info -m MODEL\n"
                 "  ember tokenize -m MODEL [--ids] [--special] [--no-bos]   (text on stdin)\n"
                 "  ember detokenize -m MODEL [--special]                    (ids on stdin)\n");
    std::exit(2);
}

int fail_c(const char* what) {
    std::fprintf(stderr, "ember: %s: %s\n", what, ember_last_error());
    return 1;
}

struct Args {
    std::vector<std::string> positional;
    std::vector<std::pair<std::string, std::string>> opts;
    const std::string* get(const std::string& k) const {
        for (auto& [a, b] : opts)
            if (a == k) return &b;
        return nullptr;
    }
};

Args parse(int argc, char** argv, int from, std::initializer_list<const char*> flags_with_value) {
    Args a;
    for (int i = from; i < argc; ++i) {
        const std::string s = argv[i];
        bool takes = false;
        for (const char* f : flags_with_value) takes = takes || s == f;
        if (takes) {
            if (i + 1 >= argc) usage(("missing value after " + s).c_str());
            a.opts.emplace_back(s, argv[++i]);
        } else if (s.size() > 1 && s[0] == '-') {
            usage(("unknown option " + s).c_str());
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

long to_long(const std::string& s, const char* what) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (errno || end == s.c_str() || *end) usage((std::string("bad integer for ") + what + ": " + s).c_str());
    return v;
}
double to_double(const std::string& s, const char* what) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (end == s.c_str() || *end) usage((std::string("bad number for ") + what + ": " + s).c_str());
    return v;
}

// argv without the boolean flags in `names`; *found[k] tells whether names[k] was given.
std::vector<char*> take_flags(int argc, char** argv, std::initializer_list<std::pair<const char*, bool*>> names) {
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        bool flag = false;
        for (const auto& [name, seen] : names)
            if (i >= 2 && std::strcmp(argv[i], name) == 0) flag = *seen = true;
        if (!flag) rest.push_back(argv[i]);
    }
    return rest;
}

int print_piece(const char* piece, size_t len, int32_t, void*) {
    std::fwrite(piece, 1, len, stdout);
    std::fflush(stdout);
    return 0;
}

int cmd_run(int argc, char** argv) {
    bool f16_as_bf16 = false;
    std::vector<char*> rest = take_flags(argc, argv, {{"--f16-as-bf16", &f16_as_bf16}});
    argc = int(rest.size());
    argv = rest.data();
    const Args a = parse(argc, argv, 2, {"-m", "-p", "-n", "--steps", "--temp", "--top-k", "--top-p", "--min-p",
                                         "--repeat-penalty", "--seed", "-t", "-c", "--stop", "--kv-type"});
    if (!a.get("-m")) usage("run: -m MODEL is required");
    const std::string prompt = a.get("-p") ? *a.get("-p") : "";
    ember_model_params mp;
    ember_model_default_params(&mp);
    if (auto* t = a.get("-t")) mp.n_threads = int32_t(to_long(*t, "-t"));
    mp.f16_as_bf16 = f16_as_bf16;
    if (auto* v = a.get("--kv-type")) {
        if (*v != "f32" && *v != "f16") usage("run: --kv-type is f32 or f16");
        mp.kv_type = *v == "f16" ? EMBER_KV_F16 : EMBER_KV_F32;
    }
    const auto t0 = std::chrono::steady_clock::now();
    ember_model* model = nullptr;
    if (ember_model_load(a.get("-m")->c_str(), &mp, &model) != EMBER_OK) return fail_c("cannot load model");
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    ember_session_params sp;
    ember_session_default_params(&sp);
    if (auto* v = a.get("--temp")) sp.temperature = float(to_double(*v, "--temp"));
    if (auto* v = a.get("--top-k")) sp.top_k = int32_t(to_long(*v, "--top-k"));
    if (auto* v = a.get("--top-p")) sp.top_p = float(to_double(*v, "--top-p"));
    if (auto* v = a.get("--min-p")) sp.min_p = float(to_double(*v, "--min-p"));
    if (auto* v = a.get("--repeat-penalty")) sp.repeat_penalty = float(to_double(*v, "--repeat-penalty"));
    if (auto* v = a.get("--seed")) sp.seed = uint64_t(std::strtoull(v->c_str(), nullptr, 10));
    if (auto* v = a.get("-c")) sp.n_ctx = int32_t(to_long(*v, "-c"));
    ember_session* s = nullptr;
    if (ember_session_create(model, &sp, &s) != EMBER_OK) {
        const int rc = fail_c("cannot create session");
        ember_model_free(model);
        return rc;
    }

    ember_generate_params gp;
    ember_generate_default_params(&gp);
    gp.max_tokens = a.get("-n") ? int32_t(to_long(*a.get("-n"), "-n")) : 256;
    gp.on_piece = print_piece;
    // --stop S (repeatable): generation ends before the first stop string; the
    // escapes \n and \t in S stand for a newline and a tab.
    std::vector<std::string> stops;
    for (auto& [k, v] : a.opts) {
        if (k != "--stop") continue;
        std::string t;
        for (size_t i = 0; i < v.size(); ++i) {
            if (v[i] == '\\' && i + 1 < v.size() && (v[i + 1] == 'n' || v[i + 1] == 't')) {
                t += v[++i] == 'n' ? '\n' : '\t';
            } else {
                t += v[i];
            }
        }
        if (t.empty()) usage("run: --stop needs a non-empty string");
        stops.push_back(std::move(t));
    }
    std::vector<const char*> stop_ptrs;
    for (auto& t : stops) stop_ptrs.push_back(t.c_str());
    gp.stop = stop_ptrs.data();
    gp.n_stop = stop_ptrs.size();
    if (auto* v = a.get("--steps")) {
        // llama2.c's convention: N forward positions in all, the prompt (with BOS) included.
        size_t n_prompt = 0;
        ember_tokenize(model, prompt.data(), prompt.size(), EMBER_TOKENIZE_ADD_BOS, nullptr, 0, &n_prompt);
        gp.max_tokens = int32_t(to_long(*v, "--steps")) - int32_t(n_prompt) + 1;
        if (gp.max_tokens < 0) gp.max_tokens = 0;
    }
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
    ember_metrics m;
    m.size = sizeof m;
    const ember_status st = ember_generate(s, prompt.data(), prompt.size(), &gp, &m);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    int rc = 0;
    if (st != EMBER_OK) {
        rc = fail_c("generation failed");
    } else if (!g_quiet) {
        std::fprintf(stderr,
                     "prompt tokens: %d, generated tokens: %d, load: %.1f ms, TTFT: %.1f ms, TPOT: %.2f ms, "
                     "prefill: %.1f tok/s, decode: %.1f tok/s [%s]\n",
                     m.n_prompt_tokens, m.n_generated_tokens, load_ms, m.ttft_ms, m.tpot_ms, m.prefill_tokens_per_s,
                     m.decode_tokens_per_s, ember_cpu_kernels());
    }
    ember_session_free(s);
    ember_model_free(model);
    return rc;
}

// A weight type by name, either case (the plain types `ember quantize` takes).
ember::DType parse_type(const std::string& t) {
    try {
        const ember::QuantizeScheme s = ember::quantize_scheme(t);
        if (!s.mixture) return s.base;
    } catch (const ember::Error&) {
    }
    usage(("unknown type " + t + " (one of F32 F16 BF16 Q8_0 Q6_K Q5_K Q5_1 Q5_0 Q4_K Q4_1 Q4_0 IQ4_XS IQ4_NL Q3_K Q2_K)").c_str());
}

int cmd_quantize(int argc, char** argv) {
    const Args a = parse(argc, argv, 2, {"-t"});
    if (a.positional.size() != 3) usage("quantize: IN.gguf OUT.gguf TYPE [-t THREADS]");
    const ember::QuantizeScheme scheme = ember::quantize_scheme(a.positional[2]);  // invalid_argument: exit 1
    ember::QuantizeParams p;
    if (auto* t = a.get("-t")) p.n_threads = int(to_long(*t, "-t"));
    if (!g_quiet)
        p.on_tensor = [](size_t i, size_t n, const std::string& name, ember::DType from, ember::DType to) {
            std::fprintf(stderr, "[%3zu/%zu] %-32s %-6s -> %s\n", i + 1, n, name.c_str(), ember::dtype_name(from),
                         ember::dtype_name(to));
        };
    const auto t0 = std::chrono::steady_clock::now();
    const ember::QuantizeResult r = ember::quantize_model(a.positional[0], a.positional[1], scheme, p);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!g_quiet)
        std::fprintf(stderr, "wrote %s: %s, %d tensors, %.1f MiB -> %.1f MiB%s, %.1f s\n", a.positional[1].c_str(),
                     scheme.name.c_str(), r.n_tensors, double(r.bytes_in) / 1048576.0, double(r.bytes_out) / 1048576.0,
                     r.n_fallback ? (", " + std::to_string(r.n_fallback) + " tensors in a fallback type").c_str() : "",
                     s);
    return 0;
}

int cmd_convert(int argc, char** argv) {
    const Args a = parse(argc, argv, 2, {"--type", "--name", "--license", "--meta", "--chat-template"});
    if (a.positional.size() != 3) usage("convert-llama2c: CHECKPOINT.bin TOKENIZER.bin|TOKENIZER.model OUT.gguf");
    ember::ConvertOptions o;
    o.weight_type = a.get("--type") ? parse_type(*a.get("--type")) : ember::DType::F32;
    if (auto* v = a.get("--name")) o.name = *v;
    if (auto* v = a.get("--license")) o.license = *v;
    if (auto* v = a.get("--chat-template")) {
        std::ifstream in(*v, std::ios::binary);
        if (!in) ember::fail(ember::Status::io_error, "cannot read " + *v);
        std::ostringstream ss;
        ss << in.rdbuf();
        o.chat_template = ss.str();
    }
    for (auto& [k, v] : a.opts) {
        if (k != "--meta") continue;
        const size_t eq = v.find('=');
        if (eq == std::string::npos || eq == 0) usage(("--meta wants KEY=VALUE, got " + v).c_str());
        o.meta.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    }
    ember::convert_llama2c(a.positional[0], a.positional[1], a.positional[2], o);
    if (!g_quiet) std::fprintf(stderr, "wrote %s\n", a.positional[2].c_str());
    return 0;
}

int cmd_make_model(int argc, char** argv) {
    const Args a = parse(argc, argv, 2, {"--shape", "--arch", "--dim", "--layers", "--heads", "--kv-heads", "--ffn",
                                         "--vocab", "--ctx", "--tied", "--type", "--seed", "--rope-base", "--rope-scale"});
    if (a.positional.size() != 1) usage("make-model: OUT.gguf");
    ember::RandomModelSpec s = ember::shape_by_name(a.get("--shape") ? *a.get("--shape") : "tiny");
    if (auto* v = a.get("--arch")) s.arch = *v;
    if (auto* v = a.get("--dim")) s.n_embd = int(to_long(*v, "--dim"));
    if (auto* v = a.get("--layers")) s.n_layer = int(to_long(*v, "--layers"));
    if (auto* v = a.get("--heads")) s.n_head = s.n_head_kv = int(to_long(*v, "--heads"));
    if (auto* v = a.get("--kv-heads")) s.n_head_kv = int(to_long(*v, "--kv-heads"));
    if (auto* v = a.get("--ffn")) s.n_ff = int(to_long(*v, "--ffn"));
    if (auto* v = a.get("--vocab")) s.n_vocab = int(to_long(*v, "--vocab"));
    if (auto* v = a.get("--ctx")) s.n_ctx = int(to_long(*v, "--ctx"));
    if (auto* v = a.get("--tied")) s.tied_output = to_long(*v, "--tied") != 0;
    if (auto* v = a.get("--type")) s.type = parse_type(*v);
    if (auto* v = a.get("--seed")) s.seed = uint64_t(to_long(*v, "--seed"));
    if (auto* v = a.get("--rope-base")) s.rope_base = float(to_double(*v, "--rope-base"));
    if (auto* v = a.get("--rope-scale")) s.rope_scale = float(to_double(*v, "--rope-scale"));
    ember::make_random_model(s).write(a.positional[0]);
    if (!g_quiet) std::fprintf(stderr, "wrote %s\n", a.positional[0].c_str());
    return 0;
}

int cmd_logits(int argc, char** argv) {
    const Args a = parse(argc, argv, 2, {"-m", "--ids", "--out", "-t"});
    if (!a.get("-m") || !a.get("--ids") || !a.get("--out")) usage("logits: -m MODEL --ids \"...\" --out FILE");
    ember::ModelParams mp;
    if (auto* t = a.get("-t")) mp.n_threads = int(to_long(*t, "-t"));
    auto model = ember::Model::load(*a.get("-m"), mp);
    std::vector<int32_t> ids;
    std::istringstream in(*a.get("--ids"));
    for (std::string w; in >> w;) ids.push_back(int32_t(to_long(w, "--ids")));
    const int n_vocab = model->hparams().n_vocab;
    for (int32_t id : ids)
        if (id < 0 || id >= n_vocab) ember::fail(ember::Status::invalid_argument, "token id " + std::to_string(id) + " out of range");
    if (ids.empty() || int(ids.size()) > model->hparams().n_ctx_train)
        ember::fail(ember::Status::invalid_argument, "logits: 1 to n_ctx_train ids");
    const int n = int(ids.size());
    auto cache = model->arch().make_cache(n);
    auto scratch = model->arch().make_scratch(n, n, model->pool().size());
    ember::Batch b;
    for (int i = 0; i < n; ++i) b.add(ids[size_t(i)], i, 0, true);
    std::vector<float> logits(size_t(n) * size_t(n_vocab));
    ember::KvCache* caches[] = {&cache};
    model->arch().forward(b, caches, scratch, logits.data(), model->pool(), model->kernels());
    std::ofstream out(*a.get("--out"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), std::streamsize(logits.size() * sizeof(float)));
    if (!out) ember::fail(ember::Status::io_error, "cannot write " + *a.get("--out"));
    if (!g_quiet) std::fprintf(stderr, "%d x %d logits [%s]\n", n, n_vocab, model->kernels().name);
    return 0;
}

int cmd_perplexity(int argc, char** argv) {
    bool f16_as_bf16 = false;
    std::vector<char*> rest = take_flags(argc, argv, {{"--f16-as-bf16", &f16_as_bf16}});
    const Args a = parse(int(rest.size()), rest.data(), 2, {"-m", "-f", "-c", "-t", "--batch", "--kv-type"});
    if (!a.get("-m") || !a.get("-f")) usage("perplexity: -m MODEL -f TEXT");
    std::ifstream in(*a.get("-f"), std::ios::binary);
    if (!in) ember::fail(ember::Status::io_error, "cannot read " + *a.get("-f"));
    std::ostringstream text;
    text << in.rdbuf();
    ember::ModelParams mp;
    if (auto* t = a.get("-t")) mp.n_threads = int(to_long(*t, "-t"));
    mp.repack_f16_to_bf16 = f16_as_bf16;
    if (auto* v = a.get("--kv-type")) {
        if (*v != "f32" && *v != "f16") usage("perplexity: --kv-type is f32 or f16");
        mp.kv_type = *v == "f16" ? ember::DType::F16 : ember::DType::F32;
    }
    auto model = ember::Model::load(*a.get("-m"), mp);
    ember::PerplexityParams pp;
    if (auto* v = a.get("-c")) pp.n_ctx = int(to_long(*v, "-c"));
    if (auto* v = a.get("--batch")) pp.n_batch = int(to_long(*v, "--batch"));
    const auto t0 = std::chrono::steady_clock::now();
    const ember::PerplexityResult r = ember::perplexity_of_text(*model, text.str(), pp);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("perplexity: %.6f\n", r.perplexity);
    std::printf("nll: %.6f nats/token (%.4f in all), %lld of %lld tokens scored, %lld windows of %d, %.2f s [%s]\n",
                r.nll / double(r.n_scored), r.nll, (long long)r.n_scored, (long long)r.n_ids, (long long)r.n_windows,
                r.n_ctx, s, model->kernels().name);
    return 0;
}

int cmd_info(int argc, char** argv) {
    const Args a = parse(argc, argv, 2, {"-m"});
    if (!a.get("-m")) usage("info: -m MODEL");
    auto model = ember::Model::load(*a.get("-m"), {});
    const auto& hp = model->hparams();
    std::printf("name: %s\narchitecture: %s\nparameters: %llu\nvocabulary: %d\ncontext (training): %d\n"
                "width: %d, layers: %d, heads: %d (kv %d), head dim: %d, ffn: %d\nrope: base %g, scale %g, %s\n"
                "file: %zu bytes, GGUF v%u, %zu tensors\nkernels: %s (cpu: %s)\n",
                model->name().c_str(), hp.arch.c_str(), (unsigned long long)model->arch().n_params(), hp.n_vocab,
                hp.n_ctx_train, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff, hp.rope_base,
                hp.rope_scale, hp.rope_order == ember::RopeOrder::normal ? "normal" : "neox", model->file_size(),
                model->file().version(), model->file().tensors().size(), model->kernels().name,
                ember::kernels::cpu_features().c_str());
    return 0;
}

// ---- tokenize / detokenize: only the vocabulary is loaded, so a vocabulary-only
// GGUF (no tensors) works as well as a whole model ------------------------------------

struct Vocabulary {
    ember::MappedFile bytes;
    ember::gguf::GgufFile file;
    std::unique_ptr<ember::Tokenizer> tok;
};

std::unique_ptr<Vocabulary> load_vocabulary(const std::string& path) {
    auto v = std::make_unique<Vocabulary>();
    v->bytes = ember::MappedFile::open(path);
    v->file = ember::gguf::GgufFile::parse(v->bytes.data(), v->bytes.size(), path);
    v->tok = ember::Tokenizer::from_gguf(v->file);
    return v;
}

std::string read_stdin() {
    std::ostringstream s;
    s << std::cin.rdbuf();
    return s.str();
}

// A piece as a double-quoted string: quote, backslash and control characters
// escaped, bytes that are not (complete) UTF-8 as \xNN.
std::string quoted(const std::string& p) {
    std::string out = "\"";
    char buf[8];
    for (size_t i = 0; i < p.size();) {
        const auto c = uint8_t(p[i]);
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (c >= 0x80 && (i + len > p.size() || !ember::utf8_valid(std::string_view(p).substr(i, len)))) len = 0;
        if (len > 1) {
            out.append(p, i, len);
            i += len;
            continue;
        }
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c < 0x20 || c >= 0x7F) {
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += char(c);
        }
        ++i;
    }
    return out + "\"";
}

int cmd_tokenize(int argc, char** argv) {
    bool ids = false, special = false, no_bos = false;
    std::vector<char*> rest = take_flags(argc, argv, {{"--ids", &ids}, {"--special", &special}, {"--no-bos", &no_bos}});
    const Args a = parse(int(rest.size()), rest.data(), 2, {"-m"});
    if (!a.get("-m") || !a.positional.empty()) usage("tokenize: -m MODEL [--ids] [--special] [--no-bos] < TEXT");
    const auto v = load_vocabulary(*a.get("-m"));
    const ember::Tokenizer& tok = *v->tok;
    const std::string text = read_stdin();
    const bool bos = !no_bos && tok.add_bos_default() && tok.bos() >= 0;
    const std::vector<int32_t> out = tok.encode(text, bos, special);
    std::string line;
    for (int32_t id : out) {
        if (ids) {
            if (!line.empty()) line += ' ';
            line += std::to_string(id);
        } else {
            line += std::to_string(id);
            line += ' ';
            line += quoted(tok.piece(id, true));
            line += '\n';
        }
    }
    if (ids) line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    return 0;
}

int cmd_detokenize(int argc, char** argv) {
    bool special = false;
    std::vector<char*> rest = take_flags(argc, argv, {{"--special", &special}});
    const Args a = parse(int(rest.size()), rest.data(), 2, {"-m"});
    if (!a.get("-m") || !a.positional.empty()) usage("detokenize: -m MODEL [--special] < IDS");
    const auto v = load_vocabulary(*a.get("-m"));
    // Ids separated by white space, commas or brackets ("1 2 3", or "[1, 2, 3]"
    // as llama-tokenize --ids prints them).
    std::string in = read_stdin();
    for (char& c : in)
        if (c == ',' || c == '[' || c == ']') c = ' ';
    std::vector<int32_t> ids;
    std::istringstream words(in);
    for (std::string w; words >> w;) {
        const long id = to_long(w, "a token id");
        if (id < INT32_MIN || id > INT32_MAX)
            ember::fail(ember::Status::invalid_argument, "token id " + w + " out of range");
        ids.push_back(int32_t(id));
    }
    const std::string text = v->tok->decode(ids, special);  // out-of-range ids: invalid_argument
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    int first = 1;
    while (first < argc && std::strcmp(argv[first], "--quiet") == 0) {
        g_quiet = true;
        ++first;
    }
    if (first >= argc) usage("no command");
    // Shift so each command sees argv[1] as its name.
    std::vector<char*> args{argv[0]};
    for (int i = first; i < argc; ++i) args.push_back(argv[i]);
    const int n = int(args.size());
    const std::string cmd = args[1];
    try {
        if (cmd == "run") return cmd_run(n, args.data());
        if (cmd == "convert-llama2c") return cmd_convert(n, args.data());
        if (cmd == "logits") return cmd_logits(n, args.data());
        if (cmd == "info") return cmd_info(n, args.data());
        if (cmd == "tokenize") return cmd_tokenize(n, args.data());
        if (cmd == "detokenize") return cmd_detokenize(n, args.data());
        if (cmd == "perplexity") return cmd_perplexity(n, args.data());
        if (cmd == "make-model") return cmd_make_model(n, args.data());
        if (cmd == "quantize") return cmd_quantize(n, args.data());
        if (cmd == "bench") return ember_bench_main(n, args.data());
        if (cmd == "--version" || cmd == "version") {
            std::printf("ember %s (ABI %u)\n", ember_version(), ember_abi_version());
            return 0;
        }
        usage(("unknown command " + cmd).c_str());
    } catch (const ember::Error& e) {
        std::fprintf(stderr, "ember: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ember: %s\n", e.what());
        return 1;
    }
}
