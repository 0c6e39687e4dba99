/*
 * ember.h — the C ABI of emberlm, the only header a host needs.
 *
 * Usage:
 *
 *   ember_model_params mp;  ember_model_default_params(&mp);
 *   ember_model* model;
 *   if (ember_model_load("model.gguf", &mp, &model) != EMBER_OK) {
 *       fprintf(stderr, "%s\n", ember_last_error());  return 1;
 *   }
 *   ember_session_params sp;  ember_session_default_params(&sp);
 *   ember_session* s;
 *   ember_session_create(model, &sp, &s);
 *   ember_generate_params gp;  ember_generate_default_params(&gp);
 *   gp.max_tokens = 64;  gp.on_piece = print_piece;  // streams text
 *   ember_generate(s, "Once upon a time", 16, &gp, NULL);
 *   ember_session_free(s);  ember_model_free(model);
 *
 * Below generate there is a token-level API for hosts that drive the loop
 * themselves: ember_session_eval (append and evaluate tokens),
 * ember_session_logits, ember_session_sample (the session's sampler chain:
 * repetition penalty, top-k, temperature, top-p, min-p, seeded draw) and
 * ember_session_accept (append a token without evaluating it yet).
 *
 * Threading:
 *  - Global functions (versions, ember_status_name, ember_log_set,
 *    ember_last_error, the *_default_params functions) may be called from any
 *    thread at any time. ember_last_error() is per thread.
 *  - A model is immutable after load: every function taking a
 *    `const ember_model*` (info, tokenize, detokenize, token queries) may be
 *    called from many threads at once, and sessions of one model may run on
 *    different threads at once (the model's thread pool serialises their
 *    parallel regions). ember_model_free must not race with a call on the
 *    same model handle; sessions keep the weights alive, so a model handle
 *    may be freed before its sessions.
 *  - A session is used from one thread at a time (any thread, one call at a
 *    time); different sessions are independent.
 *  - Callbacks (pieces, progress, log) run on the thread that made the call,
 *    inside it; they must not call into the same session.
 *  - No call creates a thread per request; each model owns one thread pool
 *    sized by ember_model_params.n_threads.
 *
 * Errors: every call that can fail returns an ember_status (the few that
 * return a value document theirs); on failure ember_last_error()
 * gives a message for the calling thread naming the problem. No function
 * aborts or lets a C++ exception escape; a failed call changes nothing.
 *
 * Compatibility: params structs start with a `size` member that
 * *_default_params() sets; the library reads only the fields that size
 * covers, so fields are only ever appended (the same holds for the structs
 * the library fills: metrics, model info). Bindings check
 * ember_abi_version() == EMBER_ABI_VERSION at load; the SONAME is
 * libember.so.<ABI>. capi/abi/libember.abi records this ABI and the test_abi
 * test fails on any incompatible change (tools/abi/update-baseline.sh).
 *
 * Strings are UTF-8 with explicit lengths; nothing returned needs freeing
 * except handles, by their *_free function.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(EMBER_BUILDING_LIBRARY)
#define EMBER_API __declspec(dllexport)
#elif defined(_WIN32)
#define EMBER_API __declspec(dllimport)
#else
#define EMBER_API __attribute__((visibility("default")))
#endif

#define EMBER_ABI_VERSION 1

/* ---- status ------------------------------------------------------------- */

typedef enum ember_status {
    EMBER_OK = 0,
    EMBER_ERR_INVALID_ARGUMENT = 1, /* a null pointer, an id out of range, a bad setting */
    EMBER_ERR_IO = 2,               /* a file could not be opened or read */
    EMBER_ERR_BAD_FORMAT = 3,       /* not a valid GGUF file, or a corrupt one */
    EMBER_ERR_UNSUPPORTED = 4,      /* valid, but an architecture or type we do not run */
    EMBER_ERR_OUT_OF_MEMORY = 5,
    EMBER_ERR_CONTEXT_FULL = 6,     /* the request does not fit in the session's context */
    EMBER_ERR_CANCELLED = 7,        /* a callback asked to stop */
    EMBER_ERR_INTERNAL = 8,         /* a bug in emberlm: please report the message */
    EMBER_ERR_BUFFER_TOO_SMALL = 9  /* the output buffer is too small; the required size was returned */
} ember_status;

