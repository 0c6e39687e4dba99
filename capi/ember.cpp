// The C ABI: handles over the C++ core. Every entry point catches every
// exception and turns it into a status and a thread-local message.
#include "ember.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "ember/kernels/dispatch.hpp"
#include "ember/model.hpp"
#include "ember/scheduler.hpp"
#include "ember/session.hpp"

static_assert(int(ember::Status::ok) == EMBER_OK);
static_assert(int(ember::Status::invalid_argument) == EMBER_ERR_INVALID_ARGUMENT);
static_assert(int(ember::Status::io_error) == EMBER_ERR_IO);
static_assert(int(ember::Status::bad_format) == EMBER_ERR_BAD_FORMAT);
static_assert(int(ember::Status::unsupported) == EMBER_ERR_UNSUPPORTED);
static_assert(int(ember::Status::out_of_memory) == EMBER_ERR_OUT_OF_MEMORY);
static_assert(int(ember::Status::context_full) == EMBER_ERR_CONTEXT_FULL);
static_assert(int(ember::Status::cancelled) == EMBER_ERR_CANCELLED);
static_assert(int(ember::Status::internal) == EMBER_ERR_INTERNAL);

struct ember_model {
    std::shared_ptr<ember::Model> m;
    // The strings ember_model_get_info hands out, made once at load.
    std::string arch, name, tensor_types, chat_template, kernels;
    bool has_chat_template = false;
};
struct ember_scheduler;
struct ember_session {
    std::unique_ptr<ember::Session> s;
    ember_scheduler* sched = nullptr;  // the scheduler whose pool it uses, if any
    ~ember_session();
};
struct ember_scheduler {
    std::unique_ptr<ember::Scheduler> s;
    std::set<ember_session*> sessions;
    ~ember_scheduler() {
        for (ember_session* x : sessions) x->sched = nullptr;  // they stay valid as plain sessions
    }
};
ember_session::~ember_session() {
    if (sched) {
        sched->s->detach(*s);
        sched->sessions.erase(this);
    }
}

