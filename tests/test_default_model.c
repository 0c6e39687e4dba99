/* End to end through the C ABI on the project's own trained model,
   models/emberfall.gguf (village NPC dialogue, models/README.md):

   - the file's metadata is the model card's (name, shape, chat template);
   - greedy generation from a scene opening continues the scene in the
     corpus's form: every line "Speaker: words", the player among the speakers,
     the text valid UTF-8, and the same with 1 and 2 threads;
   - seeded sampling replays exactly for one seed and varies across seeds;
   - four villagers generated together by the scheduler say exactly what each
     says alone (every pass is batch-invariant: there is no mode to switch on).

   A model that had not learnt the corpus (random weights, a broken forward
   pass or tokenizer) fails the form check.

   usage: test_default_model MODEL.gguf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"

static int failures = 0;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                      \
        }                                                                    \
    } while (0)

typedef struct {
    char buf[8192];
    size_t len;
} sink;

static int collect(const char* s, size_t n, int32_t tok, void* ud) {
    sink* k = (sink*)ud;
    (void)tok;
    if (k->len + n >= sizeof k->buf) return 1;
    memcpy(k->buf + k->len, s, n);
    k->len += n;
    k->buf[k->len] = 0;
    return 0;
}

typedef struct {
    int calls, cancel_at, last_done, last_total;
} prefill_watch;

static int watch_prefill(int32_t done, int32_t total, void* ud) {
    prefill_watch* w = (prefill_watch*)ud;
    ++w->calls;
    w->last_done = done;
    w->last_total = total;
    return w->cancel_at > 0 && w->calls >= w->cancel_at;
}

static int valid_utf8(const char* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        size_t j;
        if (k == 0 || i + k > n) return 0;
        for (j = 1; j < k; ++j)
            if (((unsigned char)s[i + j] >> 6) != 2) return 0;
        i += k;
    }
    return 1;
}

/* Counts the complete lines of the text (after the prompt's unfinished one)
   and checks each is "Speaker: words": a capitalised name of letters and
   spaces, a colon, a space, then words. Returns -1 on a malformed line. */
static int scene_lines(const char* text, int* player_lines) {
    const char* p = strchr(text, '\n'); /* the first line finishes the prompt's "Innkeeper:" */
    int n = 0;
    *player_lines = 0;
    while (p && p[1]) {
        const char* line = p + 1;
        const char* end = strchr(line, '\n');
        const char* colon;
        const char* q;
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (!end) break; /* the last line may be cut by max_tokens */
        colon = memchr(line, ':', len);
        if (!colon || colon == line || !(line[0] >= 'A' && line[0] <= 'Z')) return -1;
        for (q = line; q < colon; ++q)
            if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || *q == ' ' || *q == '\'')) return -1;
        if (colon + 2 >= line + len || colon[1] != ' ') return -1;
        if (strncmp(line, "Player:", 7) == 0) ++*player_lines;
        ++n;
        p = end;
    }
    return n;
}

static const char* kScene =
    "The village of Ashford lies in a green valley below the old mountain road.\n"
    "Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.\n"
    "Player: Good evening! Any news?\n"
    "Innkeeper:";

static int generate(ember_model* model, const char* prompt, float temp, uint64_t seed, int32_t max_tokens, sink* out) {
    ember_session_params sp;
    ember_generate_params gp;
    ember_session* s = NULL;
    const char* stops[1];
    ember_status st;
    stops[0] = "\n\n";
    ember_session_default_params(&sp);
    sp.temperature = temp;
    sp.seed = seed;
    if (ember_session_create(model, &sp, &s) != EMBER_OK) return -1;
    ember_generate_default_params(&gp);
    gp.max_tokens = max_tokens;
    gp.on_piece = collect;
    gp.user_data = out;
    gp.stop = stops;
    gp.n_stop = 1;
    out->len = 0;
    out->buf[0] = 0;
    st = ember_generate(s, prompt, strlen(prompt), &gp, NULL);
    ember_session_free(s);
    return st == EMBER_OK ? 0 : -1;
}

static ember_model* load(const char* path, int threads) {
    ember_model_params mp;
    ember_model* m = NULL;
    ember_model_default_params(&mp);
    mp.n_threads = threads;
    if (ember_model_load(path, &mp, &m) != EMBER_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, ember_last_error());
        return NULL;
    }
    return m;
}

