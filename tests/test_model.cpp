// The model and session layers on real GGUF files the test writes: hostile
// model files through the C ABI, and forward-pass invariants — batched prefill
// equals token-by-token decoding, output does not depend on the thread count,
// a multi-turn conversation equals the same tokens in one go.
#define BOOST_TEST_MODULE test_model
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ember.h"
#include "ember/make_model.hpp"
#include "ember/model.hpp"
#include "ember/quantize.hpp"
#include "ember/session.hpp"

using namespace ember;

namespace {

std::string tmp_path(const std::string& name) { return std::string(EMBER_BINARY_DIR) + "/tests/" + name; }

std::string write_model(const std::string& name, const RandomModelSpec& spec = {}) {
    const std::string p = tmp_path(name);
    make_random_model(spec).write(p);
    return p;
}

// Loads through the C ABI and returns (status, message).
std::pair<ember_status, std::string> c_load(const std::string& path) {
    ember_model* m = nullptr;
    const ember_status s = ember_model_load(path.c_str(), nullptr, &m);
    const std::string msg = ember_last_error();
    ember_model_free(m);
    return {s, msg};
}

std::vector<float> logits_all(const Model& m, const std::vector<int32_t>& ids, int chunk) {
    // Evaluates ids in chunks and returns the logits of every position.
    const int n_vocab = m.hparams().n_vocab;
    auto cache = m.arch().make_cache(int(ids.size()));
    auto scratch = m.arch().make_scratch(chunk, int(ids.size()), m.pool().size());
    std::vector<float> out(ids.size() * size_t(n_vocab));
    KvCache* caches[] = {&cache};
    for (size_t i = 0; i < ids.size(); i += size_t(chunk)) {
        Batch b;
        for (size_t j = i; j < std::min(ids.size(), i + size_t(chunk)); ++j) b.add(ids[j], int(j), 0, true);
        m.arch().forward(b, caches, scratch, out.data() + i * size_t(n_vocab), m.pool(), m.kernels());
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(hostile_model_files_give_distinct_errors_through_the_c_abi) {
    {  // unknown architecture
        auto w = make_random_model({});
        w.set_string("general.architecture", "mamba9");
        w.write(tmp_path("bad-arch.gguf"));
        auto [s, msg] = c_load(tmp_path("bad-arch.gguf"));
        BOOST_TEST(s == EMBER_ERR_UNSUPPORTED);
        BOOST_TEST(msg.find("unknown architecture 'mamba9'") != std::string::npos, msg);
    }
    {  // missing tensor: write a model with one layer tensor renamed
        RandomModelSpec spec;
        auto w = make_random_model(spec);
        w.set_u32("llama.block_count", 3);  // claims a layer the file does not have
        w.write(tmp_path("missing-tensor.gguf"));
        auto [s, msg] = c_load(tmp_path("missing-tensor.gguf"));
        BOOST_TEST(s == EMBER_ERR_BAD_FORMAT);
        BOOST_TEST(msg.find("missing tensor 'blk.2.attn_norm.weight'") != std::string::npos, msg);
    }
    {  // wrong shape
        auto w = make_random_model({});
        w.set_u32("llama.feed_forward_length", 96);
        w.write(tmp_path("bad-shape.gguf"));
        auto [s, msg] = c_load(tmp_path("bad-shape.gguf"));
        BOOST_TEST(s == EMBER_ERR_BAD_FORMAT);
        BOOST_TEST(msg.find("has shape") != std::string::npos, msg);
    }
    {  // missing hyper-parameter
        auto w = make_random_model({});
        w.set_string("llama.embedding_length", "wide");
        w.write(tmp_path("bad-kv.gguf"));
        auto [s, msg] = c_load(tmp_path("bad-kv.gguf"));
        BOOST_TEST(s == EMBER_ERR_BAD_FORMAT);
        BOOST_TEST(msg.find("llama.embedding_length") != std::string::npos, msg);
    }
    {  // absurd value
        auto w = make_random_model({});
        w.set_u32("llama.attention.head_count", 0);
        w.write(tmp_path("zero-heads.gguf"));
        auto [s, msg] = c_load(tmp_path("zero-heads.gguf"));
        BOOST_TEST(s == EMBER_ERR_BAD_FORMAT);
        BOOST_TEST(msg.find("head_count") != std::string::npos, msg);
    }
    {  // vocabulary and embedding disagree
        auto w = make_random_model({});
        w.set_strings("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"});
        w.write(tmp_path("bad-vocab.gguf"));
        auto [s, msg] = c_load(tmp_path("bad-vocab.gguf"));
        BOOST_TEST(s == EMBER_ERR_BAD_FORMAT);
        BOOST_TEST(msg.find("vocabulary") != std::string::npos, msg);
    }
    {  // truncated file (tensor data past the end)
        const std::string good = write_model("good.gguf");
        FILE* f = std::fopen(good.c_str(), "rb");
        std::vector<char> bytes(1 << 20);
        bytes.resize(std::fread(bytes.data(), 1, bytes.size(), f));
        std::fclose(f);
        f = std::fopen(tmp_path("truncated.gguf").c_str(), "wb");
        std::fwrite(bytes.data(), 1, bytes.size() / 2, f);
        std::fclose(f);
        auto [s, msg] = c_load(tmp_path("truncated.gguf"));
        BOOST_TEST(s == EMBER_ERR_BAD_FORMAT);
        BOOST_TEST(msg.find("past the end of the file") != std::string::npos, msg);
        // and the good file still loads: nothing was left broken
        BOOST_TEST(c_load(good).first == EMBER_OK);
    }
}

BOOST_AUTO_TEST_CASE(batched_prefill_equals_token_by_token) {
    for (DType t : {DType::F32, DType::Q8_0}) {
        RandomModelSpec spec;
        spec.type = t;
        auto m = Model::load(write_model("prefill.gguf", spec), {});
        const std::vector<int32_t> ids{1, 300, 301, 302, 40, 41, 42, 43, 280, 290, 299};
        const auto one = logits_all(*m, ids, 1);
        const auto all = logits_all(*m, ids, int(ids.size()));
        const auto three = logits_all(*m, ids, 3);
        // identical arithmetic per entry: the batch changes which rows run together, not the sums
        BOOST_TEST(one == all);
        BOOST_TEST(one == three);
    }
}

BOOST_AUTO_TEST_CASE(output_does_not_depend_on_the_thread_count) {
    const std::string p = write_model("threads.gguf");
    const std::vector<int32_t> ids{1, 300, 301, 302, 40, 41, 42};
    std::vector<float> ref;
    for (int n : {1, 2, 3, 8}) {
        ModelParams mp;
        mp.n_threads = n;
        auto m = Model::load(p, mp);
        const auto l = logits_all(*m, ids, 4);
        if (ref.empty()) ref = l;
        BOOST_TEST(l == ref, "threads=" << n);
    }
}

BOOST_AUTO_TEST_CASE(a_conversation_in_turns_equals_one_prompt) {
    auto m = Model::load(write_model("turns.gguf"), {});
    SessionParams sp;
    sp.sampling.temperature = 0;
    sp.n_batch = 4;
    Session a(m, sp), b(m, sp);
    GenerateOptions o;
    o.max_tokens = 5;
    const std::string t1 = a.generate("hello world", o);
    const std::string t2 = a.generate(" and the day", o);
    BOOST_TEST(!t1.empty());
    // a's cache holds all but its last sampled token; evaluating that pending
    // token must give exactly the logits of b evaluating the whole history at once.
    const std::vector<int32_t> h = a.history();
    BOOST_TEST(a.n_evaluated() == int(h.size()) - 1);
    a.eval(std::vector<int32_t>{});
    b.eval(h);
    BOOST_TEST(a.n_evaluated() == int(h.size()));
    BOOST_TEST(std::equal(a.logits(), a.logits() + m->hparams().n_vocab, b.logits()));
    BOOST_TEST(a.sample() == b.sample());
}

BOOST_AUTO_TEST_CASE(session_errors_leave_the_session_unchanged) {
    auto m = Model::load(write_model("errors.gguf"), {});
    SessionParams sp;
    sp.n_ctx = 16;
    Session s(m, sp);
    s.eval(std::vector<int32_t>{1, 300});
    const auto before = s.history();
    BOOST_CHECK_THROW(s.eval(std::vector<int32_t>{5, 99999}), Error);
    BOOST_TEST(s.history() == before);
    BOOST_CHECK_THROW(s.eval(std::vector<int32_t>(20, 300)), Error);
    BOOST_TEST(s.history() == before);
    try {
        s.eval(std::vector<int32_t>(20, 300));
    } catch (const Error& e) {
        BOOST_TEST(int(e.status()) == int(Status::context_full));
    }
    GenerateOptions o;
    o.stop = {""};
    BOOST_CHECK_THROW(s.generate("x", o), Error);
    BOOST_TEST(s.history() == before);
}

// ---- the block types and `ember quantize` at model level -----------------------------

namespace {

// A shape every type divides: rows of 256 (the super-blocks) throughout.
RandomModelSpec k_shape(DType t) {
    RandomModelSpec s;
    s.n_embd = 256;
    s.n_ff = 512;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_vocab = 384;
    s.n_layer = 2;
    s.type = t;
    s.seed = 7;
    return s;
}

const std::vector<int32_t> kIds{1, 300, 301, 302, 40, 41, 42, 43, 280, 290};

// |a - b| / |b - mean(b)|: the logit error relative to the logits' spread.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
    double mean = 0;
    for (float v : b) mean += v;
    mean /= double(b.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += (double(b[i]) - mean) * (double(b[i]) - mean);
    }
    return std::sqrt(num / den);
}

// Relative logit error of each weight type against the same model in F32
// (same seed), through 2 random layers, measured: Q6_K 0.039, Q5_1 0.079,
// Q5_K 0.081, Q5_0 0.092, Q4_1 0.156, IQ4_NL 0.162, IQ4_XS 0.164, Q4_K 0.165,
// Q3_K 0.34, Q2_K 0.55 (random layers amplify weight error; the order follows
// the round-trip RMSE). A wrong layout or kernel gives unrelated logits, an
// error near 1.4. Bounds: measured + 25%.
const std::pair<DType, double> kLogitBounds[] = {
    {DType::Q6_K, 0.049}, {DType::Q5_1, 0.099}, {DType::Q5_K, 0.10}, {DType::Q5_0, 0.115}, {DType::Q4_1, 0.195},
    {DType::IQ4_NL, 0.20}, {DType::IQ4_XS, 0.205}, {DType::Q4_K, 0.205}, {DType::Q3_K, 0.42}, {DType::Q2_K, 0.69}};

DType tensor_type(const Model& m, const std::string& name) {
    const gguf::TensorInfo* t = m.file().find_tensor(name);
    BOOST_TEST_REQUIRE(t != nullptr, name);
    return DType(t->type);
}

}  // namespace

BOOST_AUTO_TEST_CASE(block_type_models_track_the_f32_model) {
    auto f32 = Model::load(write_model("k-f32.gguf", k_shape(DType::F32)), {});
    const auto ref = logits_all(*f32, kIds, int(kIds.size()));
    for (auto [t, bound] : kLogitBounds) {
        auto m = Model::load(write_model(std::string("k-") + dtype_name(t) + ".gguf", k_shape(t)), {});
        BOOST_TEST((tensor_type(*m, "blk.1.ffn_down.weight") == t));
        BOOST_TEST((tensor_type(*m, "token_embd.weight") == t));  // embedding rows decoded from every type
        const auto all = logits_all(*m, kIds, int(kIds.size()));
        const double err = relative_error(all, ref);
        BOOST_TEST_MESSAGE(dtype_name(t) << " relative logit error " << err);
        BOOST_TEST(err <= bound, dtype_name(t) << " relative logit error " << err);
        // batch invariance holds for these kernels too: prefill equals decoding one by one
        BOOST_TEST((logits_all(*m, kIds, 1) == all), dtype_name(t));
    }
}

// The repacked copy is made in the background after load: until a weight's
// copy is ready, its matmuls interleave the rows they read on the fly. Output
// must be the same bits however far the copy has got, including not at all.
BOOST_AUTO_TEST_CASE(output_does_not_depend_on_the_background_repack) {
    for (DType t : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::BF16, DType::F16}) {
        ModelParams mp;
        mp.repack_f16_to_bf16 = true;  // F16 goes to BF16x16 too (where the CPU has AVX512-BF16)
        auto m = Model::load(write_model(std::string("bg-") + dtype_name(t) + ".gguf", k_shape(t)), mp);
        const auto early = logits_all(*m, kIds, int(kIds.size()));  // races the copy
        m->wait_repacked();
        if ((t == DType::BF16 || t == DType::F16) && !m->kernels().matmul_x16[size_t(DType::BF16)]) {
            BOOST_TEST_MESSAGE(dtype_name(t) << ": no BF16x16 kernels on this CPU, nothing repacked");
            continue;
        }
        BOOST_TEST(m->repacked_bytes() > 0u, dtype_name(t));
        const auto ready = logits_all(*m, kIds, int(kIds.size()));
        BOOST_TEST((early == ready), dtype_name(t));
        // As if the copy had not started: every weight takes the on-the-fly path.
        std::vector<RepackedCopy*> copies;
        for (const TensorView* w : m->arch().matmul_weights())
            if (w->repacked) copies.push_back(const_cast<RepackedCopy*>(w->repacked));
        BOOST_TEST(!copies.empty(), dtype_name(t));
        for (RepackedCopy* c : copies) c->ready.store(false);
        const auto none = logits_all(*m, kIds, int(kIds.size()));
        const auto none_by_one = logits_all(*m, kIds, 1);
        for (RepackedCopy* c : copies) c->ready.store(true);
        BOOST_TEST((none == ready), dtype_name(t));
        BOOST_TEST((none_by_one == ready), dtype_name(t));
    }
}

