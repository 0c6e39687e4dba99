// village — a terminal village of NPCs sharing one model, driven by a 60 fps frame loop.
//
//   village [MODEL.gguf] [--budget MS] [--demo]   (default: the project's own models/emberfall.gguf)
//
// Every villager forks one session that holds the world's lore (prefilled
// once, shared copy-on-write), then adds its own persona. Each frame the game
// spends at most --budget milliseconds in ember_step(); the status line shows
// how much of it was used. Type a line and press Enter to talk to the current
// villager; "/next" turns to the next one; "/quit" leaves. Villagers answer
// you, and then one of them answers the other. --demo plays a short scripted
// visit without a keyboard.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "ember.h"

namespace {

struct Villager {
    const char* name;
    const char* persona;
    ember_session* session = nullptr;
    ember_request request = 0;
    bool busy = false;
    std::string line;  // what it is saying now
};

const char* kLore =
    "The village of Emberfall lies in a green valley below the old mountain road. Travellers come for the "
    "market, the inn and the smithy. The guard watches the gate and the roads.\n";

bool check(ember_status s, const char* what) {
    if (s == EMBER_OK) return true;
    std::fprintf(stderr, "village: %s: %s\n", what, ember_last_error());
    return false;
}

bool stdin_line(std::string& out) {
    pollfd p{0, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    char buf[512];
    if (!std::fgets(buf, sizeof buf, stdin)) return false;
    out = buf;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    const char* path = "models/emberfall.gguf";
    double budget = 4.0;
    bool demo = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--budget") && i + 1 < argc) {
            budget = std::atof(argv[++i]);
        } else if (!std::strcmp(argv[i], "--demo")) {
            demo = true;
        } else if (argv[i][0] != '-') {
            path = argv[i];
        } else {
            std::fprintf(stderr, "usage: village [MODEL.gguf] [--budget MS] [--demo]\n");
            return 2;
        }
    }
    std::vector<Villager> v = {
        {"Guard", "Guard: I keep the gate of Emberfall. I am stern but fair, and I know every road.\n"},
        {"Merchant", "Merchant: I sell cloth, spice and lamps at the market. I love a good bargain.\n"},
        {"Smith", "Smith: I forge swords and horseshoes at the smithy. I speak little and work hard.\n"},
        {"Innkeeper", "Innkeeper: I keep the inn by the well. I hear every rumour in the valley.\n"},
    };

    ember_model* model = nullptr;
    ember_scheduler* sched = nullptr;
    if (!check(ember_model_load(path, nullptr, &model), "load")) return 1;
    if (!check(ember_scheduler_create(model, nullptr, &sched), "scheduler")) return 1;

    // The lore once, then a fork per villager: the lore's KV pages are shared.
    ember_session_params sp;
    ember_session_default_params(&sp);
    sp.temperature = 0.7f;
    sp.overflow_policy = EMBER_OVERFLOW_SHIFT_FAST;  // long visits keep the persona, drop old talk, no stall
    ember_session* lore = nullptr;
    if (!check(ember_scheduler_session_create(sched, &sp, &lore), "session") ||
        !check(ember_session_prefill(lore, kLore, std::strlen(kLore), 0), "lore"))
        return 1;
    for (size_t i = 0; i < v.size(); ++i) {
        if (!check(ember_session_fork(lore, &v[i].session), "fork") ||
            !check(ember_session_prefill(v[i].session, v[i].persona, std::strlen(v[i].persona), 0), "persona"))
            return 1;
    }
    std::printf("Emberfall: %zu villagers share one model; KV in use %.2f MiB. Talking to the %s. "
                "(/next, /quit)\n", v.size(), double(ember_scheduler_kv_bytes(sched)) / 1048576.0, v[0].name);

    auto say = [&](size_t who, const std::string& heard, int priority) {
        std::string prompt = heard + "\n" + v[who].name + ":";
        ember_request_params rp;
        ember_request_default_params(&rp);
        rp.max_tokens = 40;
        static const char* stop[] = {"\n"};
        rp.stop = stop;
        rp.n_stop = 1;
        rp.priority = priority;
        if (check(ember_submit(sched, v[who].session, prompt.data(), prompt.size(), &rp, &v[who].request), "submit")) {
            v[who].busy = true;
            v[who].line.clear();
        }
    };

    const std::vector<std::string> script = {"Player: Good morning! What news from the road?",
                                             "/next", "Player: What do you have for sale today?", "/quit"};
    size_t partner = 0, scripted = 0;
    int frame = 0, frames_over = 0;
    double worst = 0, used_total = 0;
    bool quit = false;
    auto frame_start = std::chrono::steady_clock::now();
    while (!quit) {
        // input: the player talks to the current partner (highest priority)
        std::string in;
        bool got = demo ? false : stdin_line(in);
        bool anyone_busy = false;
        for (auto& x : v) anyone_busy = anyone_busy || x.busy;
        if (demo && !anyone_busy && frame % 30 == 0) {
            if (scripted < script.size()) { in = script[scripted++]; got = true; }
            else quit = true;
        }
        if (got) {
            if (in == "/quit") quit = true;
            else if (in == "/next") {
                partner = (partner + 1) % v.size();
                std::printf("\n(you turn to the %s)\n", v[partner].name);
            } else if (!in.empty() && !v[partner].busy) {
                if (in.rfind("Player:", 0) != 0) in = "Player: " + in;
                std::printf("%s\n", in.c_str());
                say(partner, in, 10);
            }
        }

        ember_step_stats st;
        st.size = sizeof st;
        ember_step(sched, budget, &st);
        used_total += st.ms;
        worst = st.ms > worst ? st.ms : worst;
        frames_over += st.ms > budget;

        for (size_t i = 0; i < v.size(); ++i) {
            if (!v[i].busy) continue;
            char buf[1024];
            size_t len = 0;
            if (ember_request_poll(sched, v[i].request, buf, sizeof buf, &len) == EMBER_OK && len) {
                if (v[i].line.empty()) std::printf("%s:", v[i].name);
                std::fwrite(buf, 1, len, stdout);
                v[i].line.append(buf, len);
            }
            int32_t state = 0;
            ember_request_get_state(sched, v[i].request, &state);
            if (state >= EMBER_REQUEST_DONE) {
                ember_request_release(sched, v[i].request);
                v[i].busy = false;
                std::printf("\n");
                // another villager overhears and answers, at a lower priority than the player
                const size_t other = (i + 1) % v.size();
                if (i == partner && !v[other].busy && !quit)
                    say(other, std::string(v[i].name) + ":" + v[i].line, 0);
            }
        }
        if (frame % 60 == 0 && st.layers > 0)
            std::fprintf(stderr, "[frame %d] step %.2f of %.1f ms budget, %d layers, %d batch entries%s\n", frame, st.ms,
                         budget, st.layers, st.entries, st.paused ? ", pass paused" : "");
        ++frame;
        // wait for the next 16.7 ms frame
        frame_start += std::chrono::microseconds(16667);
        std::this_thread::sleep_until(frame_start);
        if (demo && frame > 60 * 120) quit = true;  // a demo never runs longer than two minutes
    }
    std::fprintf(stderr, "%d frames, mean step %.2f ms, worst %.2f ms, %d over the %.1f ms budget\n", frame,
                 used_total / frame, worst, frames_over, budget);
    for (auto& x : v) ember_session_free(x.session);
    ember_session_free(lore);
    ember_scheduler_free(sched);
    ember_model_free(model);
    return 0;
}