/* Message of the last failed call on this thread ("" if none). Valid until
   the next call on this thread. */
EMBER_API const char* ember_last_error(void);
/* A short name of a status: "EMBER_ERR_BAD_FORMAT". */
EMBER_API const char* ember_status_name(ember_status status);

/* ---- versions ----------------------------------------------------------- */

EMBER_API uint32_t ember_abi_version(void);  /* EMBER_ABI_VERSION the library was built with */
EMBER_API const char* ember_version(void);   /* library version, "0.1.0" */
/* Kernel set the library would use on this CPU ("amx", "avx512bf16", "avx512", "avx2", "sse2", "neon", "scalar"). */
EMBER_API const char* ember_cpu_kernels(void);

/* ---- logging ------------------------------------------------------------ */

typedef enum ember_log_level {
    EMBER_LOG_DEBUG = 0,
    EMBER_LOG_INFO = 1,  /* a summary line per model load */
    EMBER_LOG_WARN = 2,  /* something accepted but probably not what the host wants */
    EMBER_LOG_ERROR = 3
} ember_log_level;

/* Receives one log line: level is an ember_log_level, message is NUL-terminated
   UTF-8 without a trailing newline, valid during the call only. */
typedef void (*ember_log_callback)(int32_t level, const char* message, void* user_data);

/* Routes the library's log lines to `callback` (process-wide). NULL restores
   the default: warnings and errors written to stderr, nothing else; to
   silence the library, pass a callback that does nothing. The callback runs
   on the thread whose call logs (a model load logs on the loading thread), at
   most one line at a time; once ember_log_set returns, the previous callback
   is not called again. Call it from any thread (from inside the callback
   too). Errors are never only logged: a failing call always returns its
   status and message. */
EMBER_API void ember_log_set(ember_log_callback callback, void* user_data);

/* ---- models ------------------------------------------------------------- */

typedef struct ember_model ember_model;

/* Load progress: `progress` in (0, 1] and the stage just finished: "parsed"
   (GGUF header, metadata and tensor table validated), "weights" (the
   architecture's tensors found and checked), "tokenizer" (vocabulary built),
   "ready". Return non-zero to cancel the load (EMBER_ERR_CANCELLED). */
typedef int (*ember_progress_callback)(float progress, const char* stage, void* user_data);

typedef struct ember_model_params {
    uint32_t size;       /* sizeof(ember_model_params), set by ember_model_default_params */
    int32_t n_threads;   /* threads for this model's work, incl. the caller; 0 = automatic */
    /* ABI 1, appended: */
    ember_progress_callback progress; /* may be NULL; runs on the loading thread */
    void* progress_user_data;
    /* ABI 1, appended: non-zero converts F16 matmul weights to BF16 at load
       for the AVX512-BF16 kernels (faster, lossy: F16 keeps 11 significant
       bits, BF16 8; like ik_llama.cpp's -rtr). No effect on other CPUs. 0 by
       default. (BF16 weights use those kernels anyway, exactly.) */
    int32_t f16_as_bf16;
    /* Ignored: where earlier headers had the struct's tail padding (so a
       `size` from them never covers kv_type, whatever their padding held). */
    int32_t reserved0;
    /* ABI 1, appended: element type of the model's KV caches (every session
       and scheduler made from it): EMBER_KV_F32 (default) or EMBER_KV_F16,
       half the KV memory, each key and value rounded to nearest when written
       (11 significant bits; llama.cpp's default K/V type; a fast context
       shift rounds the moved keys again). Output stays deterministic and
       batch-invariant either way. */
    int32_t kv_type;
} ember_model_params;

/* ember_model_params.kv_type */
typedef enum ember_kv_type { EMBER_KV_F32 = 0, EMBER_KV_F16 = 1 } ember_kv_type;

/* Fills the first `size` bytes of *params with the defaults and sets
   params->size (bindings pass the size of the struct they were built with). */
EMBER_API void ember_model_params_init(ember_model_params* params, size_t size);
static inline void ember_model_default_params(ember_model_params* params) {
    ember_model_params_init(params, sizeof *params);
}

/* Maps and validates a GGUF file. On success *out owns the model (free it
   with ember_model_free). params may be NULL for defaults. Weights stay in
   the mapping; nothing is copied. Warnings go to the log callback. */