// The fast context shift moves cached entries back and re-rotates their keys.
// Layer 0's keys and values do not depend on the context, so there the moved
// entries must equal those a fresh evaluation of the shortened sequence
// computes at the new positions; the kept prefix must not change, and a
// fork sharing the pages must not see the move.
BOOST_AUTO_TEST_CASE(fast_context_shift_moves_and_re_rotates_the_cache) {
    RandomModelSpec spec;
    spec.n_layer = 2;
    auto m = Model::load(write_model("shift.gguf", spec), {});
    const LlamaModel& a = m->arch();
    const int KV = a.hparams().kv_dim();
    std::vector<int32_t> ids;
    for (int i = 0; i < 70; ++i) ids.push_back(int32_t(3 + (i * 37) % 300));
    const int keep = 5, drop = 30, n = int(ids.size());
    auto eval_all = [&](KvCache& c, const std::vector<int32_t>& toks) {
        auto scratch = a.make_scratch(int(toks.size()), c.n_ctx(), m->pool().size());
        std::vector<float> logits(size_t(a.hparams().n_vocab));
        c.prepare(0, int(toks.size()));
        Batch b;
        for (size_t j = 0; j < toks.size(); ++j) b.add(toks[j], int(j), 0, j + 1 == toks.size());
        KvCache* caches[] = {&c};
        a.forward(b, caches, scratch, logits.data(), m->pool(), m->kernels());
    };
    for (DType kv_type : {DType::F32, DType::F16}) {
        BOOST_TEST_CONTEXT("KV " << dtype_name(kv_type)) {
            const size_t row = kv_type == DType::F16 ? size_t(KV) * 2 : size_t(KV) * 4;
            // one position's keys (values) of one layer, all heads, as stored
            auto k_row = [&](const KvCache& c, int l, int p) { std::vector<uint8_t> r(row); c.get_k(l, p, r.data()); return r; };
            auto v_row = [&](const KvCache& c, int l, int p) { std::vector<uint8_t> r(row); c.get_v(l, p, r.data()); return r; };
            KvCache shifted(a.make_pool(4, 0, kv_type), n);  // room for the fork's copies
            eval_all(shifted, ids);
            KvCache parent = shifted.fork();  // shares every page until one side writes
            const std::vector<uint8_t> parent_k0 = k_row(parent, 0, keep);
            a.shift_cache(shifted, keep, drop, n);

            std::vector<int32_t> shorter(ids.begin(), ids.begin() + keep);
            shorter.insert(shorter.end(), ids.begin() + keep + drop, ids.end());
            KvCache fresh(a.make_pool(3, 0, kv_type), n);
            eval_all(fresh, shorter);
            double worst = 0, largest = 0;
            std::vector<float> ks(static_cast<size_t>(KV)), kf(static_cast<size_t>(KV));
            for (int p = 0; p < n - drop; ++p)
                for (int l = 0; l < a.hparams().n_layer; ++l) {
                    if (p < keep) {  // the kept prefix: untouched
                        BOOST_REQUIRE(k_row(shifted, l, p) == k_row(fresh, l, p));
                        BOOST_REQUIRE(v_row(shifted, l, p) == v_row(fresh, l, p));
                    } else if (l == 0) {
                        BOOST_REQUIRE(v_row(shifted, 0, p) == v_row(fresh, 0, p));  // moved as is
                        shifted.read_k(0, p, ks.data());
                        fresh.read_k(0, p, kf.data());
                        for (int d = 0; d < KV; ++d) {
                            worst = std::max(worst, double(std::fabs(ks[size_t(d)] - kf[size_t(d)])));
                            largest = std::max(largest, double(std::fabs(kf[size_t(d)])));
                        }
                    }
                }
            BOOST_TEST_MESSAGE("largest layer-0 key difference after re-rotation: " << worst << " (keys up to " << largest << ")");
            // F32: rounding of the rotation only; F16: plus the second rounding
            // to 11 significant bits (an ulp is 2^-10 of the value's power of two)
            BOOST_TEST(worst < (kv_type == DType::F32 ? 1e-4 : largest * 2e-3));
            BOOST_TEST(worst > 0.0);  // keys were re-rotated, not left or copied as they were
            // the parent still holds the unshifted entry at `keep`
            BOOST_TEST((parent_k0 == k_row(parent, 0, keep)));
            BOOST_TEST((k_row(parent, 0, keep) != k_row(shifted, 0, keep)));
        }
    }
}

