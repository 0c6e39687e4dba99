// bench_kernels: the matmul kernels alone, as the forward pass calls them, so
// that a model's decode and prefill speed can be split into "the kernel" and
// "everything around it". Figures are printed, never asserted.
//
//   bench_kernels [-t THREADS] [--types q4_0,q8_0,q4_k,...] [--nt 1,16,64] [--rows 5632] [--cols 2048]
//                 [--mib 256] [-r REPS] [--isa NAME] [--plain]
//
// For each weight type: a set of random weight matrices (rows x cols, filled
// by the reference quantizer; repacked 16 rows at a time unless --plain or the
// ISA has no such kernel) totalling at least --mib MiB, far past the caches,
// walked one after another as a forward pass walks its layers. Each matrix is
// one parallel region on the thread pool, cut into chunks of whole 16-row
// groups of guided sizes (guided_chunk, matmul_min_chunk), as src/llama.cpp cuts a matmul. Per nt (activation
// rows): weight GB/s (10^9 bytes of weights per second; compare with
// probe_membw at nt = 1) and int8 GOPS (2 * rows * cols * nt per second;
// compare with probe_int8 at larger nt). The median of REPS passes.
//
//   bench_kernels --attend 1024,4096 [-t THREADS] [-r REPS] [--isa NAME]
//
// Instead: a decode's attention (one query), TinyLlama-1.1B's shape (22
// layers, 4 KV heads of 64, 8 query heads each), over a KV cache of that many
// positions laid out as src/kv_cache.cpp lays it out (pages of 32 positions,
// head-major, in huge pages), F32 and F16. Each layer is one parallel region
// with a task per KV head, as src/llama.cpp runs it. Per layer: microseconds
// and the KV bytes read per second.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <strings.h>
#include <sys/mman.h>
#include <vector>

#include "ember/kernels/dispatch.hpp"
#include "ember/kernels/quant_ref.hpp"
#include "ember/kernels/repack.hpp"
#include "ember/thread_pool.hpp"

namespace {

using namespace ember;
using Clock = std::chrono::steady_clock;

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    size_t a = 0;
    while (a <= s.size()) {
        const size_t b = std::min(s.find(',', a), s.size());
        if (b > a) out.push_back(s.substr(a, b - a));
        a = b + 1;
    }
    return out;
}

[[noreturn]] void usage(const char* m) {
    std::fprintf(stderr,
                 "bench_kernels: %s\nusage: bench_kernels [-t THREADS] [--types q4_0,q8_0,...] [--nt 1,16,64] "
                 "[--rows R] [--cols C] [--mib M] [-r REPS] [--isa NAME] [--plain] | --attend N_POS,...\n",
                 m);
    std::exit(2);
}

// The decode attention benchmark (--attend): see the top of the file.
void bench_attend(const kernels::KernelTable& kt, ThreadPool& pool, const std::vector<int>& lens, int reps) {
    constexpr int kLayers = 22, kHeads = 4, kGroup = 8, kHd = 64, kPage = 32;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::printf("isa %s, %d threads, decode attention: %d layers x %d KV heads x %d query heads, head_dim %d, "
                "median of %d\n", kt.name, pool.size(), kLayers, kHeads, kGroup, kHd, reps);
    std::printf("%-4s %7s %12s %10s\n", "kv", "n_pos", "us/layer", "KV GB/s");
    for (bool f16 : {false, true})
        for (int n_pos : lens) {
            const size_t elem = f16 ? 2 : 4, run = size_t(kPage) * kHd * elem;  // one head's rows in a page
            const size_t layer_bytes = run * kHeads, page_bytes = 2 * kLayers * layer_bytes;
            const int n_pages = (n_pos + kPage - 1) / kPage;
            const size_t bytes = page_bytes * size_t(n_pages);
            void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (mem == MAP_FAILED) { std::fprintf(stderr, "bench_kernels: cannot map %zu bytes\n", bytes); std::exit(1); }
            ::madvise(mem, bytes, MADV_HUGEPAGE);
            struct Unmap { void* p; size_t n; ~Unmap() { ::munmap(p, n); } } unmap{mem, bytes};
            auto* base = static_cast<uint8_t*>(mem);
            if (f16) {
                auto* h = reinterpret_cast<uint16_t*>(base);
                for (size_t i = 0; i < bytes / 2; ++i) h[i] = fp32_to_fp16(nd(rng) * 0.5f);
            } else {
                auto* f = reinterpret_cast<float*>(base);
                for (size_t i = 0; i < bytes / 4; ++i) f[i] = nd(rng) * 0.5f;
            }
            // page tables per (layer, head): keys then values
            std::vector<const uint8_t*> tab(size_t(kLayers) * kHeads * 2 * size_t(n_pages));
            auto table = [&](int l, int h, int v) { return tab.data() + ((size_t(l) * kHeads + size_t(h)) * 2 + size_t(v)) * size_t(n_pages); };
            for (int l = 0; l < kLayers; ++l)
                for (int h = 0; h < kHeads; ++h)
                    for (int v = 0; v < 2; ++v)
                        for (int p = 0; p < n_pages; ++p)
                            table(l, h, v)[p] = base + size_t(p) * page_bytes + size_t(v * kLayers + l) * layer_bytes + size_t(h) * run;
            std::vector<float> q(size_t(kHeads) * kGroup * kHd), out(q.size());
            for (auto& x : q) x = nd(rng);
            std::vector<float> scores(size_t(pool.size()) * kGroup * kernels::attend_score_stride(n_pos));
            std::vector<double> us;
            for (int rep = 0; rep < reps + 1; ++rep) {  // the first pass warms up
                const auto t0 = Clock::now();
                for (int l = 0; l < kLayers; ++l)
                    pool.parallel_for(kHeads, [&](int64_t h, int worker) {
                        float* sc = scores.data() + size_t(worker) * kGroup * kernels::attend_score_stride(n_pos);
                        const float* qh = q.data() + size_t(h) * kGroup * kHd;
                        float* oh = out.data() + size_t(h) * kGroup * kHd;
                        if (f16)
                            kt.attend_f16(qh, size_t(kHeads) * kGroup * kHd, 1, kGroup, kHd,
                                          reinterpret_cast<const uint16_t* const*>(table(l, int(h), 0)),
                                          reinterpret_cast<const uint16_t* const*>(table(l, int(h), 1)), kPage, kHd,
                                          n_pos, 0.125f, sc, oh, size_t(kHeads) * kGroup * kHd);
                        else
                            kt.attend(qh, size_t(kHeads) * kGroup * kHd, 1, kGroup, kHd,
                                      reinterpret_cast<const float* const*>(table(l, int(h), 0)),
                                      reinterpret_cast<const float* const*>(table(l, int(h), 1)), kPage, kHd, n_pos,
                                      0.125f, sc, oh, size_t(kHeads) * kGroup * kHd);
                    });
                if (rep > 0) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / kLayers);
            }
            std::sort(us.begin(), us.end());
            const double m = us[us.size() / 2];
            const double kv_bytes = 2.0 * kHeads * double(n_pos) * kHd * double(elem);
            std::printf("%-4s %7d %12.1f %10.1f\n", f16 ? "f16" : "f32", n_pos, m, kv_bytes / (m * 1e3));
        }
}