EMBER_API ember_status ember_model_load(const char* path, const ember_model_params* params, ember_model** out);
/* Frees the handle. Sessions made from it keep the weights alive until they
   are freed too. NULL is ignored. */
EMBER_API void ember_model_free(ember_model* model);

/* What a loaded model is. Strings are NUL-terminated, owned by the model and
   valid until ember_model_free. */
typedef struct ember_model_info {
    uint32_t size;               /* set by the caller to sizeof(ember_model_info) */
    const char* architecture;    /* "llama", "qwen2" */
    const char* name;            /* general.name, "" if none */
    uint64_t n_params;           /* parameters (elements of every weight tensor) */
    int32_t n_ctx_train;         /* context length the model was trained with */
    int32_t n_vocab;
    int32_t n_embd;              /* width */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    const char* tensor_types;    /* tensor count per type, most first: "Q4_0:155,F32:45" */
    uint64_t file_size;          /* bytes */
    const char* chat_template;   /* tokenizer.chat_template (a Jinja template), NULL if none */
    uint32_t gguf_version;       /* 2 or 3 */
    int32_t n_tensors;
    const char* kernels;         /* kernel set the model runs: "amx", "avx512bf16", "avx512", "avx2", ... */
    int32_t n_threads;           /* threads of the model's pool */
} ember_model_info;

/* Fills *info (set info->size first): writes the fields that size covers and
   sets info->size to the bytes written. The struct is named for what it
   holds; C does not allow a function of the same name. */
EMBER_API ember_status ember_model_get_info(const ember_model* model, ember_model_info* info);

EMBER_API int32_t ember_model_n_vocab(const ember_model* model);
EMBER_API int32_t ember_model_n_ctx_train(const ember_model* model);
EMBER_API int32_t ember_token_bos(const ember_model* model); /* -1 if none */
EMBER_API int32_t ember_token_eos(const ember_model* model); /* -1 if none */
/* 1 if `token` ends a generation (EOS, end of turn, ...), 0 otherwise (also
   for an id out of range or a NULL model). */
EMBER_API int32_t ember_token_is_eog(const ember_model* model, int32_t token);

/* ---- tokens ------------------------------------------------------------- */

enum {
    EMBER_TOKENIZE_ADD_BOS = 1u << 0,       /* add the special tokens the vocabulary asks for: BOS (and EOS
                                               when add_eos_token is set; BERT: [CLS] ... [SEP]) */
    EMBER_TOKENIZE_PARSE_SPECIAL = 1u << 1  /* control-token text maps to control tokens */
};

/* Tokenizes text[0..text_len). Writes at most `capacity` ids to `tokens` and
   the count to *n_tokens. If capacity is too small, returns
   EMBER_ERR_BUFFER_TOO_SMALL with the required count in *n_tokens. */
EMBER_API ember_status ember_tokenize(const ember_model* model, const char* text, size_t text_len, uint32_t flags,
                                      int32_t* tokens, size_t capacity, size_t* n_tokens);

enum { EMBER_DETOKENIZE_SPECIAL = 1u << 0 /* render control tokens as their text */ };

/* Text of tokens[0..n) (not NUL-terminated). Same buffer protocol as
   ember_tokenize, counting bytes. Ids out of range are EMBER_ERR_INVALID_ARGUMENT. */
EMBER_API ember_status ember_detokenize(const ember_model* model, const int32_t* tokens, size_t n, uint32_t flags,
                                        char* text, size_t capacity, size_t* text_len);

/* The bytes one token contributes to text (not NUL-terminated; may be part
   of a UTF-8 character, e.g. a byte token; keeps the SentencePiece space of
   a word start). flags: EMBER_DETOKENIZE_SPECIAL renders control tokens.
   Same buffer protocol as ember_tokenize, counting bytes. */
EMBER_API ember_status ember_token_to_piece(const ember_model* model, int32_t token, uint32_t flags, char* piece,
                                            size_t capacity, size_t* piece_len);

/* ---- sessions ----------------------------------------------------------- */

typedef struct ember_session ember_session;

