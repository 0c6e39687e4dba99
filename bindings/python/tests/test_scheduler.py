"""Many sessions on one model: the scheduler, forks, prefill and savegames, against
a real GGUF model written by `ember make-model`.

Run: /usr/bin/python3 -m unittest discover -s bindings/python/tests -v
"""
from __future__ import annotations

import dataclasses
import subprocess
import unittest
from typing import Any, Dict, List

from _support import Fixture

import emberlm
from emberlm import BadFormatError, EmberError, InvalidArgumentError

fx: Fixture
other_model: str


def setUpModule() -> None:
    global fx, other_model
    fx = Fixture()
    other_model = str(fx.dir / "other.gguf")  # same shape, other weights: another content hash
    subprocess.run([fx.cli, "--quiet", "make-model", other_model, "--seed", "2"], check=True)


def tearDownModule() -> None:
    fx.cleanup()


# The test model's logits are steep: a hot, unfiltered sampler makes each seed's text its own.
HOT: Dict[str, Any] = dict(temperature=8.0, top_k=0, top_p=1.0, min_p=0.0)
LORE = ("once upon a time there was a little girl who lived in a village near the forest. "
        "every day she walked to the river with her dog, and every day the old miller waved at her.")
# (settings, prompt) of four NPCs: two greedy, two seeded
NPCS: List[Any] = [
    (dict(temperature=0), "once upon a time"),
    (dict(temperature=0), "the little dog ran"),
    (dict(seed=1, **HOT), "once upon a time"),
    (dict(seed=2, **HOT), "the old miller said"),
]


class SchedulerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.model = emberlm.Model(fx.model)

    def tearDown(self) -> None:
        self.model.close()

    def alone(self, settings: Dict[str, Any], *prompts: str, max_tokens: int = 16) -> List[str]:
        """What a plain session gives for each prompt in turn."""
        with self.model.session(**settings) as s:
            return [s.generate(p, max_tokens=max_tokens) for p in prompts]