BOOST_AUTO_TEST_CASE(super_block_rows_must_be_whole_through_the_c_abi) {
    // A Q4_1 file of width 96, with the embedding's type id changed to Q4_K:
    // 96 is not a whole super-block, and the load says so.
    RandomModelSpec s;
    s.n_embd = 96;
    s.n_head = 4;
    s.n_ff = 192;
    s.type = DType::Q4_1;
    auto bytes = make_random_model(s).to_bytes();
    const std::string name = "token_embd.weight";
    auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
    BOOST_TEST_REQUIRE((it != bytes.end()));
    const size_t type_at = size_t(it - bytes.begin()) + name.size() + 4 + 2 * 8;  // n_dims, ne[0], ne[1]
    uint32_t type;
    std::memcpy(&type, bytes.data() + type_at, 4);
    BOOST_TEST_REQUIRE(type == uint32_t(DType::Q4_1));
    type = uint32_t(DType::Q4_K);
    std::memcpy(bytes.data() + type_at, &type, 4);
    FILE* f = std::fopen(tmp_path("bad-k-rows.gguf").c_str(), "wb");
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    auto [st, msg] = c_load(tmp_path("bad-k-rows.gguf"));
    BOOST_TEST(st == EMBER_ERR_BAD_FORMAT);
    BOOST_TEST(msg.find("not a multiple of the Q4_K block size 256") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(quantize_writes_the_mixtures_and_keeps_the_model) {
    RandomModelSpec spec = k_shape(DType::F32);
    spec.n_layer = 8;  // the _M rules pick layers 0, 3, 6 and 7 for more bits
    const std::string src = write_model("q-src-f32.gguf", spec);
    auto f32 = Model::load(src, {});
    const auto ref = logits_all(*f32, kIds, int(kIds.size()));

    QuantizeParams qp;
    qp.n_threads = 2;
    int seen = 0;
    qp.on_tensor = [&](size_t i, size_t n, const std::string&, DType, DType) { seen += i < n; };
    const QuantizeResult r = quantize_model(src, tmp_path("q-q4km.gguf"), quantize_scheme("q4_k_m"), qp);
    BOOST_TEST(seen == r.n_tensors);
    BOOST_TEST(r.n_fallback == 0);
    BOOST_TEST(r.bytes_out < r.bytes_in / 6);
    auto m = Model::load(tmp_path("q-q4km.gguf"), {});
    BOOST_TEST(m->file().get_int("general.file_type") == 15);
    BOOST_TEST(m->file().get_string("general.name") == f32->file().get_string("general.name"));
    BOOST_TEST(m->file().metadata().size() == f32->file().metadata().size() + 2);  // + file_type, quantization_version
    BOOST_TEST(m->tokenizer().n_vocab() == f32->tokenizer().n_vocab());
    BOOST_TEST(m->file().get_array("tokenizer.ggml.scores", gguf::ValueType::f32)->elem_f64(300) ==
               f32->file().get_array("tokenizer.ggml.scores", gguf::ValueType::f32)->elem_f64(300));
    BOOST_TEST((tensor_type(*m, "output.weight") == DType::Q6_K));
    BOOST_TEST((tensor_type(*m, "token_embd.weight") == DType::Q4_K));
    BOOST_TEST((tensor_type(*m, "blk.0.attn_norm.weight") == DType::F32));
    for (int l = 0; l < 8; ++l) {
        const DType want = (l == 0 || l == 3 || l == 6 || l == 7) ? DType::Q6_K : DType::Q4_K;
        const std::string p = "blk." + std::to_string(l) + ".";
        BOOST_TEST((tensor_type(*m, p + "attn_v.weight") == want), p);
        BOOST_TEST((tensor_type(*m, p + "ffn_down.weight") == want), p);
        BOOST_TEST((tensor_type(*m, p + "attn_q.weight") == DType::Q4_K), p);
    }
    const double err = relative_error(logits_all(*m, kIds, int(kIds.size())), ref);
    BOOST_TEST_MESSAGE("Q4_K_M relative logit error " << err);
    BOOST_TEST(err <= 0.26);  // measured 0.207 (8 layers)

    // Q5_K_M from an F16 copy (made by quantize itself), and Q8_0 as a source
    quantize_model(src, tmp_path("q-f16.gguf"), quantize_scheme("F16"), qp);
    quantize_model(tmp_path("q-f16.gguf"), tmp_path("q-q5km.gguf"), quantize_scheme("Q5_K_M"), qp);
    auto m5 = Model::load(tmp_path("q-q5km.gguf"), {});
    BOOST_TEST(m5->file().get_int("general.file_type") == 17);
    BOOST_TEST((tensor_type(*m5, "blk.1.attn_v.weight") == DType::Q5_K));
    BOOST_TEST((tensor_type(*m5, "blk.7.ffn_down.weight") == DType::Q6_K));
    const double err5 = relative_error(logits_all(*m5, kIds, int(kIds.size())), ref);
    BOOST_TEST(err5 <= 0.13, "Q5_K_M " << err5);  // measured 0.106
    quantize_model(src, tmp_path("q-q8.gguf"), quantize_scheme("q8_0"), qp);
    quantize_model(tmp_path("q-q8.gguf"), tmp_path("q-q8-q6k.gguf"), quantize_scheme("q6_k"), qp);
    auto m6 = Model::load(tmp_path("q-q8-q6k.gguf"), {});
    BOOST_TEST((tensor_type(*m6, "output.weight") == DType::Q6_K));  // a plain type is pure
    BOOST_TEST(relative_error(logits_all(*m6, kIds, int(kIds.size())), ref) <= 0.078);  // measured 0.062
}

BOOST_AUTO_TEST_CASE(quantize_falls_back_where_rows_are_not_super_blocks) {
    RandomModelSpec spec;  // width 64, ffn 160: no matrix row is a multiple of 256
    const std::string src = write_model("q-narrow.gguf", spec);
    const QuantizeResult r = quantize_model(src, tmp_path("q-narrow-q4km.gguf"), quantize_scheme("Q4_K_M"), {});
    BOOST_TEST(r.n_fallback == 1 + 7 * spec.n_layer + 1);  // embedding, 7 per layer, output
    auto m = Model::load(tmp_path("q-narrow-q4km.gguf"), {});
    BOOST_TEST((tensor_type(*m, "blk.0.attn_q.weight") == DType::Q5_0));    // Q4_K's fallback
    BOOST_TEST((tensor_type(*m, "output.weight") == DType::Q8_0));          // Q6_K's
    BOOST_TEST((tensor_type(*m, "blk.0.ffn_down.weight") == DType::Q5_0));
    BOOST_TEST((tensor_type(*m, "blk.1.ffn_down.weight") == DType::Q8_0));  // last layer: Q6_K's
    auto f32 = Model::load(src, {});
    const auto ref = logits_all(*f32, kIds, int(kIds.size()));
    const double err = relative_error(logits_all(*m, kIds, int(kIds.size())), ref);
    BOOST_TEST_MESSAGE("Q4_K_M with fallbacks: relative logit error " << err);
    BOOST_TEST(err <= 0.12);  // measured 0.093
}

BOOST_AUTO_TEST_CASE(quantize_refuses_bad_schemes_and_quantized_sources) {
    auto status_of = [](auto&& f) {
        try {
            f();
        } catch (const Error& e) {
            return std::make_pair(e.status(), std::string(e.what()));
        }
        return std::make_pair(Status::ok, std::string());
    };
    auto [s1, m1] = status_of([] { quantize_scheme("q4_k_l"); });
    BOOST_TEST(int(s1) == int(Status::invalid_argument));
    BOOST_TEST(m1.find("unknown quantization type 'q4_k_l'") != std::string::npos, m1);
    BOOST_TEST(m1.find("Q4_K_M") != std::string::npos, m1);
    std::remove(tmp_path("q-x.gguf").c_str());
    const std::string src = write_model("q-src-tiny.gguf");
    quantize_model(src, tmp_path("q-tiny-q4_0.gguf"), quantize_scheme("q4_0"), {});
    auto [s2, m2] = status_of([&] { quantize_model(tmp_path("q-tiny-q4_0.gguf"), tmp_path("q-x.gguf"), quantize_scheme("q4_k"), {}); });
    BOOST_TEST(int(s2) == int(Status::unsupported));
    BOOST_TEST(m2.find("is already Q4_0") != std::string::npos, m2);
    auto [s3, m3] = status_of([&] { quantize_model(src, src, quantize_scheme("q4_k"), {}); });
    BOOST_TEST(int(s3) == int(Status::invalid_argument), m3);
    auto [s4, m4] = status_of([&] { quantize_model(tmp_path("no-such.gguf"), tmp_path("q-x.gguf"), quantize_scheme("q4_k"), {}); });
    BOOST_TEST(int(s4) == int(Status::io_error), m4);
    FILE* none = std::fopen(tmp_path("q-x.gguf").c_str(), "rb");  // nothing written on failure
    BOOST_TEST(!none);
    if (none) std::fclose(none);
}

// BF16 weights on a CPU with AVX512-BF16 run repacked (BF16x16, VDPBF16PS,
// activations rounded to BF16); F16 weights too with repack_f16_to_bf16 (the
// weights rounded to BF16 as well). Either way the logits track the exact
// FP32 path, the results stay batch- and thread-invariant, and the repacked
// bytes are accounted for. Without AVX512-BF16 no weight is rounded.
BOOST_AUTO_TEST_CASE(bf16_repack_tracks_the_exact_path) {
    const bool bf16 = kernels::find_table("avx512bf16") != nullptr;
    for (DType t : {DType::BF16, DType::F16}) {
        RandomModelSpec spec = k_shape(t);
        spec.n_vocab = 392;  // output rows not a multiple of 16: that matrix stays as stored
        const std::string p = write_model(std::string("bf16-") + dtype_name(t) + ".gguf", spec);
        ModelParams exact;
        exact.repack = false;
        auto ref_model = Model::load(p, exact);
        const auto ref = logits_all(*ref_model, kIds, int(kIds.size()));
        ModelParams fast;
        fast.repack_f16_to_bf16 = true;
        auto m = Model::load(p, fast);
        if (!bf16) {
            // nothing is converted: BF16 weights stay as stored, F16 ones take
            // the exact F16x16 layout where the table has it (AVX-512 without
            // BF16, AVX2; f16_repack_is_exact checks that path in full)
            const bool f16x16 = t == DType::F16 && kernels::best_table().matmul_x16[size_t(DType::F16)];
            const auto got = logits_all(*m, kIds, int(kIds.size()));
            if (!f16x16) {
                BOOST_TEST(m->repacked_bytes() == 0u);
                BOOST_TEST((got == ref));
            } else {
                BOOST_TEST(m->repacked_bytes() > 0u);
                BOOST_TEST(relative_error(got, ref) <= 1e-5, "F16x16 relative logit error " << relative_error(got, ref));
            }
            continue;
        }
        // every layer matrix (q, k, v, o, gate, up, down), 2 bytes a weight; not the 392-row output
        const int E = spec.n_embd, KV = E / spec.n_head * spec.n_head_kv, F = spec.n_ff;
        const size_t layer = size_t(2) * (size_t(E) * E * 2 + size_t(E) * KV * 2 + size_t(E) * F * 3);
        BOOST_TEST(m->repacked_bytes() == layer * size_t(spec.n_layer));
        const auto all = logits_all(*m, kIds, int(kIds.size()));
        const double err = relative_error(all, ref);
        double worst = 0;
        for (size_t i = 0; i < all.size(); ++i) worst = std::max(worst, double(std::fabs(all[i] - ref[i])));
        BOOST_TEST_MESSAGE(dtype_name(t) << " as BF16x16: relative logit error " << err << ", max abs " << worst);
        BOOST_TEST(err > 0);  // the activations (and F16 weights) really were rounded
        // measured 0.0027 (BF16) and 0.0042 (F16); a wrong layout or kernel gives unrelated logits (~1.4)
        BOOST_TEST(err <= (t == DType::BF16 ? 0.004 : 0.0065), dtype_name(t) << " relative logit error " << err);
        BOOST_TEST((logits_all(*m, kIds, 1) == all), dtype_name(t));
        BOOST_TEST((logits_all(*m, kIds, 3) == all), dtype_name(t));
        ModelParams three = fast;
        three.n_threads = 3;
        BOOST_TEST((logits_all(*Model::load(p, three), kIds, 4) == all), dtype_name(t));
    }
}

// Exact F16 weights are repacked as F16x16 where the table has that kernel
// (AVX-512, AVX2): the same values, so the logits match the unrepacked row kernels
// to float32 accumulation error (far tighter than BF16x16's rounding), the
// copy is accounted for, and the logits do not depend on the batch split or
// the thread count. --no-repack keeps the row kernels.
BOOST_AUTO_TEST_CASE(f16_repack_is_exact) {
    RandomModelSpec spec = k_shape(DType::F16);
    spec.n_vocab = 392;  // output rows not a multiple of 16: that matrix stays as stored
    const std::string p = write_model("f16x16.gguf", spec);
    ModelParams exact;
    exact.repack = false;
    auto ref_model = Model::load(p, exact);
    BOOST_TEST(ref_model->repacked_bytes() == 0u);
    const auto ref = logits_all(*ref_model, kIds, int(kIds.size()));
    auto m = Model::load(p, {});
    if (!kernels::best_table().matmul_x16[size_t(DType::F16)]) {
        BOOST_TEST(m->repacked_bytes() == 0u);
        return;
    }
    const int E = spec.n_embd, KV = E / spec.n_head * spec.n_head_kv, F = spec.n_ff;
    const size_t layer = size_t(2) * (size_t(E) * E * 2 + size_t(E) * KV * 2 + size_t(E) * F * 3);
    BOOST_TEST(m->repacked_bytes() == layer * size_t(spec.n_layer));
    const auto all = logits_all(*m, kIds, int(kIds.size()));
    const double err = relative_error(all, ref);
    BOOST_TEST_MESSAGE("F16 as F16x16: relative logit error " << err);
    BOOST_TEST(err <= 1e-5, "F16x16 relative logit error " << err);  // BF16x16 rounding gives ~4e-3
    BOOST_TEST((logits_all(*m, kIds, 1) == all));
    BOOST_TEST((logits_all(*m, kIds, 3) == all));
    ModelParams three;
    three.n_threads = 3;
    BOOST_TEST((logits_all(*Model::load(p, three), kIds, 4) == all));
}