typedef struct ember_session_params {
    uint32_t size;          /* sizeof(ember_session_params), set by ember_session_default_params */
    int32_t n_ctx;          /* context length; 0 = the model's (at most 4096) */
    int32_t n_batch;        /* prompt tokens per forward pass (default 256) */
    uint64_t seed;          /* sampler seed: same seed, model and inputs => same text */
    float temperature;      /* <= 0: greedy (default 0.8) */
    int32_t top_k;          /* <= 0: off (default 40) */
    float top_p;            /* >= 1: off (default 0.95) */
    float min_p;            /* <= 0: off (default 0.05) */
    float repeat_penalty;   /* 1: off (default 1.0) */
    int32_t repeat_last_n;  /* tokens the penalty looks back (default 64) */
    /* appended in ABI 1.1 */
    int32_t overflow_policy; /* ember_overflow_policy: what happens when the conversation fills n_ctx */
    int32_t n_keep;          /* EMBER_OVERFLOW_SHIFT keeps this many first tokens; -1 = the first prompt */
} ember_session_params;

/* When a conversation reaches n_ctx: */
typedef enum ember_overflow_policy {
    EMBER_OVERFLOW_ERROR = 0, /* the request ends with finish reason EMBER_FINISH_CONTEXT_FULL (default) */
    EMBER_OVERFLOW_SHIFT = 1, /* keep the first n_keep tokens (a persona), drop the oldest half of the rest,
                                 re-evaluate what follows it (exact; one prefill) */
    EMBER_OVERFLOW_SHIFT_FAST = 2 /* the same tokens kept, but the cached entries are moved and re-rotated
                                     instead of re-evaluated: no stall, approximate */
} ember_overflow_policy;

/* Fills the first `size` bytes of *params with the defaults and sets
   params->size (bindings pass the size of the struct they were built with). */
EMBER_API void ember_session_params_init(ember_session_params* params, size_t size);
static inline void ember_session_default_params(ember_session_params* params) {
    ember_session_params_init(params, sizeof *params);
}

/* A conversation on `model` (the session keeps the weights alive). Its KV
   cache is allocated here; forward-pass scratch is the model's, lent to a
   session for each call. params may be NULL for defaults.
   Threads are the model's (ember_model_params.n_threads), not the session's. */
EMBER_API ember_status ember_session_create(ember_model* model, const ember_session_params* params,
                                            ember_session** out);
EMBER_API void ember_session_free(ember_session* session);
/* Forgets the conversation; keeps the settings. */
EMBER_API ember_status ember_session_reset(ember_session* session);
/* Bytes this session holds alone (KV cache pages not shared with a fork,
   logits); forward-pass scratch belongs to the model, shared by its sessions. */
EMBER_API size_t ember_session_memory(const ember_session* session);
EMBER_API int32_t ember_session_n_ctx(const ember_session* session);
/* Tokens in the conversation so far. */
EMBER_API int32_t ember_session_n_tokens(const ember_session* session);
/* Of those, the tokens already evaluated into the KV cache; the rest (an
   accepted or last generated token) are evaluated by the next eval/generate. */
EMBER_API int32_t ember_session_n_evaluated(const ember_session* session);

/* ---- generation --------------------------------------------------------- */

/* Receives each piece of generated text as soon as it is valid UTF-8 (a
   piece can be empty while a character spans several tokens), and the token
   that completed it (-1 for a final flush). Return non-zero to cancel. */
typedef int (*ember_piece_callback)(const char* piece, size_t len, int32_t token, void* user_data);

/* Progress of a prompt's prefill: called before each layer of its forward
   passes with the prompt tokens done and in all. Return non-zero to cancel:
   ember_generate then returns EMBER_ERR_CANCELLED and the session is as it
   was before the call. */
typedef int (*ember_prefill_callback)(int32_t done, int32_t total, void* user_data);

typedef struct ember_generate_params {
    uint32_t size;                 /* sizeof(ember_generate_params) */
    int32_t max_tokens;            /* generated tokens at most; < 0 = until EOS or the context is full */
    const char* const* stop;       /* stop strings (NUL-terminated UTF-8); generation ends before one */
    size_t n_stop;
    ember_piece_callback on_piece; /* may be NULL */
    void* user_data;               /* passed to on_piece and on_prefill */
    uint32_t flags;                /* EMBER_TOKENIZE_PARSE_SPECIAL applies to the prompt */
    ember_prefill_callback on_prefill; /* may be NULL; (ABI 1.1) */
} ember_generate_params;

