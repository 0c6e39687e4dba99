/* game_loop.c — the minimal frame loop an engine developer copies.
 *
 * Several NPCs share one model through a scheduler. Each frame the game calls
 * ember_step() with the time it can spare (here 4 ms of a 16 ms frame); the
 * step batches every NPC's pending work into one pass and returns in time,
 * pausing a pass between layers if needed. Replies arrive by polling.
 *
 *   game_loop [MODEL.gguf]      (default: the project's own models/emberfall.gguf)
 */
#include <stdio.h>
#include <string.h>

#include "ember.h"

#define N_NPC 3

int main(int argc, char** argv) {
    static const char* lines[N_NPC] = {"Player: Good morning! Any news?\nGuard:",
                                       "Player: What do you sell?\nMerchant:",
                                       "Player: Is there a room for the night?\nInnkeeper:"};
    static const char* stop[1] = {"\n"}; /* each NPC says one line */
    const char* path = argc > 1 ? argv[1] : "models/emberfall.gguf";
    ember_model* model = NULL;
    ember_scheduler* sched = NULL;
    ember_session* npc[N_NPC] = {NULL};
    ember_request req[N_NPC];
    int done[N_NPC] = {0}, frame, i, n_done = 0;
    char buf[1024];
    size_t len;

    if (ember_model_load(path, NULL, &model) != EMBER_OK ||
        ember_scheduler_create(model, NULL, &sched) != EMBER_OK) {
        fprintf(stderr, "%s\n", ember_last_error());
        ember_model_free(model);
        return 1;
    }
    for (i = 0; i < N_NPC; ++i) {
        ember_session_params sp;
        ember_request_params rp;
        ember_session_default_params(&sp);
        sp.seed = 100 + (uint64_t)i; /* same seed, same dialogue: replays and lockstep stay in sync */
        ember_request_default_params(&rp);
        rp.max_tokens = 40;
        rp.stop = stop;
        rp.n_stop = 1;
        if (ember_scheduler_session_create(sched, &sp, &npc[i]) != EMBER_OK ||
            ember_submit(sched, npc[i], lines[i], strlen(lines[i]), &rp, &req[i]) != EMBER_OK) {
            fprintf(stderr, "%s\n", ember_last_error());
            return 1;
        }
    }
    for (frame = 0; n_done < N_NPC && frame < 100000; ++frame) {
        ember_step_stats st;
        st.size = sizeof st;
        ember_step(sched, 4.0, &st); /* ...the rest of the frame: physics, rendering... */
        for (i = 0; i < N_NPC; ++i) {
            int32_t state;
            if (done[i]) continue;
            if (ember_request_poll(sched, req[i], buf, sizeof buf - 1, &len) == EMBER_OK && len > 0) {
                buf[len] = 0;
                printf("[frame %d, npc %d] %s\n", frame, i, buf);
            }
            ember_request_get_state(sched, req[i], &state);
            if (state >= EMBER_REQUEST_DONE) {
                done[i] = 1;
                ++n_done;
                ember_request_release(sched, req[i]);
            }
        }
    }
    for (i = 0; i < N_NPC; ++i) ember_session_free(npc[i]);
    ember_scheduler_free(sched);
    ember_model_free(model);
    return 0;
}
