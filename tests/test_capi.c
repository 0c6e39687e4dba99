/* test_capi.c — the C ABI from a C99 host: load, tokenize, generate, stream,
 * cancel, stop strings, a full context, and each error path, on a real GGUF
 * model written by `ember make-model` (the test_model_fixture test).
 * Usage: test_capi WORKDIR   (WORKDIR holds tiny.gguf) */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>

#include "ember.h"

static int g_failed = 0, g_passed = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (cond) {                                                                   \
            ++g_passed;                                                               \
        } else {                                                                      \
            ++g_failed;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, \
                    __LINE__, #cond, ember_last_error());                             \
        }                                                                             \
    } while (0)

typedef struct {
    char text[8192];
    size_t len;
    int pieces;
    int cancel_after; /* cancel once this many tokens were seen (0 = never) */
} sink;

static int collect(const char* piece, size_t len, int32_t token, void* user_data) {
    sink* s = (sink*)user_data;
    if (s->len + len < sizeof s->text) {
        memcpy(s->text + s->len, piece, len);
        s->len += len;
        s->text[s->len] = 0;
    }
    if (token >= 0) s->pieces++;
    return s->cancel_after > 0 && s->pieces >= s->cancel_after;
}

static ember_status gen(ember_session* s, const char* prompt, int max_tokens, const char* const* stop, size_t n_stop,
                        sink* out, ember_metrics* m) {
    ember_generate_params gp;
    ember_generate_default_params(&gp);
    gp.max_tokens = max_tokens;
    gp.stop = stop;
    gp.n_stop = n_stop;
    gp.on_piece = collect;
    gp.user_data = out;
    m->size = sizeof *m;
    return ember_generate(s, prompt, strlen(prompt), &gp, m);
}

/* ---- model info, log, progress, pieces ---------------------------------- */

typedef struct {
    char lines[4096];
    int n_warn;
} log_sink;

static void on_log(int32_t level, const char* message, void* user_data) {
    log_sink* l = (log_sink*)user_data;
    if (level == EMBER_LOG_WARN) l->n_warn++;
    if (strlen(l->lines) + strlen(message) + 2 < sizeof l->lines) {
        strcat(l->lines, message);
        strcat(l->lines, "\n");
    }
}

typedef struct {
    char stages[256];
    int calls;
    int cancel_at; /* cancel on this call (1-based; 0 = never) */
} progress_sink;

static int on_progress(float progress, const char* stage, void* user_data) {
    progress_sink* p = (progress_sink*)user_data;
    p->calls++;
    if (progress > 0.0f && progress <= 1.0f && strlen(p->stages) + strlen(stage) + 2 < sizeof p->stages) {
        strcat(p->stages, stage);
        strcat(p->stages, " ");
    }
    return p->cancel_at > 0 && p->calls >= p->cancel_at;
}