/* Fills the first `size` bytes of *params with the defaults and sets
   params->size (bindings pass the size of the struct they were built with). */
EMBER_API void ember_generate_params_init(ember_generate_params* params, size_t size);
static inline void ember_generate_default_params(ember_generate_params* params) {
    ember_generate_params_init(params, sizeof *params);
}

typedef enum ember_finish_reason {
    EMBER_FINISH_NONE = 0,
    EMBER_FINISH_EOS = 1,
    EMBER_FINISH_MAX_TOKENS = 2,
    EMBER_FINISH_STOP_STRING = 3,
    EMBER_FINISH_CONTEXT_FULL = 4,
    EMBER_FINISH_CANCELLED = 5
} ember_finish_reason;

typedef struct ember_metrics {
    uint32_t size;              /* set by the caller to sizeof(ember_metrics) */
    int32_t n_prompt_tokens;    /* tokens evaluated before the first sample */
    int32_t n_generated_tokens;
    double ttft_ms;             /* time to first token */
    double tpot_ms;             /* mean time per output token after the first */
    double total_ms;
    double prefill_tokens_per_s;
    double decode_tokens_per_s;
    int32_t finish_reason;      /* ember_finish_reason */
    int32_t n_context_shifts;   /* times the overflow policy dropped old tokens (EMBER_OVERFLOW_SHIFT*) */
} ember_metrics;

/* Appends prompt[0..prompt_len) to the conversation (with BOS first on an
   empty session) and generates, streaming through params->on_piece.
   Returns EMBER_OK when generation ended by EOS, max_tokens, a stop string or
   a full context (see metrics->finish_reason); EMBER_ERR_CANCELLED when the
   callback cancelled (what was generated is kept); EMBER_ERR_CONTEXT_FULL,
   with the session unchanged, when the prompt itself does not fit.
   metrics may be NULL; otherwise set metrics->size first. */
EMBER_API ember_status ember_generate(ember_session* session, const char* prompt, size_t prompt_len,
                                      const ember_generate_params* params, ember_metrics* metrics);

/* Metrics of the session's last ember_generate (zeros before the first).
   Set metrics->size first; same protocol as ember_model_get_info. */
EMBER_API ember_status ember_session_metrics(const ember_session* session, ember_metrics* metrics);

/* ---- tokens, one step at a time ---------------------------------------- */
/*
 * A hand-driven greedy or sampled loop, equivalent to ember_generate:
 *
 *   ember_tokenize(model, text, len, EMBER_TOKENIZE_ADD_BOS, ids, cap, &n);
 *   ember_session_eval(s, ids, n);                 // prefill
 *   for (;;) {
 *       int32_t t;
 *       ember_session_sample(s, &t);               // from the last logits
 *       if (ember_token_is_eog(model, t)) break;
 *       ember_session_eval(s, &t, 1);              // or accept now, eval later
 *   }
 */

/* Appends tokens[0..n) to the conversation and evaluates every token not yet
   in the KV cache (accepted ones first), leaving the logits of the last.
   n may be 0 to evaluate only what was accepted. Ids out of range are
   EMBER_ERR_INVALID_ARGUMENT, a conversation longer than n_ctx is
   EMBER_ERR_CONTEXT_FULL; either way the session is unchanged. */
EMBER_API ember_status ember_session_eval(ember_session* session, const int32_t* tokens, size_t n);

/* The logits of the last evaluated token: ember_model_n_vocab() floats,
   owned by the session, valid until the next call on it. NULL (with the
   message set) when there are none: nothing evaluated yet, or a token was
   accepted since. */
EMBER_API const float* ember_session_logits(ember_session* session);

/* Samples one token from the current logits with the session's sampler chain
   and its seeded RNG (the repetition penalty looks at the conversation).
   Does not append it: eval or accept it next. EMBER_ERR_INVALID_ARGUMENT if
   there are no logits. */
EMBER_API ember_status ember_session_sample(ember_session* session, int32_t* token);

/* Appends `token` to the conversation without evaluating it (no forward
   pass now); the next eval or generate evaluates it first. This is how
   ember_generate leaves its last token. Invalidates the logits. */
