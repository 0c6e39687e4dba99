// The model and session layers on real GGUF files the test writes: hostile
// model files through the C ABI, and forward-pass invariants — batched prefill
// equals token-by-token decoding, output does not depend on the thread count,
// a multi-turn conversation equals the same tokens in one go.
#define BOOST_TEST_MODULE test_model
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "ember.h"
#include "ember/make_model.hpp"
#include "ember/model.hpp"
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