static void test_model_info_and_tokens(ember_model* model, const char* path) {
    ember_model_info info;
    ember_model_params mp;
    ember_model* m2 = NULL;
    progress_sink ps;
    log_sink ls;
    char piece[64];
    size_t plen = 0;
    int32_t ids[8];
    size_t n = 0;

    memset(&info, 0, sizeof info);
    CHECK(ember_model_get_info(model, &info) == EMBER_ERR_INVALID_ARGUMENT); /* size not set */
    info.size = sizeof info;
    CHECK(ember_model_get_info(model, &info) == EMBER_OK);
    CHECK(info.size == sizeof info);
    CHECK(strcmp(info.architecture, "llama") == 0);
    CHECK(info.n_vocab == 512 && info.n_vocab == ember_model_n_vocab(model));
    CHECK(info.n_ctx_train == ember_model_n_ctx_train(model));
    CHECK(info.n_params > 0 && info.n_layer > 0 && info.n_embd > 0);
    CHECK(info.file_size > 0 && info.n_tensors > 0 && (info.gguf_version == 2 || info.gguf_version == 3));
    CHECK(strstr(info.tensor_types, "F32:") != NULL);
    CHECK(strlen(info.kernels) > 0 && info.n_threads > 0);
    /* an older, shorter struct gets only its fields */
    memset(&info, 0, sizeof info);
    info.size = (uint32_t)offsetof(ember_model_info, n_ctx_train);
    CHECK(ember_model_get_info(model, &info) == EMBER_OK);
    CHECK(info.size == offsetof(ember_model_info, n_ctx_train) && info.n_params > 0 && info.n_vocab == 0);

    /* pieces, with the buffer protocol */
    CHECK(ember_tokenize(model, "hello", 5, 0, ids, 8, &n) == EMBER_OK && n >= 1);
    CHECK(ember_token_to_piece(model, ids[0], 0, piece, 0, &plen) == EMBER_ERR_BUFFER_TOO_SMALL && plen > 0);
    CHECK(ember_token_to_piece(model, ids[0], 0, piece, sizeof piece, &plen) == EMBER_OK);
    CHECK(plen > 0 && plen < sizeof piece);
    CHECK(ember_token_to_piece(model, 512, 0, piece, sizeof piece, &plen) == EMBER_ERR_INVALID_ARGUMENT);
    CHECK(ember_token_is_eog(model, ember_token_eos(model)) == 1);
    CHECK(ember_token_is_eog(model, ids[0]) == 0);
    CHECK(ember_token_is_eog(model, -5) == 0);

    /* progress: every stage in order; a non-zero return cancels cleanly */
    memset(&ps, 0, sizeof ps);
    ember_model_default_params(&mp);
    mp.progress = on_progress;
    mp.progress_user_data = &ps;
    CHECK(ember_model_load(path, &mp, &m2) == EMBER_OK);
    CHECK(strcmp(ps.stages, "parsed weights tokenizer ready ") == 0);
    ember_model_free(m2);
    m2 = NULL;
    memset(&ps, 0, sizeof ps);
    ps.cancel_at = 2;
    CHECK(ember_model_load(path, &mp, &m2) == EMBER_ERR_CANCELLED);
    CHECK(m2 == NULL && ps.calls == 2);
    CHECK(strstr(ember_last_error(), "cancelled") != NULL);

    /* params from an older header (only size and n_threads) still load */
    ember_model_default_params(&mp);
    mp.size = (uint32_t)offsetof(ember_model_params, progress);
    mp.n_threads = 1;
    CHECK(ember_model_load(path, &mp, &m2) == EMBER_OK);
    ember_model_free(m2);
    m2 = NULL;

    /* an F16 KV cache holds the same context in half the memory; unknown types are refused */
    {
        ember_session *s32 = NULL, *s16 = NULL;
        ember_session_params sp;
        ember_session_default_params(&sp);
        sp.n_ctx = 64;
        ember_model_default_params(&mp);
        mp.kv_type = EMBER_KV_F16;
        CHECK(ember_model_load(path, &mp, &m2) == EMBER_OK);
        CHECK(ember_session_create(model, &sp, &s32) == EMBER_OK);
        CHECK(ember_session_create(m2, &sp, &s16) == EMBER_OK);
        {
            const int32_t toks[5] = {1, 20, 30, 40, 50};
            CHECK(ember_session_eval(s32, toks, 5) == EMBER_OK);
            CHECK(ember_session_eval(s16, toks, 5) == EMBER_OK);
        }
        {   /* memory = KV + logits: the KV part halves */
            const size_t m32 = ember_session_memory(s32), m16 = ember_session_memory(s16);
            const size_t kv32 = 2 * (m32 - m16);
            CHECK(m16 < m32 && kv32 > 0 && m32 - kv32 == (size_t)ember_model_n_vocab(model) * sizeof(float));
        }
        ember_session_free(s16);
        ember_session_free(s32);
        ember_model_free(m2);
        m2 = NULL;
        mp.kv_type = 7;
        CHECK(ember_model_load(path, &mp, &m2) == EMBER_ERR_INVALID_ARGUMENT && m2 == NULL);
        CHECK(strstr(ember_last_error(), "kv_type") != NULL);
        /* a size from a header before kv_type: the field is not read (padding may hold anything) */
        mp.size = (uint32_t)offsetof(ember_model_params, kv_type);
        mp.reserved0 = 12345;
        CHECK(ember_model_load(path, &mp, &m2) == EMBER_OK);
        ember_model_free(m2);
        m2 = NULL;
    }

    /* the log callback receives load warnings (more threads than the machine has) */
    memset(&ls, 0, sizeof ls);
    ember_log_set(on_log, &ls);
    ember_model_default_params(&mp);
    mp.n_threads = 255;
    CHECK(ember_model_load(path, &mp, &m2) == EMBER_OK);
    ember_log_set(NULL, NULL);
    CHECK(ls.n_warn == 1);
    CHECK(strstr(ls.lines, "n_threads 255") != NULL);
    CHECK(strstr(ls.lines, "loaded") != NULL);
    ember_model_free(m2);
}