EMBER_API ember_status ember_session_accept(ember_session* session, int32_t token);

/* ======================================================================== */
/* ---- many sessions on one model: the scheduler (game loops, NPCs) ------- */
/* ======================================================================== */
/*
 * A scheduler batches the pending work of all its sessions — prompt chunks
 * and next-token decodes — into one forward pass per step, so each weight is
 * read once for all of them. Submitting never blocks; the host calls
 * ember_step() once per frame with the milliseconds it can spare, and a step
 * returns within about that budget, pausing a forward pass between layers if
 * needed. Replies are polled (or stream through on_piece), always on the
 * thread that calls ember_step().
 *
 *   ember_scheduler* sched;  ember_scheduler_create(model, NULL, &sched);
 *   ember_session* npc;      ember_scheduler_session_create(sched, &sp, &npc);
 *   ember_request req;       ember_submit(sched, npc, "Guard: Halt!", 12, &rp, &req);
 *   each frame:              ember_step(sched, 4.0, NULL);
 *                            ember_request_poll(sched, req, buf, cap, &len);  // new text
 *                            ember_request_get_state(sched, req, &state);     // done yet?
 *
 * A session's tokens do not depend on which other sessions share the batch,
 * on the thread count or on how its prompt was chunked: the same model, seed
 * and inputs give the same dialogue (replays, lockstep multiplayer).
 * Threading: one thread drives a scheduler (submit, step, poll) at a time.
 */

typedef struct ember_scheduler ember_scheduler;
typedef uint64_t ember_request; /* 0 is never a valid request */

typedef struct ember_scheduler_params {
    uint32_t size;             /* sizeof(ember_scheduler_params) */
    int32_t max_batch_tokens;  /* entries per forward pass (default 128) */
    int32_t prefill_chunk;     /* prompt tokens one session adds per pass (default 64) */
    int32_t kv_max_tokens;     /* cap on the shared KV memory, in positions; 0 = none */
    int32_t kv_initial_tokens; /* KV positions reserved up front (default 0: grow as needed) */
} ember_scheduler_params;

/* Fills the first `size` bytes of *params with the defaults and sets
   params->size (bindings pass the size of the struct they were built with). */
EMBER_API void ember_scheduler_params_init(ember_scheduler_params* params, size_t size);
static inline void ember_scheduler_default_params(ember_scheduler_params* params) {
    ember_scheduler_params_init(params, sizeof *params);
}
/* A scheduler for `model`, which must outlive it. params may be NULL. */
EMBER_API ember_status ember_scheduler_create(ember_model* model, const ember_scheduler_params* params,
                                              ember_scheduler** out);
/* Frees the scheduler; its sessions stay valid as plain sessions. */
EMBER_API void ember_scheduler_free(ember_scheduler* sched);
/* A session whose KV memory comes from the scheduler's shared pool. Free it
   with ember_session_free (which also drops its requests). */
EMBER_API ember_status ember_scheduler_session_create(ember_scheduler* sched, const ember_session_params* params,
                                                      ember_session** out);
/* Bytes of KV memory in use in the scheduler's pool. */
EMBER_API size_t ember_scheduler_kv_bytes(const ember_scheduler* sched);

/* A new session continuing `parent`'s conversation: same history, settings
   and RNG state. Its KV cache shares the parent's pages copy-on-write, so a
   prefix prefilled once (a persona, the world's lore) serves every fork and
   costs memory only for what each fork adds. Belongs to the parent's
   scheduler, if any. */
EMBER_API ember_status ember_session_fork(const ember_session* parent, ember_session** out);
/* Appends text to the conversation and evaluates it now (blocking), without
   generating: a persona or lore prefilled before forking. flags: the
   EMBER_TOKENIZE_* flags (BOS is added on an empty session anyway). */
EMBER_API ember_status ember_session_prefill(ember_session* session, const char* text, size_t len, uint32_t flags);