namespace {

thread_local std::string g_error;

ember_status set_error(ember_status s, std::string msg) {
    g_error = std::move(msg);
    return s;
}

// Runs f(); maps every exception to a status. Clears the message on success.
template <class F>
ember_status guard(F&& f) noexcept {
    try {
        ember_status s = f();
        if (s == EMBER_OK) g_error.clear();
        return s;
    } catch (const ember::Error& e) {
        return set_error(ember_status(e.status()), e.what());
    } catch (const std::bad_alloc&) {
        return set_error(EMBER_ERR_OUT_OF_MEMORY, "out of memory");
    } catch (const std::exception& e) {
        return set_error(EMBER_ERR_INTERNAL, std::string("internal error: ") + e.what());
    } catch (...) {
        return set_error(EMBER_ERR_INTERNAL, "internal error: unknown exception");
    }
}

// Copies the caller's params over the defaults, reading only the bytes its size covers.
template <class P>
P read_params(const P* given, void (*defaults)(P*)) {
    P p;
    defaults(&p);
    if (given) {
        const uint32_t given_size = given->size;
        if (given_size < sizeof(uint32_t) || given_size > (1u << 16))
            ember::fail(ember::Status::invalid_argument, "params.size is not set (use the *_default_params function)");
        std::memcpy(&p, given, std::min<size_t>(given->size, sizeof(P)));
        p.size = sizeof(P);
    }
    return p;
}

// Writes the defaults into the first `size` bytes only (a caller built with an
// older, shorter struct must not be written past its end).
template <class P>
void init_sized(P* p, size_t size, void (*defaults)(P*)) {
    if (!p || size < sizeof(uint32_t)) return;
    P full;
    defaults(&full);
    const size_t n = std::min(size, sizeof(P));
    full.size = uint32_t(n);
    std::memcpy(p, &full, n);
}

// ---- the process-wide log sink
// One mutex around both the setting and each delivery: a line is delivered
// whole, and once ember_log_set returns the old callback is never called.
// Recursive, so a callback that calls into the library (which may log) on
// its own thread does not deadlock.
std::recursive_mutex g_log_mutex;
ember_log_callback g_log_cb = nullptr;
void* g_log_ud = nullptr;

void log_line(ember_log_level level, const std::string& msg) noexcept {
    try {
        std::lock_guard<std::recursive_mutex> lock(g_log_mutex);
        if (g_log_cb) {
            g_log_cb(int32_t(level), msg.c_str(), g_log_ud);
        } else if (level >= EMBER_LOG_WARN) {
            std::fprintf(stderr, "emberlm: %s: %s\n", level == EMBER_LOG_WARN ? "warning" : "error", msg.c_str());
        }
    } catch (...) {
        // a log line is never worth failing a call for
    }
}

ember_log_level to_c_level(ember::LogLevel l) {
    switch (l) {
        case ember::LogLevel::debug: return EMBER_LOG_DEBUG;
        case ember::LogLevel::info: return EMBER_LOG_INFO;
        case ember::LogLevel::warn: return EMBER_LOG_WARN;
        case ember::LogLevel::error: return EMBER_LOG_ERROR;
    }
    return EMBER_LOG_ERROR;
}

// "Q4_0:155,F32:45": tensors per GGUF type, most first (ties by name).
std::string tensor_type_summary(const ember::gguf::GgufFile& f) {
    std::map<std::string, int> count;
    for (const ember::gguf::TensorInfo& t : f.tensors()) {
        const ember::TypeInfo* ti = ember::type_info(t.type);
        ++count[ti ? std::string(ti->name) : "type" + std::to_string(t.type)];
    }
    std::vector<std::pair<std::string, int>> v(count.begin(), count.end());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string out;
    for (const auto& [name, n] : v) out += (out.empty() ? "" : ",") + name + ":" + std::to_string(n);
    return out;
}

// Writes min(dst->size, sizeof(T)) bytes of src into *dst and sets dst->size to that.
template <class T>
void copy_sized(T* dst, const T& src) {
    const uint32_t n = std::min<uint32_t>(dst->size, uint32_t(sizeof(T)));
    std::memcpy(static_cast<void*>(dst), &src, n);
    dst->size = n;
}

ember_metrics to_c_metrics(const ember::Metrics& m) {
    ember_metrics r;
    std::memset(&r, 0, sizeof r);
    r.size = sizeof r;
    r.n_prompt_tokens = m.n_prompt_tokens;
    r.n_generated_tokens = m.n_generated_tokens;
    r.ttft_ms = m.ttft_ms;
    r.tpot_ms = m.tpot_ms;
    r.total_ms = m.total_ms;
    r.prefill_tokens_per_s = m.prefill_tokens_per_s;
    r.decode_tokens_per_s = m.decode_tokens_per_s;
    r.finish_reason = int32_t(m.finish);
    r.n_context_shifts = m.n_context_shifts;
    return r;
}

#define EMBER_REQUIRE(cond, msg) \
    do { if (!(cond)) return set_error(EMBER_ERR_INVALID_ARGUMENT, msg); } while (0)

}  // namespace