int main(int argc, char** argv) {
    ember_model *m1, *m2;
    ember_model_info info;
    static sink greedy1, greedy2, a, b, c;
    int players = 0, lines, seed, distinct = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: test_default_model MODEL.gguf\n");
        return 2;
    }
    m1 = load(argv[1], 1);
    m2 = load(argv[1], 2);
    if (!m1 || !m2) return 1;

    /* The metadata the model card describes. */
    info.size = sizeof info;
    CHECK(ember_model_get_info(m2, &info) == EMBER_OK);
    CHECK(strcmp(info.name, "emberfall") == 0);
    CHECK(strcmp(info.architecture, "llama") == 0);
    CHECK(info.n_ctx_train == 256);
    CHECK(info.chat_template != NULL && strstr(info.chat_template, "Player: ") != NULL);
    CHECK(info.file_size <= 8u * 1024u * 1024u);

    /* Greedy: the scene goes on in the corpus's form, whatever the thread count. */
    CHECK(generate(m1, kScene, 0.0f, 1, 120, &greedy1) == 0);
    CHECK(generate(m2, kScene, 0.0f, 1, 120, &greedy2) == 0);
    printf("greedy:\n%s%s\n", kScene, greedy1.buf);
    CHECK(greedy1.len > 0 && greedy1.buf[0] == ' ');
    CHECK(valid_utf8(greedy1.buf, greedy1.len));
    CHECK(strcmp(greedy1.buf, greedy2.buf) == 0);
    lines = scene_lines(greedy1.buf, &players);
    CHECK(lines >= 3);
    CHECK(players >= 1);

    /* Seeded sampling: a seed replays; several seeds give several scenes, each in form. */
    for (seed = 1; seed <= 4; ++seed) {
        CHECK(generate(m2, kScene, 0.8f, (uint64_t)seed, 100, &a) == 0);
        CHECK(generate(m1, kScene, 0.8f, (uint64_t)seed, 100, &b) == 0);
        CHECK(strcmp(a.buf, b.buf) == 0);
        CHECK(valid_utf8(a.buf, a.len));
        CHECK(scene_lines(a.buf, &players) >= 1);
        if (seed == 1) {
            c = a;
        } else if (strcmp(a.buf, c.buf) != 0) {
            ++distinct;
        }
    }
    CHECK(distinct >= 1);

    /* Four villagers at once through the scheduler: each says exactly what it
       says alone. */
    {
        static const char* personas[4] = {
            "Guard: I keep the gate of Ashford. They call me Tomas, and I am stern.\nPlayer: Any news?\nGuard:",
            "Smith: I work the forge by the east gate. I am proud of my work.\nPlayer: What do you sell?\nSmith:",
            "Baker: I keep the bakery by the market. I never forget a face.\nPlayer: Good morning!\nBaker:",
            "Healer: I tend the sick in my hut by the river. I am gentle.\nPlayer: I need help.\nHealer:"};
        static sink alone[4];
        static char got[4][8192];
        ember_scheduler_params schp;
        ember_scheduler* sch = NULL;
        ember_session* ss[4];
        ember_request req[4];
        ember_session_params sp;
        ember_request_params rp;
        const char* stops[1] = {"\n\n"};
        size_t got_len[4] = {0, 0, 0, 0};
        int i, done = 0, guard = 0;
        for (i = 0; i < 4; ++i) CHECK(generate(m2, personas[i], 0.7f, (uint64_t)(100 + i), 48, &alone[i]) == 0);
        ember_scheduler_default_params(&schp);
        CHECK(ember_scheduler_create(m2, &schp, &sch) == EMBER_OK);
        for (i = 0; i < 4; ++i) {
            ember_session_default_params(&sp);
            sp.temperature = 0.7f;
            sp.seed = (uint64_t)(100 + i);
            CHECK(ember_scheduler_session_create(sch, &sp, &ss[i]) == EMBER_OK);
            ember_request_default_params(&rp);
            rp.max_tokens = 48;
            rp.stop = stops;
            rp.n_stop = 1;
            CHECK(ember_submit(sch, ss[i], personas[i], strlen(personas[i]), &rp, &req[i]) == EMBER_OK);
        }
        while (done < 4 && guard++ < 10000) {
            CHECK(ember_step(sch, 4.0, NULL) == EMBER_OK);
            done = 0;
            for (i = 0; i < 4; ++i) {
                size_t n = 0;
                int32_t state = 0;
                CHECK(ember_request_poll(sch, req[i], got[i] + got_len[i], sizeof got[i] - 1 - got_len[i], &n) == EMBER_OK);
                got_len[i] += n;
                got[i][got_len[i]] = 0;
                CHECK(ember_request_get_state(sch, req[i], &state) == EMBER_OK);
                if (state == EMBER_REQUEST_DONE) ++done;
            }
        }
        CHECK(done == 4);
        for (i = 0; i < 4; ++i) {
            if (strcmp(got[i], alone[i].buf) != 0) fprintf(stderr, "villager %d:\n[%s]\nvs alone:\n[%s]\n", i, got[i], alone[i].buf);
            CHECK(strcmp(got[i], alone[i].buf) == 0);
            CHECK(ember_request_release(sch, req[i]) == EMBER_OK);
            ember_session_free(ss[i]);
        }
        ember_scheduler_free(sch);
    }

    /* A long prompt's prefill reports progress between layers and can be
       cancelled there; a cancelled call leaves the session as it was. */
    {
        ember_session_params sp;
        ember_generate_params gp;
        ember_session *s = NULL, *ref = NULL;
        prefill_watch w = {0, 0, 0, 0};
        static sink first, again, expect;
        const char* turn2 = "\nPlayer: Where is the smith?\nInnkeeper:";
        int32_t n_before;
        ember_session_default_params(&sp);
        sp.temperature = 0.0f;
        sp.n_batch = 16; /* several chunks, so progress moves on */
        CHECK(ember_session_create(m2, &sp, &s) == EMBER_OK);
        CHECK(ember_session_create(m2, &sp, &ref) == EMBER_OK);
        ember_generate_default_params(&gp);
        gp.max_tokens = 8;
        gp.on_piece = collect;
        gp.user_data = &first;
        CHECK(ember_generate(s, kScene, strlen(kScene), &gp, NULL) == EMBER_OK);

        /* watched, not cancelled: same text as without a watcher, progress to the end */
        gp.on_piece = NULL;
        gp.on_prefill = watch_prefill;
        gp.user_data = &w;
        n_before = ember_session_n_tokens(s);
        {
            ember_session* probe = NULL;
            CHECK(ember_session_fork(s, &probe) == EMBER_OK);
            CHECK(ember_generate(probe, turn2, strlen(turn2), &gp, NULL) == EMBER_OK);
            CHECK(w.calls >= 4); /* one call before each of the 4 layers, per chunk */
            CHECK(w.last_total > 0 && w.last_done < w.last_total);
            ember_session_free(probe);
        }

        /* cancelled on the third call: EMBER_ERR_CANCELLED, nothing changed */
        w.calls = 0;
        w.cancel_at = 3;
        CHECK(ember_generate(s, turn2, strlen(turn2), &gp, NULL) == EMBER_ERR_CANCELLED);
        CHECK(strstr(ember_last_error(), "prefill") != NULL);
        CHECK(w.calls == 3);
        CHECK(ember_session_n_tokens(s) == n_before);

        /* and the conversation goes on exactly as if the cancelled call never happened */
        gp.on_prefill = NULL;
        gp.on_piece = collect;
        gp.user_data = &again;
        gp.max_tokens = 24;
        CHECK(ember_generate(s, turn2, strlen(turn2), &gp, NULL) == EMBER_OK);
        gp.user_data = &expect;
        gp.max_tokens = 8;
        CHECK(ember_generate(ref, kScene, strlen(kScene), &gp, NULL) == EMBER_OK);
        gp.max_tokens = 24;
        expect.len = 0;
        CHECK(ember_generate(ref, turn2, strlen(turn2), &gp, NULL) == EMBER_OK);
        CHECK(again.len > 0 && strcmp(again.buf, expect.buf) == 0);
        ember_session_free(s);
        ember_session_free(ref);
    }

    ember_model_free(m1);
    ember_model_free(m2);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
