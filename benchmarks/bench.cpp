// `ember bench`: load time, prefill and decode speed, TTFT, TPOT and peak RSS,
// medians over repetitions; `--sessions N` measures N sessions decoding
// together through the scheduler. Figures are printed, never asserted.
//
//   ember bench -m MODEL [-p 128] [-n 64] [-t THREADS] [-r 3] [--sessions N] [--json]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ember/model.hpp"
#include "ember/scheduler.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double peak_rss_mib() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

// Deterministic token ids spread over the vocabulary (no tokenizer in the timing).
std::vector<int32_t> tokens(int n, int n_vocab, int salt) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    uint64_t x = 0x9e3779b97f4a7c15ull * uint64_t(salt + 1);
    for (auto& v : t) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        v = int32_t(3 + x % uint64_t(n_vocab - 3));
    }
    return t;
}

[[noreturn]] void usage(const char* m) {
    std::fprintf(stderr, "ember bench: %s\nusage: ember bench -m MODEL [-p 128] [-n 64] [-t THREADS] [-r 3] [--sessions N [--budget MS]] [--fork-prefix N] [--no-repack] [--f16-as-bf16] [--json]\n", m);
    std::exit(2);
}

}  // namespace

int ember_bench_main(int argc, char** argv) {
    std::string path;
    int n_prompt = 128, n_gen = 64, threads = 0, reps = 3, sessions = 0;
    bool json = false, repack = true, f16_as_bf16 = false;
    double budget = 0;    // --sessions with a frame budget: step-time distribution
    int fork_prefix = 0;  // TTFT of a fork over a shared prefix vs a cold session
    ember::DType kv_type = ember::DType::F32;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> const char* { if (i + 1 >= argc) usage(("missing value after " + a).c_str()); return argv[++i]; };
        if (a == "-m") path = next();
        else if (a == "-p") n_prompt = std::atoi(next());
        else if (a == "-n") n_gen = std::atoi(next());
        else if (a == "-t") threads = std::atoi(next());
        else if (a == "-r") reps = std::atoi(next());
        else if (a == "--sessions") sessions = std::atoi(next());
        else if (a == "--json") json = true;
        else if (a == "--no-repack") repack = false;
        else if (a == "--f16-as-bf16") f16_as_bf16 = true;
        else if (a == "--kv-type") {
            const std::string v = next();
            if (v != "f32" && v != "f16") usage("--kv-type is f32 or f16");
            kv_type = v == "f16" ? ember::DType::F16 : ember::DType::F32;
        }
        else if (a == "--budget") budget = std::atof(next());
        else if (a == "--fork-prefix") fork_prefix = std::atoi(next());
        else usage(("unknown option " + a).c_str());
    }
    if (path.empty() || n_prompt < 1 || n_gen < 1 || reps < 1 || sessions < 0) usage("bad arguments");

    ember::ModelParams mp;
    mp.n_threads = threads;
    mp.repack = repack;
    mp.repack_f16_to_bf16 = f16_as_bf16;
    mp.kv_type = kv_type;
    // Each repetition loads the model, then at once prefills a prompt while the
    // background repack runs (what a host that loads and asks straight away
    // sees), then waits for the repack. The timed runs below start after it.
    std::vector<double> load_ms, first_ttft, repack_ms;
    std::shared_ptr<ember::Model> model;
    for (int r = 0; r < reps; ++r) {
        model.reset();
        const auto t0 = Clock::now();
        model = ember::Model::load(path, mp);
        load_ms.push_back(ms_since(t0));
        {
            ember::SessionParams sp;
            sp.n_ctx = n_prompt + 1;
            sp.n_batch = n_prompt;
            sp.sampling.temperature = 0;
            ember::Session s(model, sp);
            const auto t1 = Clock::now();
            s.eval(tokens(n_prompt, model->hparams().n_vocab, 1000 + r));
            (void)s.sample();
            first_ttft.push_back(ms_since(t1));
        }
        repack_ms.push_back(model->wait_repacked());
    }
    const auto& hp = model->hparams();
    const int n_vocab = hp.n_vocab;
    std::vector<double> pp, tg, ttft, tpot, step_ms, fork_ttft, cold_ttft;
    double agg = 0;
    size_t kv_bytes = 0;

    if (sessions == 0) {
        for (int r = 0; r < reps; ++r) {
            ember::SessionParams sp;
            sp.n_ctx = n_prompt + n_gen + 1;
            sp.n_batch = n_prompt;
            sp.sampling.temperature = 0;
            ember::Session s(model, sp);
            const auto prompt = tokens(n_prompt, n_vocab, r);
            const auto t0 = Clock::now();
            s.eval(prompt);
            const double prefill = ms_since(t0);
            int32_t next = s.sample();
            ttft.push_back(ms_since(t0));
            const auto gen = tokens(n_gen, n_vocab, 100 + r);
            const auto t1 = Clock::now();
            for (int i = 0; i < n_gen; ++i) {
                s.eval(std::span<const int32_t>(&gen[size_t(i)], 1));
                next = s.sample();
            }
            (void)next;
            const double decode = ms_since(t1);
            kv_bytes = s.kv_bytes();
            pp.push_back(n_prompt / (prefill / 1000.0));
            tg.push_back(n_gen / (decode / 1000.0));
            tpot.push_back(decode / n_gen);
        }
    } else {
        // N sessions, each prefilled with its own prompt; then timed decode
        // steps in which every session adds one token to the shared batch.
        for (int r = 0; r < reps; ++r) {
            ember::SchedulerParams sch_p;
            sch_p.max_batch_tokens = std::max(sessions, 64);
            sch_p.prefill_chunk = 64;
            ember::Scheduler sch(model, sch_p);
            std::vector<std::unique_ptr<ember::Session>> ss;
            std::vector<ember::Scheduler::RequestId> ids;
            ember::SessionParams sp;
            sp.n_ctx = n_prompt + n_gen + 8;
            sp.sampling.temperature = 0;
            for (int i = 0; i < sessions; ++i) {
                ss.push_back(sch.create_session(sp));
                ss.back()->append(tokens(n_prompt, n_vocab, 1000 * r + i));
            }
            const auto t0 = Clock::now();
            ember::RequestOptions o;
            o.gen.max_tokens = n_gen;
            // The prompts are already in the histories: an empty prompt submits generation only.
            for (int i = 0; i < sessions; ++i) ids.push_back(sch.submit(*ss[size_t(i)], "", o));
            // prefill until every session has produced its first token
            auto first_tokens = [&] {
                for (auto& s : ss) if (s->n_evaluated() < n_prompt) return false;
                return true;
            };
            while (!first_tokens()) sch.step(0);
            ttft.push_back(ms_since(t0));
            int generated0 = 0;
            for (auto id : ids) generated0 += sch.metrics(id).n_generated_tokens;
            const auto t1 = Clock::now();
            int total = 0;
            while (!sch.idle()) {
                const ember::StepStats st = sch.step(budget);
                total += st.tokens_generated;
                if (budget > 0) step_ms.push_back(st.ms);
            }
            const double decode = ms_since(t1);
            tg.push_back(total / (decode / 1000.0));
            kv_bytes = sch.kv_bytes_used();
            (void)generated0;
        }
        agg = median(tg);
    }

    if (fork_prefix > 0) {
        // A persona of fork_prefix tokens prefilled once; each rep: a fork answers
        // a 16-token line, against a cold session that prefills everything.
        ember::SessionParams sp;
        sp.n_ctx = fork_prefix + 16 + 8;
        sp.sampling.temperature = 0;
        ember::Session parent(model, sp);
        parent.eval(tokens(fork_prefix, n_vocab, 7));
        const auto line = tokens(16, n_vocab, 8);
        for (int r = 0; r < reps; ++r) {
            auto t0 = Clock::now();
            auto child = parent.fork();
            child->eval(line);
            (void)child->sample();
            fork_ttft.push_back(ms_since(t0));
            ember::Session cold(model, sp);
            std::vector<int32_t> all = tokens(fork_prefix, n_vocab, 7);
            all.insert(all.end(), line.begin(), line.end());
            t0 = Clock::now();
            cold.eval(all);
            (void)cold.sample();
            cold_ttft.push_back(ms_since(t0));
        }
    }
    auto pct = [](std::vector<double> v, double q) {
        if (v.empty()) return 0.0;
        std::sort(v.begin(), v.end());
        return v[std::min(v.size() - 1, size_t(q * double(v.size())))];
    };

    const double rss = peak_rss_mib();
    // Weight bytes a decoded token reads: every tensor but the token
    // embedding (a lookup of one row), unless the output matrix is the
    // embedding itself (tied).
    uint64_t read_bytes = 0;
    const bool tied = model->file().find_tensor("output.weight") == nullptr;
    for (const ember::gguf::TensorInfo& t : model->file().tensors())
        if (tied || t.name != "token_embd.weight") read_bytes += t.nbytes;
    if (json) {
        std::printf("{\"model\": \"%s\", \"file_mib\": %.1f, \"threads\": %d, \"kernels\": \"%s\", \"n_prompt\": %d, "
                    "\"n_gen\": %d, \"reps\": %d, \"sessions\": %d, \"load_ms\": %.2f, \"first_ttft_ms\": %.2f, "
                    "\"repack_ms\": %.2f, \"prefill_tps\": %.2f, "
                    "\"decode_tps\": %.2f, \"ttft_ms\": %.2f, \"tpot_ms\": %.3f, \"kv_mib\": %.1f, \"repacked_mib\": %.1f, "
                    "\"peak_rss_mib\": %.1f, \"decode_read_mib\": %.1f}\n",
                    path.c_str(), double(model->file_size()) / 1048576.0, model->pool().size(), model->kernels().name,
                    n_prompt, n_gen, reps, sessions, median(load_ms), median(first_ttft), median(repack_ms), median(pp), median(tg), median(ttft), median(tpot),
                    double(kv_bytes) / 1048576.0, double(model->repacked_bytes()) / 1048576.0, rss,
                    double(read_bytes) / 1048576.0);
        if (budget > 0)
            std::printf("{\"budget_ms\": %.2f, \"steps\": %zu, \"step_p50_ms\": %.3f, \"step_p90_ms\": %.3f, "
                        "\"step_p99_ms\": %.3f, \"step_max_ms\": %.3f}\n", budget, step_ms.size(), pct(step_ms, 0.5),
                        pct(step_ms, 0.9), pct(step_ms, 0.99), pct(step_ms, 1.0));
        if (fork_prefix > 0)
            std::printf("{\"fork_prefix\": %d, \"fork_ttft_ms\": %.2f, \"cold_ttft_ms\": %.2f}\n", fork_prefix,
                        median(fork_ttft), median(cold_ttft));
    } else {
        std::printf("model %s (%.1f MiB), %d threads, kernels %s\n", path.c_str(), double(model->file_size()) / 1048576.0,
                    model->pool().size(), model->kernels().name);
        std::printf("load %.2f ms (then: first TTFT %.1f ms, background repack done %.1f ms after load) | ",
                    median(load_ms), median(first_ttft), median(repack_ms));
        if (sessions == 0)
            std::printf("prefill %d: %.1f tok/s | decode %d: %.2f tok/s | TTFT %.1f ms | TPOT %.2f ms", n_prompt,
                        median(pp), n_gen, median(tg), median(ttft), median(tpot));
        else
            std::printf("%d sessions: aggregate decode %.2f tok/s, prefill-all %.1f ms", sessions, agg, median(ttft));
        std::printf(" | KV %.1f MiB | repacked %.1f MiB | peak RSS %.1f MiB (medians of %d)\n", double(kv_bytes) / 1048576.0,
                    double(model->repacked_bytes()) / 1048576.0, rss, reps);
        if (budget > 0)
            std::printf("steps under a %.1f ms budget: %zu steps, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", budget,
                        step_ms.size(), pct(step_ms, 0.5), pct(step_ms, 0.9), pct(step_ms, 0.99), pct(step_ms, 1.0));
        if (fork_prefix > 0)
            std::printf("TTFT over a %d-token shared prefix: fork %.2f ms, cold %.2f ms (%.1fx)\n", fork_prefix,
                        median(fork_ttft), median(cold_ttft), median(cold_ttft) / median(fork_ttft));
    }
    return 0;
}
