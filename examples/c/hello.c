/* hello.c — the smallest complete emberlm host, in plain C.
 *
 *   hello MODEL.gguf "Once upon a time"
 */
#include <stdio.h>
#include <string.h>

#include "ember.h"

static int print_piece(const char* piece, size_t len, int32_t token, void* user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would cancel */
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT\n", argv[0]);
        return 2;
    }
    if (ember_abi_version() != EMBER_ABI_VERSION) {
        fprintf(stderr, "libember ABI %u, header ABI %u\n", ember_abi_version(), EMBER_ABI_VERSION);
        return 1;
    }
    ember_model* model = NULL;
    if (ember_model_load(argv[1], NULL, &model) != EMBER_OK) {
        fprintf(stderr, "load failed: %s\n", ember_last_error());
        return 1;
    }
    ember_session_params sp;
    ember_session_default_params(&sp);
    sp.temperature = 0.0f; /* greedy */
    ember_session* session = NULL;
    if (ember_session_create(model, &sp, &session) != EMBER_OK) {
        fprintf(stderr, "session failed: %s\n", ember_last_error());
        ember_model_free(model);
        return 1;
    }
    ember_generate_params gp;
    ember_generate_default_params(&gp);
    gp.max_tokens = 64;
    gp.on_piece = print_piece;
    ember_metrics m;
    m.size = sizeof m;
    fputs(argv[2], stdout);
    ember_status st = ember_generate(session, argv[2], strlen(argv[2]), &gp, &m);
    printf("\n");
    if (st != EMBER_OK) fprintf(stderr, "generate failed: %s\n", ember_last_error());
    else fprintf(stderr, "%d tokens, TTFT %.1f ms, TPOT %.2f ms\n", m.n_generated_tokens, m.ttft_ms, m.tpot_ms);
    ember_session_free(session);
    ember_model_free(model);
    return st == EMBER_OK ? 0 : 1;
}
