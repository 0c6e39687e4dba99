#include "ember/model.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace ember {

std::shared_ptr<Model> Model::load(const std::string& path, const ModelParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    auto m = init(MappedFile::open(path), path, params);
    m->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

std::shared_ptr<Model> Model::load_from_bytes(std::vector<uint8_t> bytes, const ModelParams& params) {
    const auto t0 = std::chrono::steady_clock::now();
    auto m = init(MappedFile::from_bytes(std::move(bytes)), "model buffer", params);
    m->load_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

std::shared_ptr<Model> Model::init(MappedFile map, const std::string& what, const ModelParams& params) {
    std::shared_ptr<Model> m(new Model());
    m->map_ = std::move(map);
    m->gguf_ = gguf::GgufFile::parse(m->map_.data(), m->map_.size(), what);
    m->llama_ = std::make_unique<LlamaModel>(m->gguf_);
    m->tok_ = Tokenizer::from_gguf(m->gguf_);
    if (m->tok_->n_vocab() != m->llama_->hparams().n_vocab)
        fail(Status::bad_format, "the vocabulary has " + std::to_string(m->tok_->n_vocab()) +
                                     " tokens but the model's embedding has " +
                                     std::to_string(m->llama_->hparams().n_vocab) + " rows");
    if (params.isa.empty()) {
        m->kt_ = &kernels::best_table();
    } else {
        m->kt_ = kernels::find_table(params.isa);
        if (!m->kt_) fail(Status::invalid_argument, "kernel set '" + params.isa + "' is not available on this CPU");
    }
    int n = params.n_threads;
    if (n <= 0) n = int(std::min(8u, std::max(1u, std::thread::hardware_concurrency())));
    if (n > 256) fail(Status::invalid_argument, "n_threads " + std::to_string(n) + " is more than 256");
    m->pool_ = std::make_unique<ThreadPool>(n);
    return m;
}

}  // namespace ember