extern "C" {

const char* ember_last_error(void) { return g_error.c_str(); }

const char* ember_status_name(ember_status s) {
    switch (s) {
        case EMBER_OK: return "EMBER_OK";
        case EMBER_ERR_INVALID_ARGUMENT: return "EMBER_ERR_INVALID_ARGUMENT";
        case EMBER_ERR_IO: return "EMBER_ERR_IO";
        case EMBER_ERR_BAD_FORMAT: return "EMBER_ERR_BAD_FORMAT";
        case EMBER_ERR_UNSUPPORTED: return "EMBER_ERR_UNSUPPORTED";
        case EMBER_ERR_OUT_OF_MEMORY: return "EMBER_ERR_OUT_OF_MEMORY";
        case EMBER_ERR_CONTEXT_FULL: return "EMBER_ERR_CONTEXT_FULL";
        case EMBER_ERR_CANCELLED: return "EMBER_ERR_CANCELLED";
        case EMBER_ERR_INTERNAL: return "EMBER_ERR_INTERNAL";
        case EMBER_ERR_BUFFER_TOO_SMALL: return "EMBER_ERR_BUFFER_TOO_SMALL";
    }
    return "EMBER_ERR_UNKNOWN";
}

uint32_t ember_abi_version(void) { return EMBER_ABI_VERSION; }
const char* ember_version(void) { return EMBER_VERSION_STRING; }
const char* ember_cpu_kernels(void) {
    try {
        return ember::kernels::best_table().name;
    } catch (...) {
        return "scalar";
    }
}

void ember_log_set(ember_log_callback callback, void* user_data) {
    std::lock_guard<std::recursive_mutex> lock(g_log_mutex);
    g_log_cb = callback;
    g_log_ud = user_data;
}

static void fill_model_defaults(ember_model_params* p) {
    if (!p) return;
    std::memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->n_threads = 0;
    p->progress = nullptr;
    p->progress_user_data = nullptr;
    p->f16_as_bf16 = 0;
    p->reserved0 = 0;
    p->kv_type = EMBER_KV_F32;
}

ember_status ember_model_load(const char* path, const ember_model_params* params, ember_model** out) {
    return guard([&] {
        EMBER_REQUIRE(out, "ember_model_load: out is NULL");
        *out = nullptr;
        EMBER_REQUIRE(path, "ember_model_load: path is NULL");
        const ember_model_params p = read_params(params, fill_model_defaults);
        ember::ModelParams mp;
        mp.n_threads = p.n_threads;
        mp.repack_f16_to_bf16 = p.f16_as_bf16 != 0;
        EMBER_REQUIRE(p.kv_type == EMBER_KV_F32 || p.kv_type == EMBER_KV_F16,
                      "ember_model_load: kv_type must be EMBER_KV_F32 or EMBER_KV_F16");
        mp.kv_type = p.kv_type == EMBER_KV_F16 ? ember::DType::F16 : ember::DType::F32;
        if (p.progress) {
            mp.on_progress = [&p](float f, std::string_view stage) {
                const std::string st(stage);
                return p.progress(f, st.c_str(), p.progress_user_data) != 0;
            };
        }
        mp.on_log = [](ember::LogLevel level, std::string_view msg) { log_line(to_c_level(level), std::string(msg)); };
        auto m = std::make_unique<ember_model>();
        m->m = ember::Model::load(path, mp);
        const ember::Model& model = *m->m;
        m->arch = model.hparams().arch;
        m->name = model.name();
        m->tensor_types = tensor_type_summary(model.file());
        m->kernels = model.kernels().name;
        if (const ember::gguf::Value* v = model.file().find("tokenizer.chat_template");
            v && v->type == ember::gguf::ValueType::string) {
            m->chat_template = std::string(v->str);
            m->has_chat_template = true;
        }
        *out = m.release();
        return EMBER_OK;
    });
}

void ember_model_free(ember_model* model) { delete model; }

int32_t ember_model_n_vocab(const ember_model* m) { return m ? m->m->hparams().n_vocab : 0; }
int32_t ember_model_n_ctx_train(const ember_model* m) { return m ? m->m->hparams().n_ctx_train : 0; }
int32_t ember_token_bos(const ember_model* m) { return m ? m->m->tokenizer().bos() : -1; }
int32_t ember_token_eos(const ember_model* m) { return m ? m->m->tokenizer().eos() : -1; }
int32_t ember_token_is_eog(const ember_model* m, int32_t token) {
    if (!m || !m->m->tokenizer().valid(token)) return 0;
    return m->m->tokenizer().is_eog(token) ? 1 : 0;
}

ember_status ember_model_get_info(const ember_model* model, ember_model_info* info) {
    return guard([&] {
        EMBER_REQUIRE(model && info, "ember_model_get_info: model and info must not be NULL");
        EMBER_REQUIRE(info->size >= sizeof(uint32_t) && info->size <= (1u << 16),
                      "ember_model_get_info: set info->size to sizeof(ember_model_info)");
        const ember::Model& m = *model->m;
        const ember::LlamaHParams& hp = m.hparams();
        ember_model_info r;
        std::memset(&r, 0, sizeof r);
        r.size = sizeof r;
        r.architecture = model->arch.c_str();
        r.name = model->name.c_str();
        r.n_params = m.arch().n_params();
        r.n_ctx_train = hp.n_ctx_train;
        r.n_vocab = hp.n_vocab;
        r.n_embd = hp.n_embd;
        r.n_layer = hp.n_layer;
        r.n_head = hp.n_head;
        r.n_head_kv = hp.n_head_kv;
        r.tensor_types = model->tensor_types.c_str();
        r.file_size = m.file_size();
        r.chat_template = model->has_chat_template ? model->chat_template.c_str() : nullptr;
        r.gguf_version = m.file().version();
        r.n_tensors = int32_t(m.file().tensors().size());
        r.kernels = model->kernels.c_str();
        r.n_threads = int32_t(m.pool().size());
        copy_sized(info, r);
        return EMBER_OK;
    });
}

ember_status ember_tokenize(const ember_model* model, const char* text, size_t text_len, uint32_t flags,
                            int32_t* tokens, size_t capacity, size_t* n_tokens) {
    return guard([&] {
        EMBER_REQUIRE(model && n_tokens, "ember_tokenize: model and n_tokens must not be NULL");
        EMBER_REQUIRE(text || text_len == 0, "ember_tokenize: text is NULL");
        EMBER_REQUIRE(tokens || capacity == 0, "ember_tokenize: tokens is NULL");
        const auto ids = model->m->tokenizer().encode(std::string_view(text ? text : "", text_len),
                                                      flags & EMBER_TOKENIZE_ADD_BOS,
                                                      flags & EMBER_TOKENIZE_PARSE_SPECIAL);
        *n_tokens = ids.size();
        if (ids.size() > capacity)
            return set_error(EMBER_ERR_BUFFER_TOO_SMALL, "ember_tokenize: " + std::to_string(ids.size()) +
                                                             " tokens do not fit in a buffer of " +
                                                             std::to_string(capacity));
        if (!ids.empty()) std::memcpy(tokens, ids.data(), ids.size() * sizeof(int32_t));
        return EMBER_OK;
    });
}

ember_status ember_detokenize(const ember_model* model, const int32_t* tokens, size_t n, uint32_t flags, char* text,
                              size_t capacity, size_t* text_len) {
    return guard([&] {
        EMBER_REQUIRE(model && text_len, "ember_detokenize: model and text_len must not be NULL");
        EMBER_REQUIRE(tokens || n == 0, "ember_detokenize: tokens is NULL");
        EMBER_REQUIRE(text || capacity == 0, "ember_detokenize: text is NULL");
        const std::string s = model->m->tokenizer().decode(std::vector<int32_t>(tokens, tokens + n),
                                                           flags & EMBER_DETOKENIZE_SPECIAL);
        *text_len = s.size();
        if (s.size() > capacity)
            return set_error(EMBER_ERR_BUFFER_TOO_SMALL, "ember_detokenize: " + std::to_string(s.size()) +
                                                             " bytes do not fit in a buffer of " +
                                                             std::to_string(capacity));
        if (!s.empty()) std::memcpy(text, s.data(), s.size());
        return EMBER_OK;
    });
}

ember_status ember_token_to_piece(const ember_model* model, int32_t token, uint32_t flags, char* piece,
                                  size_t capacity, size_t* piece_len) {
    return guard([&] {
        EMBER_REQUIRE(model && piece_len, "ember_token_to_piece: model and piece_len must not be NULL");
        EMBER_REQUIRE(piece || capacity == 0, "ember_token_to_piece: piece is NULL");
        const std::string s = model->m->tokenizer().piece(token, flags & EMBER_DETOKENIZE_SPECIAL);
        *piece_len = s.size();
        if (s.size() > capacity)
            return set_error(EMBER_ERR_BUFFER_TOO_SMALL, "ember_token_to_piece: " + std::to_string(s.size()) +
                                                             " bytes do not fit in a buffer of " +
                                                             std::to_string(capacity));
        if (!s.empty()) std::memcpy(piece, s.data(), s.size());
        return EMBER_OK;
    });
}

static void fill_session_defaults(ember_session_params* p) {
    if (!p) return;
    std::memset(p, 0, sizeof *p);
    const ember::SessionParams d;
    p->size = sizeof *p;
    p->n_ctx = d.n_ctx;
    p->n_batch = d.n_batch;
    p->seed = d.sampling.seed;
    p->temperature = d.sampling.temperature;
    p->top_k = d.sampling.top_k;
    p->top_p = d.sampling.top_p;
    p->min_p = d.sampling.min_p;
    p->repeat_penalty = d.sampling.repeat_penalty;
    p->repeat_last_n = d.sampling.repeat_last_n;
    p->overflow_policy = int32_t(d.overflow);
    p->n_keep = d.n_keep;
}

namespace {
ember::SessionParams to_session_params(const ember_session_params& p) {
    ember::SessionParams sp;
    sp.n_ctx = p.n_ctx;
    sp.n_batch = p.n_batch;
    sp.sampling.seed = p.seed;
    sp.sampling.temperature = p.temperature;
    sp.sampling.top_k = p.top_k;
    sp.sampling.top_p = p.top_p;
    sp.sampling.min_p = p.min_p;
    sp.sampling.repeat_penalty = p.repeat_penalty;
    sp.sampling.repeat_last_n = p.repeat_last_n;
    if (p.overflow_policy != EMBER_OVERFLOW_ERROR && p.overflow_policy != EMBER_OVERFLOW_SHIFT &&
        p.overflow_policy != EMBER_OVERFLOW_SHIFT_FAST)
        ember::fail(ember::Status::invalid_argument,
                    "overflow_policy must be EMBER_OVERFLOW_ERROR, EMBER_OVERFLOW_SHIFT or EMBER_OVERFLOW_SHIFT_FAST");
    sp.overflow = ember::OverflowPolicy(p.overflow_policy);
    sp.n_keep = p.n_keep;
    return sp;
}
}  // namespace

ember_status ember_session_create(ember_model* model, const ember_session_params* params, ember_session** out) {
    return guard([&] {
        EMBER_REQUIRE(out, "ember_session_create: out is NULL");
        *out = nullptr;
        EMBER_REQUIRE(model, "ember_session_create: model is NULL");
        const ember::SessionParams sp = to_session_params(read_params(params, fill_session_defaults));
        auto s = std::make_unique<ember_session>();
        s->s = std::make_unique<ember::Session>(model->m, sp);
        *out = s.release();
        return EMBER_OK;
    });
}

void ember_session_free(ember_session* s) { delete s; }

ember_status ember_session_reset(ember_session* s) {
    return guard([&] {
        EMBER_REQUIRE(s, "ember_session_reset: session is NULL");
        s->s->reset();
        return EMBER_OK;
    });
}

size_t ember_session_memory(const ember_session* s) { return s ? s->s->bytes() : 0; }
int32_t ember_session_n_ctx(const ember_session* s) { return s ? s->s->n_ctx() : 0; }
int32_t ember_session_n_tokens(const ember_session* s) { return s ? int32_t(s->s->history().size()) : 0; }
int32_t ember_session_n_evaluated(const ember_session* s) { return s ? int32_t(s->s->n_evaluated()) : 0; }

static void fill_generate_defaults(ember_generate_params* p) {
    if (!p) return;
    std::memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->max_tokens = 256;
}

ember_status ember_generate(ember_session* s, const char* prompt, size_t prompt_len,
                            const ember_generate_params* params, ember_metrics* metrics) {
    return guard([&] {
        EMBER_REQUIRE(s, "ember_generate: session is NULL");
        EMBER_REQUIRE(prompt || prompt_len == 0, "ember_generate: prompt is NULL");
        EMBER_REQUIRE(!metrics || metrics->size >= sizeof(uint32_t),
                      "ember_generate: set metrics->size to sizeof(ember_metrics)");
        const ember_generate_params p = read_params(params, fill_generate_defaults);
        EMBER_REQUIRE(p.stop || p.n_stop == 0, "ember_generate: stop is NULL but n_stop > 0");
        ember::GenerateOptions o;
        o.max_tokens = p.max_tokens;
        o.parse_special = p.flags & EMBER_TOKENIZE_PARSE_SPECIAL;
        for (size_t i = 0; i < p.n_stop; ++i) {
            EMBER_REQUIRE(p.stop[i], "ember_generate: a stop string is NULL");
            o.stop.emplace_back(p.stop[i]);
        }
        if (p.on_piece) {
            o.on_piece = [&p](std::string_view piece, int32_t token) {
                return p.on_piece(piece.data(), piece.size(), token, p.user_data) != 0;
            };
        }
        if (p.on_prefill) {
            o.on_prefill = [&p](int done, int total) { return p.on_prefill(done, total, p.user_data) != 0; };
        }
        s->s->generate(std::string_view(prompt ? prompt : "", prompt_len), o);
        const ember::Metrics& m = s->s->metrics();
        if (metrics) copy_sized(metrics, to_c_metrics(m));
        if (m.finish == ember::FinishReason::cancelled)
            return set_error(EMBER_ERR_CANCELLED, "generation cancelled by the callback after " +
                                                      std::to_string(m.n_generated_tokens) + " tokens");
        return EMBER_OK;
    });
}

ember_status ember_session_metrics(const ember_session* s, ember_metrics* metrics) {
    return guard([&] {
        EMBER_REQUIRE(s && metrics, "ember_session_metrics: session and metrics must not be NULL");
        EMBER_REQUIRE(metrics->size >= sizeof(uint32_t) && metrics->size <= (1u << 16),
                      "ember_session_metrics: set metrics->size to sizeof(ember_metrics)");
        copy_sized(metrics, to_c_metrics(s->s->metrics()));
        return EMBER_OK;
    });
}

ember_status ember_session_eval(ember_session* s, const int32_t* tokens, size_t n) {
    return guard([&] {
        EMBER_REQUIRE(s, "ember_session_eval: session is NULL");
        EMBER_REQUIRE(tokens || n == 0, "ember_session_eval: tokens is NULL");
        s->s->eval(std::span<const int32_t>(tokens, n));
        return EMBER_OK;
    });
}

const float* ember_session_logits(ember_session* s) {
    if (!s) {
        set_error(EMBER_ERR_INVALID_ARGUMENT, "ember_session_logits: session is NULL");
        return nullptr;
    }
    if (!s->s->has_logits()) {
        set_error(EMBER_ERR_INVALID_ARGUMENT,
                  "ember_session_logits: no logits (evaluate tokens first; an accepted token needs an eval)");
        return nullptr;
    }
    g_error.clear();
    return s->s->logits();
}

ember_status ember_session_sample(ember_session* s, int32_t* token) {
    return guard([&] {
        EMBER_REQUIRE(s && token, "ember_session_sample: session and token must not be NULL");
        *token = s->s->sample();
        return EMBER_OK;
    });
}

ember_status ember_session_accept(ember_session* s, int32_t token) {
    return guard([&] {
        EMBER_REQUIRE(s, "ember_session_accept: session is NULL");
        s->s->append(std::span<const int32_t>(&token, 1));
        return EMBER_OK;
    });
}

// ---- scheduler --------------------------------------------------------------------

static void fill_scheduler_defaults(ember_scheduler_params* p) {
    if (!p) return;
    std::memset(p, 0, sizeof *p);
    const ember::SchedulerParams d;
    p->size = sizeof *p;
    p->max_batch_tokens = d.max_batch_tokens;
    p->prefill_chunk = d.prefill_chunk;
    p->kv_max_tokens = 0;
    p->kv_initial_tokens = 0;
}

ember_status ember_scheduler_create(ember_model* model, const ember_scheduler_params* params, ember_scheduler** out) {
    return guard([&] {
        EMBER_REQUIRE(out, "ember_scheduler_create: out is NULL");
        *out = nullptr;
        EMBER_REQUIRE(model, "ember_scheduler_create: model is NULL");
        const ember_scheduler_params p = read_params(params, fill_scheduler_defaults);
        EMBER_REQUIRE(p.kv_max_tokens >= 0 && p.kv_initial_tokens >= 0, "ember_scheduler_create: negative KV size");
        ember::SchedulerParams sp;
        sp.max_batch_tokens = p.max_batch_tokens;
        sp.prefill_chunk = p.prefill_chunk;
        const int page = ember::LlamaModel::kPageSize;
        sp.kv_max_pages = (p.kv_max_tokens + page - 1) / page;
        sp.kv_initial_pages = (p.kv_initial_tokens + page - 1) / page;
        auto s = std::make_unique<ember_scheduler>();
        s->s = std::make_unique<ember::Scheduler>(model->m, sp);
        *out = s.release();
        return EMBER_OK;
    });
}

void ember_scheduler_free(ember_scheduler* sched) { delete sched; }

ember_status ember_scheduler_session_create(ember_scheduler* sched, const ember_session_params* params,
                                            ember_session** out) {
    return guard([&] {
        EMBER_REQUIRE(out, "ember_scheduler_session_create: out is NULL");
        *out = nullptr;
        EMBER_REQUIRE(sched, "ember_scheduler_session_create: scheduler is NULL");
        const ember::SessionParams sp = to_session_params(read_params(params, fill_session_defaults));
        auto s = std::make_unique<ember_session>();
        s->s = sched->s->create_session(sp);
        s->sched = sched;
        sched->sessions.insert(s.get());
        *out = s.release();
        return EMBER_OK;
    });
}

size_t ember_scheduler_kv_bytes(const ember_scheduler* sched) { return sched ? sched->s->kv_bytes_used() : 0; }

ember_status ember_session_fork(const ember_session* parent, ember_session** out) {
    return guard([&] {
        EMBER_REQUIRE(out, "ember_session_fork: out is NULL");
        *out = nullptr;
        EMBER_REQUIRE(parent, "ember_session_fork: parent is NULL");
        auto s = std::make_unique<ember_session>();
        s->s = parent->s->fork();
        if (parent->sched) {
            s->sched = parent->sched;
            parent->sched->sessions.insert(s.get());
        }
        *out = s.release();
        return EMBER_OK;
    });
}

ember_status ember_session_prefill(ember_session* session, const char* text, size_t len, uint32_t flags) {
    return guard([&] {
        EMBER_REQUIRE(session, "ember_session_prefill: session is NULL");
        EMBER_REQUIRE(text || len == 0, "ember_session_prefill: text is NULL");
        ember::Session& s = *session->s;
        const ember::Tokenizer& tok = s.model().tokenizer();
        const bool bos = s.history().empty() && tok.bos() >= 0 && (tok.add_bos_default() || (flags & EMBER_TOKENIZE_ADD_BOS));
        s.eval(tok.encode(std::string_view(text ? text : "", len), bos, flags & EMBER_TOKENIZE_PARSE_SPECIAL));
        return EMBER_OK;
    });
}

static void fill_request_defaults(ember_request_params* p) {
    if (!p) return;
    std::memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    p->max_tokens = 256;
}

ember_status ember_submit(ember_scheduler* sched, ember_session* session, const char* prompt, size_t prompt_len,
                          const ember_request_params* params, ember_request* out) {
    return guard([&] {
        EMBER_REQUIRE(out, "ember_submit: out is NULL");
        *out = 0;
        EMBER_REQUIRE(sched && session, "ember_submit: scheduler and session must not be NULL");
        EMBER_REQUIRE(session->sched == sched, "ember_submit: the session was not made by this scheduler");
        EMBER_REQUIRE(prompt || prompt_len == 0, "ember_submit: prompt is NULL");
        const ember_request_params p = read_params(params, fill_request_defaults);
        EMBER_REQUIRE(p.stop || p.n_stop == 0, "ember_submit: stop is NULL but n_stop > 0");
        ember::RequestOptions o;
        o.gen.max_tokens = p.max_tokens;
        o.gen.parse_special = p.flags & EMBER_TOKENIZE_PARSE_SPECIAL;
        o.priority = p.priority;
        for (size_t i = 0; i < p.n_stop; ++i) {
            EMBER_REQUIRE(p.stop[i], "ember_submit: a stop string is NULL");
            o.gen.stop.emplace_back(p.stop[i]);
        }
        if (p.on_piece)
            o.gen.on_piece = [cb = p.on_piece, ud = p.user_data](std::string_view piece, int32_t token) {
                return cb(piece.data(), piece.size(), token, ud) != 0;
            };
        *out = sched->s->submit(*session->s, std::string_view(prompt ? prompt : "", prompt_len), o);
        return EMBER_OK;
    });
}

ember_status ember_step(ember_scheduler* sched, double budget_ms, ember_step_stats* stats) {
    return guard([&] {
        EMBER_REQUIRE(sched, "ember_step: scheduler is NULL");
        EMBER_REQUIRE(!stats || stats->size >= sizeof(uint32_t), "ember_step: set stats->size to sizeof(ember_step_stats)");
        const ember::StepStats st = sched->s->step(budget_ms);
        if (stats) {
            ember_step_stats r;
            std::memset(&r, 0, sizeof r);
            r.size = sizeof r;
            r.entries = st.entries;
            r.layers = st.layers;
            r.tokens_generated = st.tokens_generated;
            r.paused = st.paused ? 1 : 0;
            r.ms = st.ms;
            copy_sized(stats, r);
        }
        return EMBER_OK;
    });
}

ember_status ember_scheduler_run(ember_scheduler* sched) {
    return guard([&] {
        EMBER_REQUIRE(sched, "ember_scheduler_run: scheduler is NULL");
        sched->s->run_to_completion();
        return EMBER_OK;
    });
}

ember_status ember_request_get_state(const ember_scheduler* sched, ember_request req, int32_t* state) {
    return guard([&] {
        EMBER_REQUIRE(sched && state, "ember_request_get_state: scheduler and state must not be NULL");
        *state = int32_t(sched->s->state(req));
        return EMBER_OK;
    });
}

ember_status ember_request_poll(ember_scheduler* sched, ember_request req, char* text, size_t capacity, size_t* len) {
    return guard([&] {
        EMBER_REQUIRE(sched && len, "ember_request_poll: scheduler and len must not be NULL");
        EMBER_REQUIRE(text || capacity == 0, "ember_request_poll: text is NULL");
        const std::string& pending = sched->s->pending_text(req);
        *len = pending.size();
        if (pending.size() > capacity)
            return set_error(EMBER_ERR_BUFFER_TOO_SMALL, "ember_request_poll: " + std::to_string(pending.size()) +
                                                             " bytes do not fit in a buffer of " + std::to_string(capacity));
        const std::string t = sched->s->take_text(req);
        if (!t.empty()) std::memcpy(text, t.data(), t.size());
        return EMBER_OK;
    });
}

ember_status ember_request_cancel(ember_scheduler* sched, ember_request req) {
    return guard([&] {
        EMBER_REQUIRE(sched, "ember_request_cancel: scheduler is NULL");
        sched->s->cancel(req);
        return EMBER_OK;
    });
}

ember_status ember_request_metrics(const ember_scheduler* sched, ember_request req, ember_metrics* metrics) {
    return guard([&] {
        EMBER_REQUIRE(sched && metrics, "ember_request_metrics: scheduler and metrics must not be NULL");
        EMBER_REQUIRE(metrics->size >= sizeof(uint32_t), "ember_request_metrics: set metrics->size");
        copy_sized(metrics, to_c_metrics(sched->s->metrics(req)));
        return EMBER_OK;
    });
}

const char* ember_request_error(const ember_scheduler* sched, ember_request req) {
    try {
        return sched ? sched->s->error(req).c_str() : "";
    } catch (...) {
        return "";
    }
}

ember_status ember_request_release(ember_scheduler* sched, ember_request req) {
    return guard([&] {
        EMBER_REQUIRE(sched, "ember_request_release: scheduler is NULL");
        sched->s->release(req);
        return EMBER_OK;
    });
}

// ---- savegames -------------------------------------------------------------------

ember_status ember_session_save(const ember_session* session, uint32_t flags, uint8_t* data, size_t capacity,
                                size_t* len) {
    return guard([&] {
        EMBER_REQUIRE(session && len, "ember_session_save: session and len must not be NULL");
        EMBER_REQUIRE(data || capacity == 0, "ember_session_save: data is NULL");
        const std::vector<uint8_t> b = session->s->save(flags & EMBER_SAVE_KV);
        *len = b.size();
        if (b.size() > capacity)
            return set_error(EMBER_ERR_BUFFER_TOO_SMALL, "ember_session_save: the save needs " + std::to_string(b.size()) +
                                                             " bytes, the buffer has " + std::to_string(capacity));
        std::memcpy(data, b.data(), b.size());
        return EMBER_OK;
    });
}

ember_status ember_session_load(ember_session* session, const uint8_t* data, size_t len) {
    return guard([&] {
        EMBER_REQUIRE(session, "ember_session_load: session is NULL");
        EMBER_REQUIRE(data || len == 0, "ember_session_load: data is NULL");
        if (session->sched) session->sched->s->detach(*session->s);  // its requests end; the conversation is replaced
        session->s->load(std::span<const uint8_t>(data, len));
        return EMBER_OK;
    });
}


// ---- params: defaults for exactly the bytes the caller has ------------------------

void ember_model_params_init(ember_model_params* params, size_t size) {
    init_sized(params, size, fill_model_defaults);
}
void ember_session_params_init(ember_session_params* params, size_t size) {
    init_sized(params, size, fill_session_defaults);
}
void ember_generate_params_init(ember_generate_params* params, size_t size) {
    init_sized(params, size, fill_generate_defaults);
}
void ember_scheduler_params_init(ember_scheduler_params* params, size_t size) {
    init_sized(params, size, fill_scheduler_defaults);
}
void ember_request_params_init(ember_request_params* params, size_t size) {
    init_sized(params, size, fill_request_defaults);
}

}  // extern "C"