class TestScheduler(SchedulerTest):
    def test_four_sessions_give_the_text_each_gives_alone(self) -> None:
        with self.model.scheduler(max_batch_tokens=64, prefill_chunk=8) as sched:
            sessions = [sched.session(**settings) for settings, _ in NPCS]
            reqs = [sched.submit(s, prompt, max_tokens=16) for s, (_, prompt) in zip(sessions, NPCS)]
            self.assertTrue(all(r.state == "queued" for r in reqs))
            texts = [""] * len(reqs)
            for _ in range(10000):
                stats = sched.step(2.0)
                self.assertIsInstance(stats, emberlm.StepStats)
                for i, r in enumerate(reqs):
                    texts[i] += r.poll()
                if all(r.finished for r in reqs):
                    break
            for r, text in zip(reqs, texts):
                self.assertEqual(r.state, "done")
                self.assertEqual(r.text, text)
                m = r.metrics
                self.assertEqual((m.finish_reason, m.n_generated_tokens), ("max_tokens", 16))
                self.assertIsNone(r.error)
                r.release()
            # a second turn, driven by run(): the conversations go on as they would alone
            reqs = [sched.submit(s, " and then", max_tokens=8) for s in sessions]
            sched.run()
            second = [r.poll() for r in reqs]
            for (settings, prompt), first, then in zip(NPCS, texts, second):
                with self.model.session(**settings) as s:
                    want = [s.generate(prompt, max_tokens=16), s.generate(" and then", max_tokens=8)]
                self.assertEqual([first, then], want)
            self.assertEqual(len(set(texts)), len(texts))  # the four NPCs say different things

    def test_iterating_a_request_steps_the_scheduler(self) -> None:
        settings, prompt = NPCS[2]
        with self.model.scheduler() as sched:
            s = sched.session(**settings)
            with sched.submit(s, prompt, max_tokens=16, priority=5) as r:
                pieces = list(r)
                self.assertGreater(len(pieces), 1)
                self.assertEqual("".join(pieces), self.alone(settings, prompt)[0])
                self.assertEqual(r.state, "done")
            with self.assertRaises(InvalidArgumentError):  # released
                r.poll()
            r2 = sched.submit(s, " more", max_tokens=200)
            for piece in r2:
                self.assertIsInstance(piece, str)
                break  # cancels
            sched.step(0)
            self.assertEqual(r2.state, "cancelled")

    def test_a_fork_shares_the_prefix(self) -> None:
        endings = [" and the boy", " and the day", " and the cat"]
        with self.model.scheduler() as sched:
            base = sched.session(seed=3, **HOT)
            base.prefill(LORE)
            self.assertGreater(base.n_tokens, 64)
            kv_prefix = sched.kv_bytes
            self.assertGreater(kv_prefix, 0)
            forks = [base.fork() for _ in endings]
            self.assertTrue(all(f.scheduler is sched for f in forks))
            self.assertEqual(sched.kv_bytes, kv_prefix)  # forks share the prefix, copy-on-write
            self.assertEqual([f.n_tokens for f in forks], [base.n_tokens] * len(forks))
            reqs = [sched.submit(f, e, max_tokens=12) for f, e in zip(forks, endings)]
            sched.run()
            texts = [r.poll() for r in reqs]
            # each fork added only its own tokens: far less than a copy of the prefix each
            self.assertLess(sched.kv_bytes, kv_prefix + len(forks) * kv_prefix // 2)
        for e, text in zip(endings, texts):
            # a cold session given the same prompt (the lore, then the ending: a continuation is tokenized
            # on its own, so `LORE + e` as one string would be other tokens) says the same
            with self.model.session(seed=3, **HOT) as cold:
                cold.prefill(LORE)
                self.assertEqual(text, cold.generate(e, max_tokens=12))
        # a plain session forks too
        with self.model.session(seed=4, **HOT) as s:
            s.prefill(LORE)
            f = s.fork()
            self.assertIsNone(f.scheduler)
            self.assertEqual(f.generate(" and the boy", max_tokens=10), s.generate(" and the boy", max_tokens=10))
            f.close()

    def test_a_tiny_budget_pauses_and_still_finishes(self) -> None:
        settings, prompt = NPCS[3]
        with self.model.scheduler() as sched:
            r = sched.submit(sched.session(**settings), LORE + prompt, max_tokens=16)
            paused = steps = 0
            text = ""
            while not r.finished and steps < 100000:
                st = sched.step(0.001)  # far less than a layer: one layer per step
                self.assertLessEqual(st.layers, 2)
                paused += st.paused
                steps += 1
                text += r.poll()
            self.assertGreater(paused, 0)
            self.assertEqual(r.state, "done")
            self.assertEqual(text, self.alone(settings, LORE + prompt)[0])

    def test_cancel_takes_effect_at_the_next_step(self) -> None:
        with self.model.scheduler() as sched:
            s = sched.session(temperature=0)
            r = sched.submit(s, "once upon a time", max_tokens=200)
            sched.step(0)
            sched.step(0)
            self.assertEqual(r.state, "running")
            r.cancel()
            self.assertEqual(r.state, "running")  # not yet
            sched.step(0)
            self.assertEqual(r.state, "cancelled")
            m = r.metrics
            self.assertEqual(m.finish_reason, "cancelled")
            self.assertLess(m.n_generated_tokens, 200)
            self.assertEqual(s.n_tokens, m.n_prompt_tokens + m.n_generated_tokens)  # what it made stays
            r.release()
            # the session takes the next request; dropping one still running cancels and frees it
            r2 = sched.submit(s, " more", max_tokens=200)
            sched.step(0)
            r2.release()
            self.assertEqual(sched._orphans, {r2.id})
            sched.step(0)
            self.assertEqual(sched._orphans, set())
            # one dropped unreleased runs to its end, then is freed
            n = s.n_tokens
            sched.submit(s, " again", max_tokens=3)
            self.assertEqual(len(sched._orphans), 1)
            sched.run()
            self.assertEqual(sched._orphans, set())
            self.assertEqual(s.n_tokens, n + len(self.model.tokenize(" again", add_bos=False)) + 3)

    def test_a_stream_on_a_scheduler_session_yields_to_the_scheduler(self) -> None:
        with self.model.scheduler() as sched:
            a, b = sched.session(temperature=0), sched.session(temperature=0)
            r = sched.submit(b, "once upon a time", max_tokens=4)
            stream = a.generate("once upon a time", max_tokens=200, stream=True)
            next(stream)
            sched.run()  # the stream held the scheduler's lock: this call cancels it first
            self.assertEqual(list(stream), [])
            self.assertEqual(a.metrics.finish_reason, "cancelled")
            self.assertEqual(r.state, "done")

    def test_a_failed_request_has_the_library_message(self) -> None:
        with self.model.scheduler(kv_max_tokens=32) as sched:  # one page of KV memory: a long prompt cannot fit
            r = sched.submit(sched.session(), LORE, max_tokens=8)
            sched.run()
            self.assertEqual(r.state, "failed")
            self.assertIn("KV memory", r.error or "")
            r2 = sched.submit(sched.session(), LORE, max_tokens=8)
            with self.assertRaises(EmberError) as cm:
                list(r2)
            self.assertEqual(str(cm.exception), r2.error)
        with self.assertRaises(InvalidArgumentError):
            self.model.scheduler(max_batch_tokens=0)

    def test_closing_the_scheduler_leaves_plain_sessions(self) -> None:
        sched = self.model.scheduler()
        s = sched.session(temperature=0)
        r = sched.submit(s, "once upon a time", max_tokens=4)
        sched.close()
        sched.close()  # idempotent
        self.assertTrue(sched.closed)
        with self.assertRaises(InvalidArgumentError):
            r.poll()
        with self.assertRaises(InvalidArgumentError):
            sched.step(1)
        # the submitted prompt stayed in the conversation (never evaluated): a plain
        # session holding the same tokens continues the same way
        with self.model.session(temperature=0) as ref:
            ref.eval(self.model.tokenize("once upon a time"))
            want = ref.generate("x", max_tokens=3)
        self.assertEqual(s.generate("x", max_tokens=3), want)
        s.close()
        r.release()  # nothing left to free

    def test_session_params(self) -> None:
        for policy in ("shift", "shift_fast"):
            with self.model.session(n_ctx=32, overflow_policy=policy, n_keep=-1, temperature=0) as s:
                s.generate("once upon a time", max_tokens=60)
                self.assertEqual(s.metrics.finish_reason, "max_tokens", policy)
                self.assertLessEqual(s.n_tokens, 32)
                self.assertGreater(s.metrics.n_context_shifts, 0, policy)
        with self.model.session(n_ctx=32, overflow_policy="error", temperature=0) as s:
            s.generate("once upon a time", max_tokens=60)
            self.assertEqual(s.metrics.finish_reason, "context_full")
        with self.assertRaises(InvalidArgumentError):
            self.model.session(overflow_policy="wrap")  # type: ignore[arg-type]
        with self.model.scheduler(kv_max_tokens=4096) as sched, self.assertRaises(TypeError):
            sched.session(colour="blue")  # type: ignore[call-arg]


class TestSavegames(SchedulerTest):
    def test_save_load_continue_equals_an_uninterrupted_run(self) -> None:
        settings = dict(seed=11, **HOT)
        want = self.alone(settings, "once upon a time", " and then", max_tokens=12)
        for with_kv in (False, True):
            with self.model.session(**settings) as s:
                self.assertEqual(s.generate("once upon a time", max_tokens=12), want[0])
                data = s.save(with_kv=with_kv)
            self.assertIsInstance(data, bytes)
            with self.model.session(seed=999) as restored:  # settings and RNG come from the save
                restored.load(data)
                self.assertEqual(restored.generate(" and then", max_tokens=12), want[1])
        with self.model.session(**settings) as s:
            s.generate("once upon a time", max_tokens=12)
            self.assertGreater(len(s.save(with_kv=True)), len(s.save()))

    def test_a_scheduler_session_saves_and_loads(self) -> None:
        settings, prompt = NPCS[2]
        want = self.alone(settings, prompt, " and then", max_tokens=12)
        with self.model.scheduler() as sched:
            s = sched.session(**settings)
            sched.submit(s, prompt, max_tokens=12)
            sched.run()
            data = s.save(with_kv=True)
            npc = sched.session()
            npc.load(bytearray(data))
            r = sched.submit(npc, " and then", max_tokens=12)
            sched.run()
            self.assertEqual(r.poll(), want[1])
        with self.model.session() as plain:
            plain.load(data)
            self.assertEqual(plain.generate(" and then", max_tokens=12), want[1])

    def test_bad_saves_raise_the_right_error(self) -> None:
        with self.model.session(seed=5) as s:
            s.generate("once upon a time", max_tokens=8)
            data = s.save(with_kv=True)
        with emberlm.Model(other_model) as other, other.session() as s2:
            s2.generate("hello", max_tokens=2)
            n = s2.n_tokens
            with self.assertRaises(InvalidArgumentError) as cm:
                s2.load(data)
            self.assertTrue(str(cm.exception))
            self.assertEqual(s2.n_tokens, n)  # unchanged
        with self.model.session() as s3:
            tampered = bytearray(data)
            tampered[len(data) // 2] ^= 1
            for bad in (data[: len(data) // 2], data[:10], b"", bytes(tampered)):
                with self.assertRaises(BadFormatError) as cm2:
                    s3.load(bad)
                self.assertIsInstance(cm2.exception, EmberError)
                self.assertTrue(str(cm2.exception))
                self.assertEqual(s3.n_tokens, 0)

    def test_invalid_requests(self) -> None:
        with self.model.scheduler() as sched, self.model.scheduler() as other:
            s = sched.session()
            sched.submit(s, "once upon a time", max_tokens=4)
            with self.assertRaises(InvalidArgumentError) as cm:
                sched.submit(s, "again")  # one request per session at a time
            self.assertIn("in progress", str(cm.exception))
            with self.model.session() as plain, self.assertRaises(InvalidArgumentError):
                sched.submit(plain, "x")
            with self.assertRaises(InvalidArgumentError):
                other.submit(s, "x")
            with self.assertRaises(InvalidArgumentError):
                sched.submit(sched.session(), "x", stop=[""])
            # while its request runs, the session is the scheduler's
            for use in (lambda: s.generate("x"), lambda: s.prefill("x"), s.fork, s.save, s.sample, s.reset):
                with self.assertRaises(InvalidArgumentError) as cm:
                    use()
                self.assertIn("request in progress", str(cm.exception))
            sched.run()
            self.assertIsInstance(s.generate("x", max_tokens=2), str)
        self.assertTrue(dataclasses.is_dataclass(emberlm.StepStats))


if __name__ == "__main__":
    unittest.main()