DType parse_type(const std::string& s) {
    for (uint32_t i = 0; i < kernels::kMaxTypeId; ++i) {
        const TypeInfo* ti = type_info(i);
        if (ti && ti->name && strcasecmp(s.c_str(), ti->name) == 0) return DType(i);
    }
    usage(("unknown type " + s).c_str());
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 2, reps = 5;
    int64_t rows = 5632, cols = 2048, mib = 256;
    std::vector<std::string> types = {"q4_0", "q8_0", "q4_k", "q6_k"};
    std::vector<int> nts = {1, 16, 64};
    bool plain = false;
    std::vector<int> attend_lens;
    const kernels::KernelTable* kt = &kernels::best_table();
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value after " + a).c_str());
            return argv[++i];
        };
        if (a == "-t") threads = std::atoi(next().c_str());
        else if (a == "-r") reps = std::atoi(next().c_str());
        else if (a == "--types") types = split(next());
        else if (a == "--nt") { nts.clear(); for (auto& s : split(next())) nts.push_back(std::atoi(s.c_str())); }
        else if (a == "--rows") rows = std::atoll(next().c_str());
        else if (a == "--cols") cols = std::atoll(next().c_str());
        else if (a == "--mib") mib = std::atoll(next().c_str());
        else if (a == "--plain") plain = true;
        else if (a == "--attend") { for (auto& s : split(next())) attend_lens.push_back(std::atoi(s.c_str())); }
        else if (a == "--isa") { kt = kernels::find_table(next()); if (!kt) usage("ISA not compiled or not supported here"); }
        else usage(("unknown argument " + a).c_str());
    }
    if (threads < 1 || reps < 1 || rows < 16 || rows % 16 || cols < 256 || cols % 256 || mib < 1) usage("bad sizes");
    for (int nt : nts) if (nt < 1 || nt > 4096) usage("nt must be in 1..4096");
    for (int n : attend_lens) if (n < 1 || n > (1 << 20)) usage("--attend positions must be in 1..1048576");

    ThreadPool pool(threads);
    if (!attend_lens.empty()) {
        bench_attend(*kt, pool, attend_lens, reps);
        return 0;
    }
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> src(size_t(rows) * size_t(cols));
    std::printf("isa %s, %d threads, %lld x %lld weights, median of %d\n", kt->name, threads, (long long)rows,
                (long long)cols, reps);
    std::printf("%-6s %-6s %5s %9s %10s %9s\n", "type", "layout", "nt", "ms/pass", "weight GB/s", "GOPS");
    for (const std::string& tn : types) {
        const DType t = parse_type(tn);
        // repacked 16 rows at a time where the model would (F16: the exact F16x16
        // layout; BF16: BF16x16, with BF16 activations)
        const bool x16 = !plain && (kernels::repackable(t) || t == DType::F16 || t == DType::BF16) && kt->matmul_x16[size_t(t)];
        const kernels::MatmulFn mm = x16 ? kt->matmul_x16[size_t(t)] : kt->matmul[size_t(t)];
        if (!mm) { std::printf("%-6s (no kernel in %s)\n", tn.c_str(), kt->name); continue; }
        const size_t ws = row_bytes(t, cols), mat = ws * size_t(rows);
        const int n_mat = int(std::max<int64_t>(2, (mib << 20) / int64_t(mat) + 1));
        // one matrix quantized by the reference, then copies with a byte changed per
        // copy so no two are identical pages (the kernel reads every byte anyway)
        for (auto& v : src) v = nd(rng);
        // The weights in huge pages where the kernel grants them, as the model
        // holds its repacked weights (src/model.cpp). In 4 KiB pages the decode
        // kernels paid for TLB misses the model does not (Q4_0 on the Xeon, 2
        // threads: 29-30 GB/s against 31-33).
        std::vector<uint8_t> plainw(mat);
        const size_t w_bytes = mat * size_t(n_mat);
        void* w_mem = ::mmap(nullptr, w_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (w_mem == MAP_FAILED) { std::fprintf(stderr, "bench_kernels: cannot map %zu bytes\n", w_bytes); return 1; }
        ::madvise(w_mem, w_bytes, MADV_HUGEPAGE);
        struct Unmap { void* p; size_t n; ~Unmap() { ::munmap(p, n); } } w_unmap{w_mem, w_bytes};
        uint8_t* const w_data = static_cast<uint8_t*>(w_mem);
        for (int64_t r = 0; r < rows; ++r) kernels::quantize_ref(t, src.data() + r * cols, plainw.data() + size_t(r) * ws, cols);
        if (x16)
            for (int64_t g = 0; g < rows; g += 16)
                if (t == DType::F16)
                    kernels::repack_f16_x16(reinterpret_cast<const uint16_t*>(plainw.data() + size_t(g) * ws),
                                            reinterpret_cast<uint16_t*>(w_data + size_t(g) * ws), cols);
                else if (t == DType::BF16)
                    kernels::repack_bf16_x16(reinterpret_cast<const uint16_t*>(plainw.data() + size_t(g) * ws),
                                             reinterpret_cast<uint16_t*>(w_data + size_t(g) * ws), cols);
                else
                    kernels::repack_x16_ref(t, plainw.data() + size_t(g) * ws, w_data + size_t(g) * ws, cols / 32);
        else
            std::memcpy(w_data, plainw.data(), mat);
        for (int m = 1; m < n_mat; ++m) std::memcpy(w_data + size_t(m) * mat, w_data, mat);

        const DType at = kernels::vec_dot_type(t, x16 ? 16 : 0);  // (F16x16: F32)
        const size_t xs = at == DType::F32 ? size_t(cols) * 4 : row_bytes(at, cols);
        for (int nt : nts) {
            std::vector<uint8_t> X(xs * size_t(nt));
            std::vector<float> xf(static_cast<size_t>(cols));
            for (int j = 0; j < nt; ++j) {
                for (auto& v : xf) v = nd(rng);
                if (at == DType::F32) std::memcpy(X.data() + size_t(j) * xs, xf.data(), xs);
                else kernels::quantize_ref(at, xf.data(), X.data() + size_t(j) * xs, cols);
            }
            std::vector<float> Y(size_t(nt) * size_t(rows));
            std::vector<int64_t> cut{0};  // chunk boundaries
            const int64_t min_chunk = matmul_min_chunk(rows, nt, 16);
            while (cut.back() < rows)
                cut.push_back(std::min(rows, cut.back() + guided_chunk(rows - cut.back(), threads, 16, min_chunk)));
            const int64_t n_tasks = int64_t(cut.size()) - 1;
            // the model's panels (src/llama.cpp)
            const int panel = x16 && t == DType::BF16 ? 256 : x16 ? kt->x16_panel_rows : 64;
            std::vector<double> ms;
            for (int rep = 0; rep < reps + 1; ++rep) {  // the first pass warms up
                const auto t0 = Clock::now();
                for (int m = 0; m < n_mat; ++m) {
                    const uint8_t* W = w_data + size_t(m) * mat;
                    pool.parallel_for(n_tasks, [&](int64_t i, int) {
                        const int64_t a = cut[size_t(i)], e = cut[size_t(i) + 1];
                        for (int p = 0; p < nt; p += panel)
                            mm(cols, W, ws, a, e, X.data() + size_t(p) * xs, xs, std::min(panel, nt - p),
                               Y.data() + size_t(p) * size_t(rows), rows);
                    });
                }
                if (rep > 0) ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / n_mat);
            }
            std::sort(ms.begin(), ms.end());
            const double m = ms[ms.size() / 2];
            std::printf("%-6s %-6s %5d %9.3f %10.1f %9.1f\n", tn.c_str(), x16 ? "x16" : "rows", nt, m,
                        double(mat) / (m * 1e6), 2.0 * double(rows) * double(cols) * nt / (m * 1e6));
        }
    }
    return 0;
}