/* ---- the token-level API drives the same loop generate does --------------- */

static int collect_ids(const char* piece, size_t len, int32_t token, void* user_data) {
    int32_t* out = (int32_t*)user_data; /* out[0] = count */
    (void)piece;
    (void)len;
    if (token >= 0 && out[0] < 63) out[1 + out[0]++] = token;
    return 0;
}

static void test_token_loop(ember_model* model) {
    ember_session_params sp;
    ember_session* s = NULL;
    ember_generate_params gp;
    ember_metrics m;
    int32_t ids[64], gen_ids[64], loop_ids[64];
    size_t n = 0;
    int n_loop = 0, i;
    int32_t t = -1;
    const float* logits;
    const char* prompt = "once upon a time";

    ember_session_default_params(&sp);
    sp.temperature = 0.0f;
    CHECK(ember_session_create(model, &sp, &s) == EMBER_OK);
    if (!s) return;

    /* reference: generate, recording each token */
    memset(gen_ids, 0, sizeof gen_ids);
    ember_generate_default_params(&gp);
    gp.max_tokens = 12;
    gp.on_piece = collect_ids;
    gp.user_data = gen_ids;
    m.size = sizeof m;
    CHECK(ember_generate(s, prompt, strlen(prompt), &gp, &m) == EMBER_OK);
    memset(&m, 0, sizeof m);
    m.size = sizeof m;
    CHECK(ember_session_metrics(s, &m) == EMBER_OK);
    CHECK(m.n_generated_tokens == gen_ids[0] || m.finish_reason == EMBER_FINISH_EOS);
    /* generate leaves its last token accepted but not evaluated */
    CHECK(ember_session_n_evaluated(s) == ember_session_n_tokens(s) - 1);
    CHECK(ember_session_reset(s) == EMBER_OK);

    /* no logits yet */
    CHECK(ember_session_logits(s) == NULL);
    CHECK(ember_session_sample(s, &t) == EMBER_ERR_INVALID_ARGUMENT);

    CHECK(ember_tokenize(model, prompt, strlen(prompt), EMBER_TOKENIZE_ADD_BOS, ids, 64, &n) == EMBER_OK);
    CHECK(ember_session_eval(s, ids, n) == EMBER_OK);
    CHECK(ember_session_n_evaluated(s) == (int32_t)n);
    logits = ember_session_logits(s);
    CHECK(logits != NULL);
    while (logits && n_loop < 12) {
        int32_t best = 0;
        for (i = 1; i < ember_model_n_vocab(model); ++i)
            if (logits[i] > logits[best]) best = i;
        CHECK(ember_session_sample(s, &t) == EMBER_OK);
        CHECK(t == best); /* greedy = argmax */
        if (ember_token_is_eog(model, t)) break;
        loop_ids[n_loop++] = t;
        /* alternate: accept then eval nothing, or eval the token directly */
        if (n_loop % 2) {
            CHECK(ember_session_accept(s, t) == EMBER_OK);
            CHECK(ember_session_logits(s) == NULL);
            CHECK(ember_session_n_evaluated(s) == ember_session_n_tokens(s) - 1);
            CHECK(ember_session_eval(s, NULL, 0) == EMBER_OK);
        } else {
            CHECK(ember_session_eval(s, &t, 1) == EMBER_OK);
        }
        logits = ember_session_logits(s);
    }
    CHECK(n_loop == gen_ids[0]);
    CHECK(memcmp(loop_ids, gen_ids + 1, sizeof(int32_t) * (size_t)n_loop) == 0);

    /* bad input changes nothing */
    n = (size_t)ember_session_n_tokens(s);
    t = 100000;
    CHECK(ember_session_eval(s, &t, 1) == EMBER_ERR_INVALID_ARGUMENT);
    CHECK(ember_session_accept(s, -1) == EMBER_ERR_INVALID_ARGUMENT);
    CHECK(ember_session_eval(s, NULL, 3) == EMBER_ERR_INVALID_ARGUMENT);
    CHECK(ember_session_n_tokens(s) == (int32_t)n);
    CHECK(ember_session_logits(s) != NULL);
    ember_session_free(s);
}

