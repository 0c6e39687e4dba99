"""The project's own trained model, models/emberfall.gguf (village NPC dialogue), end
to end through the Python package: streamed, blocking and scheduled generation give
the same text as the `ember` CLI, and the text continues a scene in the corpus's form.

Run: /usr/bin/python3 -m unittest discover -s bindings/python/tests -v
"""
from __future__ import annotations

import re
import subprocess
import unittest
from typing import List

from _support import REPO, find_cli

import emberlm

MODEL = REPO / "models" / "emberfall.gguf"
SCENE = ("The village of Ashford lies in a green valley below the old mountain road.\n"
         "Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.\n"
         "Player: Good evening! Any news?\n"
         "Innkeeper:")
VILLAGERS = [
    "Guard: I keep the gate of Ashford. They call me Tomas, and I am stern.\nPlayer: Any news?\nGuard:",
    "Smith: I work the forge by the east gate. I am proud of my work.\nPlayer: What do you sell?\nSmith:",
    "Baker: I keep the bakery by the market. I never forget a face.\nPlayer: Good morning!\nBaker:",
]
LINE = re.compile(r"^[A-Z][A-Za-z' ]*: \S.*$")


def complete_lines(text: str) -> List[str]:
    """The lines after the prompt's unfinished one, without a last line cut short."""
    lines = text.split("\n")[1:]
    return lines[:-1]


class TestDefaultModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if not MODEL.exists():
            raise unittest.SkipTest(f"{MODEL} is missing")
        cls.model = emberlm.Model(str(MODEL), n_threads=2)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.model.close()

    def test_metadata_is_the_model_cards(self) -> None:
        info = self.model.info
        self.assertEqual(info.name, "emberfall")
        self.assertEqual(info.architecture, "llama")
        self.assertEqual(info.n_ctx_train, 256)
        self.assertIn("Player: ", info.chat_template or "")

    def test_greedy_scene_matches_the_cli_and_keeps_the_form(self) -> None:
        with self.model.session(temperature=0) as s:
            streamed = "".join(s.generate(SCENE, max_tokens=100, stop=["\n\n"], stream=True))
        with self.model.session(temperature=0) as s:
            blocking = s.generate(SCENE, max_tokens=100, stop=["\n\n"])
        self.assertEqual(streamed, blocking)
        cli = find_cli()
        assert cli
        out = subprocess.run([cli, "--quiet", "run", "-m", str(MODEL), "-p", SCENE, "-n", "100", "--temp", "0",
                              "--stop", "\\n\\n"], check=True, capture_output=True).stdout.decode("utf-8")
        self.assertEqual(out, SCENE + blocking + "\n")
        lines = complete_lines(blocking)
        self.assertGreaterEqual(len(lines), 3, blocking)
        for line in lines:
            self.assertRegex(line, LINE)
        self.assertTrue(any(line.startswith("Player: ") for line in lines), blocking)

    def test_a_seed_replays_and_seeds_differ(self) -> None:
        texts = []
        for seed in (1, 2, 3, 4):
            with self.model.session(temperature=0.8, seed=seed) as a, self.model.session(temperature=0.8, seed=seed) as b:
                ta = a.generate(SCENE, max_tokens=80, stop=["\n\n"])
                self.assertEqual(ta, b.generate(SCENE, max_tokens=80, stop=["\n\n"]))
            for line in complete_lines(ta):
                self.assertRegex(line, LINE)
            texts.append(ta)
        self.assertGreater(len(set(texts)), 1)

    def test_villagers_scheduled_together_say_what_each_says_alone(self) -> None:
        alone = []
        for i, prompt in enumerate(VILLAGERS):
            with self.model.session(temperature=0.7, seed=100 + i) as s:
                alone.append(s.generate(prompt, max_tokens=40, stop=["\n\n"]))
        with self.model.scheduler() as sched:
            sessions = [sched.session(temperature=0.7, seed=100 + i) for i in range(len(VILLAGERS))]
            reqs = [sched.submit(s, p, max_tokens=40, stop=["\n\n"]) for s, p in zip(sessions, VILLAGERS)]
            got = [""] * len(reqs)
            for _ in range(10000):
                if all(r.finished for r in reqs):
                    break
                sched.step(4.0)
                for i, r in enumerate(reqs):
                    got[i] += r.poll()
            for i, r in enumerate(reqs):
                got[i] += r.poll()
            for s in sessions:
                s.close()
        self.assertEqual(got, alone)
        for text in alone:
            self.assertTrue(text.startswith(" "), text)

    def test_chat_template_renders_the_scene_the_model_was_trained_on(self) -> None:
        messages = [
            {"role": "system", "content": "Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind."},
            {"role": "user", "content": "Good evening! Any news?"},
            {"role": "assistant", "name": "Innkeeper", "content": "Only that the miller is getting married."},
            {"role": "user", "content": "Where is the smith?"},
        ]
        prompt = self.model.apply_chat_template(messages)
        self.assertEqual(prompt, "Innkeeper: I am Greta. I keep the inn at the crossroads, and I am kind.\n"
                                 "Player: Good evening! Any news?\n"
                                 "Innkeeper: Only that the miller is getting married.\n"
                                 "Player: Where is the smith?\n"
                                 "Innkeeper:")
        self.assertFalse(self.model.apply_chat_template(messages, add_generation_prompt=False).endswith("Innkeeper:"))
        with self.model.session(temperature=0) as s:
            reply = s.generate(prompt, max_tokens=40, stop=["\n"])
        self.assertRegex("Innkeeper:" + reply, LINE)
        # a template's own error, and a message without content, are clear errors
        with self.assertRaises(emberlm.InvalidArgumentError):
            self.model.apply_chat_template(messages, template="{{ raise_exception('no system role') }}")
        with self.assertRaises(emberlm.InvalidArgumentError):
            self.model.apply_chat_template([{"role": "user"}])

    def test_closing_a_stream_during_its_prefill_cancels_it_and_keeps_the_session(self) -> None:
        long_prompt = SCENE + " " + " ".join(["Player: Tell me more.\nInnkeeper: Well, well."] * 12)
        with self.model.session(temperature=0, n_batch=8) as s:
            stream = s.generate(long_prompt, max_tokens=8, stream=True)
            stream.close()  # at once: the worker is still in the prompt's prefill, or has not begun
            self.assertEqual(s.n_tokens, 0)
            self.assertEqual(stream.text, "")
            # the session is usable and as new: the same text as a fresh session
            text = s.generate(SCENE, max_tokens=20)
        with self.model.session(temperature=0) as fresh:
            self.assertEqual(text, fresh.generate(SCENE, max_tokens=20))


if __name__ == "__main__":
    unittest.main()
