/* test_capi.c — the C ABI from a C99 host: load, tokenize, generate, stream,
 * cancel, stop strings, a full context, and each error path, on a real GGUF
 * model written by `ember make-model` (the test_model_fixture test).
 * Usage: test_capi WORKDIR   (WORKDIR holds tiny.gguf) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char** argv) {
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
    ember_model_free(model);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