/* Both shift policies keep a long generation going past n_ctx and count their
   shifts; the error policy ends it with context_full and counts none; an
   unknown policy is refused. */
static void test_overflow_policies(ember_model* model) {
    const int32_t policies[] = {EMBER_OVERFLOW_SHIFT, EMBER_OVERFLOW_SHIFT_FAST, EMBER_OVERFLOW_ERROR};
    size_t i;
    for (i = 0; i < 3; ++i) {
        ember_session_params sp;
        ember_session* s = NULL;
        ember_generate_params gp;
        ember_metrics m;
        ember_session_default_params(&sp);
        sp.temperature = 0.0f;
        sp.n_ctx = 32;
        sp.overflow_policy = policies[i];
        CHECK(ember_session_create(model, &sp, &s) == EMBER_OK);
        if (!s) return;
        ember_generate_default_params(&gp);
        gp.max_tokens = 60;
        m.size = sizeof m;
        CHECK(ember_generate(s, "once upon a time", 16, &gp, &m) == EMBER_OK);
        if (policies[i] == EMBER_OVERFLOW_ERROR) {
            CHECK(m.finish_reason == EMBER_FINISH_CONTEXT_FULL || m.finish_reason == EMBER_FINISH_EOS);
            CHECK(m.n_context_shifts == 0);
        } else if (m.finish_reason != EMBER_FINISH_EOS) {
            CHECK(m.finish_reason == EMBER_FINISH_MAX_TOKENS);
            CHECK(m.n_generated_tokens == 60);
            CHECK(m.n_context_shifts > 0);
        }
        ember_session_free(s);
    }
    {
        ember_session_params sp;
        ember_session* s = NULL;
        ember_session_default_params(&sp);
        sp.overflow_policy = 3;
        CHECK(ember_session_create(model, &sp, &s) == EMBER_ERR_INVALID_ARGUMENT);
        CHECK(s == NULL);
    }
}

/* The second process of the savegame test: loads the model and a save,
   continues the conversation and writes what it generated. */
static int resume_child(const char* model_path, const char* save_path, const char* out_path) {
    ember_model* model = NULL;
    ember_session* s = NULL;
    ember_metrics m;
    sink out;
    static uint8_t buf[1 << 22];
    size_t n;
    FILE* f = fopen(save_path, "rb");
    if (!f) return 3;
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (ember_model_load(model_path, NULL, &model) != EMBER_OK || ember_session_create(model, NULL, &s) != EMBER_OK ||
        ember_session_load(s, buf, n) != EMBER_OK) {
        fprintf(stderr, "resume: %s\n", ember_last_error());
        return 4;
    }
    memset(&out, 0, sizeof out);
    if (gen(s, " and then", 8, NULL, 0, &out, &m) != EMBER_OK) return 5;
    f = fopen(out_path, "wb");
    if (!f) return 6;
    fwrite(out.text, 1, out.len, f);
    fclose(f);
    ember_session_free(s);
    ember_model_free(model);
    return 0;
}