typedef struct ember_request_params {
    uint32_t size;                 /* sizeof(ember_request_params) */
    int32_t max_tokens;            /* default 256; < 0 = until EOS or the context is full */
    const char* const* stop;       /* stop strings; generation ends before the first one */
    size_t n_stop;
    int32_t priority;              /* higher first (the player's current partner answers first) */
    uint32_t flags;                /* EMBER_TOKENIZE_PARSE_SPECIAL applies to the prompt */
    ember_piece_callback on_piece; /* optional: also called with each piece, on the stepping thread */
    void* user_data;
} ember_request_params;

/* Fills the first `size` bytes of *params with the defaults and sets
   params->size (bindings pass the size of the struct they were built with). */
EMBER_API void ember_request_params_init(ember_request_params* params, size_t size);
static inline void ember_request_default_params(ember_request_params* params) {
    ember_request_params_init(params, sizeof *params);
}
/* Queues a generation on `session` (one request per session at a time) and
   returns at once. The prompt is tokenized and checked now: bad input fails
   here and queues nothing. */
EMBER_API ember_status ember_submit(ember_scheduler* sched, ember_session* session, const char* prompt,
                                    size_t prompt_len, const ember_request_params* params, ember_request* out);

typedef struct ember_step_stats {
    uint32_t size;            /* set by the caller to sizeof(ember_step_stats) */
    int32_t entries;          /* batch entries whose pass completed in this step */
    int32_t layers;           /* layers run in this step */
    int32_t tokens_generated;
    int32_t paused;           /* 1: a pass is in flight and continues next step */
    double ms;                /* time the step took */
} ember_step_stats;

/* Does about budget_ms of work (at least one layer when any is pending), or
   one whole forward pass when budget_ms <= 0. stats may be NULL. */
EMBER_API ember_status ember_step(ember_scheduler* sched, double budget_ms, ember_step_stats* stats);
/* Steps until no request is queued or running (a blocking convenience). */
EMBER_API ember_status ember_scheduler_run(ember_scheduler* sched);

typedef enum ember_request_state {
    EMBER_REQUEST_QUEUED = 0,
    EMBER_REQUEST_RUNNING = 1,
    EMBER_REQUEST_DONE = 2,      /* see ember_request_metrics for why it ended */
    EMBER_REQUEST_CANCELLED = 3,
    EMBER_REQUEST_FAILED = 4     /* ember_request_error has the message */
} ember_request_state;

EMBER_API ember_status ember_request_get_state(const ember_scheduler* sched, ember_request req, int32_t* state);
/* Takes the text produced since the last poll (UTF-8-complete pieces, not
   NUL-terminated). If it does not fit in `capacity`, returns
   EMBER_ERR_BUFFER_TOO_SMALL with the required size in *len and takes nothing. */
EMBER_API ember_status ember_request_poll(ember_scheduler* sched, ember_request req, char* text, size_t capacity,
                                          size_t* len);
/* Takes effect at the next step: the request ends as cancelled, what it
   generated stays in the session. */
EMBER_API ember_status ember_request_cancel(ember_scheduler* sched, ember_request req);
EMBER_API ember_status ember_request_metrics(const ember_scheduler* sched, ember_request req, ember_metrics* metrics);
/* The message of a failed request ("" otherwise); valid until it is released. */
EMBER_API const char* ember_request_error(const ember_scheduler* sched, ember_request req);
/* Forgets a finished request; its id becomes invalid. */
EMBER_API ember_status ember_request_release(ember_scheduler* sched, ember_request req);

/* ---- savegames ------------------------------------------------------------ */

enum { EMBER_SAVE_KV = 1u << 0 /* include the KV cache: instant resume, larger */ };

/* Serialises the session: a versioned format carrying the model's content
   hash, the conversation, the sampler settings and RNG state, and (with
   EMBER_SAVE_KV) the evaluated KV entries. Buffer protocol as ember_tokenize:
   EMBER_ERR_BUFFER_TOO_SMALL with the required size in *len. */
EMBER_API ember_status ember_session_save(const ember_session* session, uint32_t flags, uint8_t* data,
                                          size_t capacity, size_t* len);
/* Restores a save into `session` (which must use the same model; its
   settings and conversation are replaced). A save from a different model is
   EMBER_ERR_INVALID_ARGUMENT; truncated or modified data is
   EMBER_ERR_BAD_FORMAT; either way the session is unchanged. */
EMBER_API ember_status ember_session_load(ember_session* session, const uint8_t* data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* EMBER_H */
