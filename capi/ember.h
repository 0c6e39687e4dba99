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
 * Threading: a model may be used from many threads at once (it is immutable
 * after load; its thread pool serialises parallel regions). A session is used
 * from one thread at a time; different sessions may run on different threads.
 * Callbacks run on the thread that made the call.
 *
 * Errors: every call returns an ember_status; on failure ember_last_error()
 * gives a message for the calling thread naming the problem. No function
 * aborts or lets a C++ exception escape; a failed call changes nothing.
 *
 * Compatibility: params structs start with a `size` member that
 * *_default_params() sets; the library reads only the fields that size
 * covers, so fields are only ever appended. Bindings check
 * ember_abi_version() == EMBER_ABI_VERSION at load.
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
/* Kernel set the library would use on this CPU ("avx512", "avx2", "sse2", "neon", "scalar"). */
EMBER_API const char* ember_cpu_kernels(void);

/* ---- models ------------------------------------------------------------- */

typedef struct ember_model ember_model;

typedef struct ember_model_params {
    uint32_t size;       /* sizeof(ember_model_params), set by ember_model_default_params */
    int32_t n_threads;   /* threads for this model's work, incl. the caller; 0 = automatic */
} ember_model_params;

EMBER_API void ember_model_default_params(ember_model_params* params);

/* Maps and validates a GGUF file. On success *out owns the model (free it
   with ember_model_free). params may be NULL for defaults. */
EMBER_API ember_status ember_model_load(const char* path, const ember_model_params* params, ember_model** out);
EMBER_API void ember_model_free(ember_model* model);

EMBER_API int32_t ember_model_n_vocab(const ember_model* model);
EMBER_API int32_t ember_model_n_ctx_train(const ember_model* model);
EMBER_API int32_t ember_token_bos(const ember_model* model); /* -1 if none */
EMBER_API int32_t ember_token_eos(const ember_model* model); /* -1 if none */

/* ---- tokens ------------------------------------------------------------- */

enum {
    EMBER_TOKENIZE_ADD_BOS = 1u << 0,       /* prepend BOS if the vocabulary has one */
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
} ember_session_params;

EMBER_API void ember_session_default_params(ember_session_params* params);

/* A conversation on `model`, which must outlive it. Its KV cache and scratch
   are allocated here. params may be NULL for defaults. */
EMBER_API ember_status ember_session_create(ember_model* model, const ember_session_params* params,
                                            ember_session** out);
EMBER_API void ember_session_free(ember_session* session);
/* Forgets the conversation; keeps the settings. */
EMBER_API ember_status ember_session_reset(ember_session* session);
/* Bytes this session holds (KV cache and scratch). */
EMBER_API size_t ember_session_memory(const ember_session* session);
EMBER_API int32_t ember_session_n_ctx(const ember_session* session);
/* Tokens in the conversation so far. */
EMBER_API int32_t ember_session_n_tokens(const ember_session* session);

/* ---- generation --------------------------------------------------------- */

/* Receives each piece of generated text as soon as it is valid UTF-8 (a
   piece can be empty while a character spans several tokens), and the token
   that completed it (-1 for a final flush). Return non-zero to cancel. */
typedef int (*ember_piece_callback)(const char* piece, size_t len, int32_t token, void* user_data);

typedef struct ember_generate_params {
    uint32_t size;                 /* sizeof(ember_generate_params) */
    int32_t max_tokens;            /* generated tokens at most; < 0 = until EOS or the context is full */
    const char* const* stop;       /* stop strings (NUL-terminated UTF-8); generation ends before one */
    size_t n_stop;
    ember_piece_callback on_piece; /* may be NULL */
    void* user_data;
    uint32_t flags;                /* EMBER_TOKENIZE_PARSE_SPECIAL applies to the prompt */
} ember_generate_params;

EMBER_API void ember_generate_default_params(ember_generate_params* params);

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

#ifdef __cplusplus
}
#endif

#endif /* EMBER_H */