/* Runs this program again as `test_capi --resume MODEL SAVE OUT`; returns its exit status. */
static int spawn_resume(const char* self, const char* model, const char* save, const char* out) {
    extern char** environ;
    char* args[6];
    pid_t pid;
    int status = 0;
    args[0] = (char*)self;
    args[1] = (char*)"--resume";
    args[2] = (char*)model;
    args[3] = (char*)save;
    args[4] = (char*)out;
    args[5] = NULL;
    if (posix_spawn(&pid, self, NULL, NULL, args, environ) != 0) return -1;
    if (waitpid(pid, &status, 0) < 0) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char** argv) {
    if (argc == 5 && strcmp(argv[1], "--resume") == 0) return resume_child(argv[2], argv[3], argv[4]);
    char path[4096], bad[4096];
    ember_model* model = NULL;
    ember_session* s = NULL;
    ember_session_params sp;
    ember_metrics m;
    sink a, b;
    int32_t ids[64];
    size_t n = 0;
    char text[256];
    size_t tlen = 0;
    FILE* f;

    if (argc < 2) {
        fprintf(stderr, "usage: test_capi WORKDIR\n");
        return 2;
    }
    snprintf(path, sizeof path, "%s/tiny.gguf", argv[1]);
    snprintf(bad, sizeof bad, "%s/not-a-model.gguf", argv[1]);

    /* versions */
    CHECK(ember_abi_version() == EMBER_ABI_VERSION);
    CHECK(strlen(ember_version()) > 0);
    CHECK(strcmp(ember_status_name(EMBER_ERR_BAD_FORMAT), "EMBER_ERR_BAD_FORMAT") == 0);

    /* error paths of load: each a distinct status with a message naming the problem */
    CHECK(ember_model_load("/nonexistent/model.gguf", NULL, &model) == EMBER_ERR_IO);
    CHECK(model == NULL);
    CHECK(strstr(ember_last_error(), "/nonexistent/model.gguf") != NULL);
    f = fopen(bad, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("this is not a GGUF file at all", f);
        fclose(f);
    }
    CHECK(ember_model_load(bad, NULL, &model) == EMBER_ERR_BAD_FORMAT);
    CHECK(strstr(ember_last_error(), "magic") != NULL);
    CHECK(ember_model_load(NULL, NULL, &model) == EMBER_ERR_INVALID_ARGUMENT);
    CHECK(ember_model_load(path, NULL, NULL) == EMBER_ERR_INVALID_ARGUMENT);

    /* the real model */
    CHECK(ember_model_load(path, NULL, &model) == EMBER_OK);
    if (!model) {
        fprintf(stderr, "cannot continue without %s\n", path);
        printf("%d passed, %d failed\n", g_passed, g_failed + 1);
        return 1;
    }
    CHECK(strlen(ember_last_error()) == 0);
    CHECK(ember_model_n_vocab(model) == 512);
    CHECK(ember_token_bos(model) == 1);

    /* tokenize / detokenize, with the too-small-buffer protocol */
    CHECK(ember_tokenize(model, "hello world", 11, EMBER_TOKENIZE_ADD_BOS, ids, 1, &n) == EMBER_ERR_BUFFER_TOO_SMALL);
    CHECK(n > 1);
    CHECK(ember_tokenize(model, "hello world", 11, EMBER_TOKENIZE_ADD_BOS, ids, 64, &n) == EMBER_OK);
    CHECK(n > 1 && ids[0] == 1);
    CHECK(ember_detokenize(model, ids, n, 0, text, sizeof text, &tlen) == EMBER_OK);
    CHECK(tlen == 11 && memcmp(text, "hello world", 11) == 0);
    ids[1] = 100000;
    CHECK(ember_detokenize(model, ids, n, 0, text, sizeof text, &tlen) == EMBER_ERR_INVALID_ARGUMENT);
    CHECK(strstr(ember_last_error(), "100000") != NULL);

    /* greedy generation is deterministic and streams the same text it returns */
    ember_session_default_params(&sp);
    sp.temperature = 0.0f;
    CHECK(ember_session_create(model, &sp, &s) == EMBER_OK);
    CHECK(ember_session_memory(s) > 0);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK(gen(s, "once upon a time", 24, NULL, 0, &a, &m) == EMBER_OK);
    CHECK(m.n_generated_tokens > 0 && m.n_generated_tokens <= 24);
    CHECK(m.n_prompt_tokens > 1);
    CHECK(m.ttft_ms > 0);
    CHECK(m.finish_reason == EMBER_FINISH_MAX_TOKENS || m.finish_reason == EMBER_FINISH_EOS);
    CHECK(ember_session_reset(s) == EMBER_OK);
    CHECK(ember_session_n_tokens(s) == 0);
    CHECK(gen(s, "once upon a time", 24, NULL, 0, &b, &m) == EMBER_OK);
    CHECK(a.len > 0 && a.len == b.len && memcmp(a.text, b.text, a.len) == 0);

    /* a stop string taken from the middle of that text ends generation before it */
    if (a.len > 6) {
        char stop_buf[4];
        const char* stops[1];
        const char* at;
        memcpy(stop_buf, a.text + a.len / 2, 3);
        stop_buf[3] = 0;
        stops[0] = stop_buf;
        at = strstr(a.text, stop_buf);
        ember_session_reset(s);
        memset(&b, 0, sizeof b);
        CHECK(gen(s, "once upon a time", 24, stops, 1, &b, &m) == EMBER_OK);
        CHECK(m.finish_reason == EMBER_FINISH_STOP_STRING);
        CHECK(at != NULL && b.len == (size_t)(at - a.text) && memcmp(a.text, b.text, b.len) == 0);
    }

    /* cancelling from the callback stops after that token and keeps what was made */
    ember_session_reset(s);
    memset(&b, 0, sizeof b);
    b.cancel_after = 3;
    CHECK(gen(s, "once upon a time", 24, NULL, 0, &b, &m) == EMBER_ERR_CANCELLED);
    CHECK(m.n_generated_tokens == 3);
    CHECK(m.finish_reason == EMBER_FINISH_CANCELLED);
    CHECK(strstr(ember_last_error(), "cancel") != NULL);
    ember_session_free(s);
    s = NULL;

    /* a prompt that does not fit is refused and changes nothing */
    ember_session_default_params(&sp);
    sp.n_ctx = 8;
    CHECK(ember_session_create(model, &sp, &s) == EMBER_OK);
    memset(&b, 0, sizeof b);
    CHECK(gen(s, "once upon a time there was a little girl and a little boy", 4, NULL, 0, &b, &m) ==
          EMBER_ERR_CONTEXT_FULL);
    CHECK(ember_session_n_tokens(s) == 0);
    CHECK(strstr(ember_last_error(), "context") != NULL);
    /* a short prompt then fills the context: generation ends with finish_reason context_full */
    sp.temperature = 0.0f;
    CHECK(gen(s, "hi", -1, NULL, 0, &b, &m) == EMBER_OK);
    CHECK(m.finish_reason == EMBER_FINISH_CONTEXT_FULL || m.finish_reason == EMBER_FINISH_EOS);
    CHECK(ember_session_n_tokens(s) <= 8);

    /* bad params: a size field that was never set */
    {
        ember_session* s2 = NULL;
        ember_session_params raw;
        memset(&raw, 0, sizeof raw);
        CHECK(ember_session_create(model, &raw, &s2) == EMBER_ERR_INVALID_ARGUMENT);
        CHECK(s2 == NULL);
    }

    ember_session_free(s);
    s = NULL;

    test_model_info_and_tokens(model, path);
    test_token_loop(model);
    test_overflow_policies(model);


    /* ---- savegame restored in another process continues exactly like an uninterrupted run */
    {
        ember_session *s1 = NULL, *s2 = NULL;
        sink t1, t2, u;
        ember_session_params sps;
        static uint8_t save_buf[1 << 22];
        size_t save_n = 0;
        int with_kv;
        ember_session_default_params(&sps);
        sps.seed = 77; /* seeded sampling: the RNG state must travel too */
        CHECK(ember_session_create(model, &sps, &s1) == EMBER_OK);
        CHECK(ember_session_create(model, &sps, &s2) == EMBER_OK);
        memset(&t1, 0, sizeof t1);
        memset(&t2, 0, sizeof t2);
        CHECK(gen(s1, "once upon a time", 8, NULL, 0, &t1, &m) == EMBER_OK);
        CHECK(gen(s1, " and then", 8, NULL, 0, &t2, &m) == EMBER_OK); /* the uninterrupted second turn */
        memset(&t1, 0, sizeof t1);
        CHECK(gen(s2, "once upon a time", 8, NULL, 0, &t1, &m) == EMBER_OK);
        for (with_kv = 0; with_kv <= 1; ++with_kv) {
            char save_path[4200], out_path[4200];
            FILE* f;
            int rc;
            snprintf(save_path, sizeof save_path, "%s/resume-%d.sav", argv[1], with_kv);
            snprintf(out_path, sizeof out_path, "%s/resume-%d.txt", argv[1], with_kv);
            CHECK(ember_session_save(s2, with_kv ? EMBER_SAVE_KV : 0, save_buf, sizeof save_buf, &save_n) == EMBER_OK);
            f = fopen(save_path, "wb");
            CHECK(f != NULL);
            if (!f) continue;
            fwrite(save_buf, 1, save_n, f);
            fclose(f);
            rc = spawn_resume(argv[0], path, save_path, out_path);
            CHECK(rc == 0);
            memset(&u, 0, sizeof u);
            f = fopen(out_path, "rb");
            if (f) {
                u.len = fread(u.text, 1, sizeof u.text - 1, f);
                fclose(f);
            }
            CHECK(u.len == t2.len && u.len > 0 && memcmp(u.text, t2.text, u.len) == 0);
        }
        ember_session_free(s1);
        ember_session_free(s2);
    }

    /* ---- many sessions through a scheduler: fork, prefill, submit, step, poll, cancel */
    {
        ember_scheduler* sched = NULL;
        ember_session *base = NULL, *a2 = NULL, *b2 = NULL, *solo = NULL;
        ember_request ra = 0, rb = 0;
        ember_request_params rp;
        ember_step_stats st;
        int32_t state = -1;
        char buf[4096], want[4096];
        size_t got_len = 0, want_len = 0, n_polled = 0;
        size_t kv_before;
        int steps = 0;
        uint8_t* save = NULL;
        size_t save_len = 0;

        ember_session_default_params(&sp);
        sp.temperature = 0.0f;
        CHECK(ember_scheduler_create(model, NULL, &sched) == EMBER_OK);
        CHECK(ember_scheduler_session_create(sched, &sp, &base) == EMBER_OK);
        CHECK(ember_session_prefill(base, "once upon a time there was a little girl", 41, 0) == EMBER_OK);
        kv_before = ember_scheduler_kv_bytes(sched);
        CHECK(kv_before > 0);
        CHECK(ember_session_fork(base, &a2) == EMBER_OK);
        CHECK(ember_session_fork(base, &b2) == EMBER_OK);
        CHECK(ember_scheduler_kv_bytes(sched) == kv_before); /* forks share the prefix */
        ember_request_default_params(&rp);
        rp.max_tokens = 12;
        CHECK(ember_submit(sched, a2, " and the boy", 12, &rp, &ra) == EMBER_OK);
        CHECK(ember_submit(sched, b2, " and the day", 12, &rp, &rb) == EMBER_OK);
        CHECK(ra != 0 && rb != 0 && ra != rb);
        /* one request per session at a time */
        {
            ember_request rc = 0;
            CHECK(ember_submit(sched, a2, "x", 1, &rp, &rc) == EMBER_ERR_INVALID_ARGUMENT);
        }
        ember_request_cancel(sched, rb);
        for (;;) {
            st.size = sizeof st;
            CHECK(ember_step(sched, 2.0, &st) == EMBER_OK);
            if (ember_request_poll(sched, ra, buf + got_len, sizeof buf - got_len, &n_polled) == EMBER_OK) got_len += n_polled;
            ember_request_get_state(sched, ra, &state);
            if (state >= EMBER_REQUEST_DONE || ++steps > 10000) break;
        }
        CHECK(state == EMBER_REQUEST_DONE);
        ember_request_get_state(sched, rb, &state);
        CHECK(state == EMBER_REQUEST_CANCELLED);
        /* a plain session fed the same prefix and line gives the same text */
        CHECK(ember_session_create(model, &sp, &solo) == EMBER_OK);
        CHECK(ember_session_prefill(solo, "once upon a time there was a little girl", 41, 0) == EMBER_OK);
        memset(&b, 0, sizeof b);
        CHECK(gen(solo, " and the boy", 12, NULL, 0, &b, &m) == EMBER_OK);
        memcpy(want, b.text, b.len);
        want_len = b.len;
        CHECK(got_len == want_len && memcmp(buf, want, want_len) == 0);
        CHECK(ember_request_release(sched, ra) == EMBER_OK);
        CHECK(ember_request_release(sched, ra) == EMBER_ERR_INVALID_ARGUMENT);

        /* savegame: save a2 (with KV), restore into a fresh session, both continue alike */
        CHECK(ember_session_save(a2, EMBER_SAVE_KV, NULL, 0, &save_len) == EMBER_ERR_BUFFER_TOO_SMALL);
        save = (uint8_t*)malloc(save_len);
        CHECK(save != NULL);
        if (save) {
            ember_session* restored = NULL;
            sink c1, c2;
            CHECK(ember_session_save(a2, EMBER_SAVE_KV, save, save_len, &save_len) == EMBER_OK);
            CHECK(ember_session_create(model, NULL, &restored) == EMBER_OK);
            CHECK(ember_session_load(restored, save, save_len) == EMBER_OK);
            CHECK(ember_session_n_tokens(restored) == ember_session_n_tokens(a2));
            memset(&c1, 0, sizeof c1);
            memset(&c2, 0, sizeof c2);
            CHECK(gen(restored, " then", 8, NULL, 0, &c1, &m) == EMBER_OK);
            ember_scheduler_free(sched); /* a2 stays valid as a plain session */
            sched = NULL;
            CHECK(gen(a2, " then", 8, NULL, 0, &c2, &m) == EMBER_OK);
            CHECK(c1.len == c2.len && memcmp(c1.text, c2.text, c1.len) == 0);
            save[save_len / 2] ^= 1;
            CHECK(ember_session_load(restored, save, save_len) == EMBER_ERR_BAD_FORMAT);
            CHECK(ember_session_load(restored, save, 10) == EMBER_ERR_BAD_FORMAT);
            ember_session_free(restored);
            free(save);
        }
        ember_session_free(solo);
        ember_session_free(a2);
        ember_session_free(b2);
        ember_session_free(base);
        ember_scheduler_free(sched);
    }

    ember_model_free(model);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
