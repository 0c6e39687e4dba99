"""The emberlm package against a real GGUF model written by `ember make-model`.

Run: /usr/bin/python3 -m unittest discover -s bindings/python/tests -v
(EMBER_LIBRARY and EMBER_CLI may point at a build; otherwise ../../build is used.)
"""
from __future__ import annotations

import logging
import re
import subprocess
import threading
import unittest

from _support import Fixture

import emberlm
from emberlm import (BadFormatError, CancelledError, ContextFullError, EmberError, EmberIOError,
                     InvalidArgumentError)

fx: Fixture


def setUpModule() -> None:
    global fx
    fx = Fixture()


def tearDownModule() -> None:
    fx.cleanup()


PROMPT = "once upon a time"


class TestLibrary(unittest.TestCase):
    def test_versions(self) -> None:
        self.assertEqual(emberlm.abi_version(), 1)
        self.assertRegex(emberlm.library_version(), r"^\d+\.\d+\.\d+")
        self.assertIn(emberlm.cpu_kernels(), {"amx", "avx512bf16", "avx512", "avx2", "sse2", "neon", "scalar"})


class TestModel(unittest.TestCase):
    def test_load_and_info_match_the_cli(self) -> None:
        with emberlm.Model(fx.model, n_threads=2) as m:
            info = m.info
            text = subprocess.run([fx.cli, "info", "-m", fx.model], check=True, capture_output=True).stdout.decode()
            self.assertEqual(info.architecture, re.search(r"architecture: (\S+)", text).group(1))
            self.assertEqual(info.n_params, int(re.search(r"parameters: (\d+)", text).group(1)))
            self.assertEqual(info.n_vocab, int(re.search(r"vocabulary: (\d+)", text).group(1)))
            self.assertEqual(info.n_ctx_train, int(re.search(r"context \(training\): (\d+)", text).group(1)))
            self.assertEqual(info.n_layer, int(re.search(r"layers: (\d+)", text).group(1)))
            self.assertEqual(info.file_size, int(re.search(r"file: (\d+) bytes", text).group(1)))
            self.assertEqual(info.n_tensors, int(re.search(r"(\d+) tensors", text).group(1)))
            self.assertEqual(sum(info.tensor_types.values()), info.n_tensors)
            self.assertIn(info.gguf_version, (2, 3))
            self.assertIsNone(info.chat_template)
            self.assertEqual(info.n_threads, 2)
            self.assertEqual(m.n_vocab, info.n_vocab)
            self.assertEqual(m.bos, 1)
            self.assertTrue(m.is_eog(m.eos))
        self.assertTrue(m.closed)
        with self.assertRaises(InvalidArgumentError):
            m.tokenize("x")
        m.close()  # idempotent

    def test_progress_reports_each_stage(self) -> None:
        seen = []
        emberlm.Model(fx.model, progress=lambda f, stage: seen.append((f, stage))).close()
        self.assertEqual([s for _, s in seen], ["parsed", "weights", "tokenizer", "ready"])
        self.assertEqual([f for f, _ in seen], sorted(f for f, _ in seen))
        self.assertEqual(seen[-1][0], 1.0)

    def test_progress_cancels(self) -> None:
        with self.assertRaises(CancelledError) as cm:
            emberlm.Model(fx.model, progress=lambda f, stage: stage == "weights")
        self.assertIn("cancelled", str(cm.exception))
        self.assertEqual(cm.exception.status_name, "EMBER_ERR_CANCELLED")

        class Stop(Exception):
            pass

        def boom(f: float, stage: str) -> None:
            raise Stop()
        with self.assertRaises(Stop):  # an exception in the callback cancels and comes through
            emberlm.Model(fx.model, progress=boom)

    def test_f16_kv_cache_halves_the_kv_memory(self) -> None:
        with emberlm.Model(fx.model) as m32, emberlm.Model(fx.model, kv_type="f16") as m16:
            s32, s16 = m32.session(n_ctx=64), m16.session(n_ctx=64)
            ids = m32.tokenize("once upon a time")
            s32.eval(ids)
            s16.eval(ids)
            logits = 4 * m32.n_vocab  # memory = KV + the logits
            self.assertEqual((s16.memory - logits) * 2, s32.memory - logits)
            self.assertGreater(s16.memory, logits)
            s32.close()
            s16.close()
        with self.assertRaises(ValueError):
            emberlm.Model(fx.model, kv_type="q8")

    def test_load_warnings_reach_logging(self) -> None:
        with self.assertLogs("emberlm", level="WARNING") as cm:
            emberlm.Model(fx.model, n_threads=255).close()
        self.assertTrue(any("n_threads 255" in line for line in cm.output), cm.output)

    def test_tokenize_round_trip(self) -> None:
        with emberlm.Model(fx.model) as m:
            for text in ["hello world", "once upon a time, there was a cat.", "  spaces  twice ", "héllo wörld ✓ 日本"]:
                ids = m.tokenize(text)
                self.assertEqual(ids[0], m.bos)
                self.assertTrue(all(0 <= t < m.n_vocab for t in ids))
                self.assertEqual(m.detokenize(ids), text)
                self.assertEqual(m.tokenize(text, add_bos=False), ids[1:])
            self.assertEqual(m.tokenize(""), [m.bos])
            pieces = b"".join(m.token_to_piece(t) for t in m.tokenize("hello world", add_bos=False))
            self.assertEqual(pieces.decode().strip(), "hello world")
            long = "abc " * 500  # more tokens than a first guess at the buffer
            self.assertEqual(m.detokenize(m.tokenize(long)), long)


class TestGeneration(unittest.TestCase):
    def setUp(self) -> None:
        self.model = emberlm.Model(fx.model)

    def tearDown(self) -> None:
        self.model.close()

    def test_greedy_equals_the_c_cli(self) -> None:
        with self.model.session(temperature=0) as s:
            text = s.generate(PROMPT, max_tokens=24)
        self.assertTrue(text)
        self.assertEqual(text, fx.cli_run(PROMPT, 24, ["--temp", "0"]))

    def test_seeded_sampling_equals_the_c_cli(self) -> None:
        with self.model.session(seed=7, temperature=0.9) as s:
            text = s.generate(PROMPT, max_tokens=24)
        self.assertEqual(text, fx.cli_run(PROMPT, 24, ["--temp", "0.9", "--seed", "7"]))

    def test_metrics(self) -> None:
        with self.model.session(temperature=0) as s:
            s.generate(PROMPT, max_tokens=10)
            m = s.metrics
            self.assertEqual(m.n_generated_tokens, 10)
            self.assertGreater(m.n_prompt_tokens, 1)
            self.assertGreater(m.ttft_ms, 0)
            self.assertGreaterEqual(m.total_ms, m.ttft_ms)
            self.assertEqual(m.finish_reason, "max_tokens")

    def test_streaming_yields_the_same_text(self) -> None:
        with self.model.session(seed=3) as s:
            whole = s.generate(PROMPT, max_tokens=20)
        with self.model.session(seed=3) as s:
            stream = s.generate(PROMPT, max_tokens=20, stream=True)
            pieces = list(stream)
            self.assertGreater(len(pieces), 1)
            self.assertEqual("".join(pieces), whole)
            self.assertEqual(stream.text, whole)
            self.assertEqual(stream.metrics.finish_reason, "max_tokens")
            self.assertEqual(s.metrics.n_generated_tokens, 20)

    def test_breaking_out_of_a_stream_cancels_it(self) -> None:
        with self.model.session(temperature=0) as s:
            got = []
            for piece in s.generate(PROMPT, max_tokens=200, stream=True):
                got.append(piece)
                if len(got) == 3:
                    break
            # the break alone stopped the worker (no other call on the session yet)
            self.assertEqual([t for t in threading.enumerate() if t.name == "emberlm-generate"], [])
            # the generation stopped right there, and the session works on
            m = s.metrics
            self.assertEqual(m.finish_reason, "cancelled")
            # at most the stream's lookahead (and the piece in flight) past what was read
            self.assertLessEqual(m.n_generated_tokens, 3 + emberlm.TextStream.LOOKAHEAD + 1)
            n = s.n_tokens
            self.assertEqual(n, m.n_prompt_tokens + m.n_generated_tokens)
            more = s.generate(" and then", max_tokens=5)
            self.assertIsInstance(more, str)
            self.assertEqual(s.metrics.finish_reason, "max_tokens")
            self.assertGreater(s.n_tokens, n)

    def test_closing_a_stream_cancels_it(self) -> None:
        with self.model.session(temperature=0) as s:
            with s.generate(PROMPT, max_tokens=200, stream=True) as stream:
                first = next(stream)
                self.assertIsInstance(first, str)
            self.assertEqual(s.metrics.finish_reason, "cancelled")
            # a new call on the session also cancels a stream left open
            left_open = s.generate(PROMPT, max_tokens=200, stream=True)
            next(left_open)
            self.assertEqual(s.generate("x", max_tokens=2).__class__, str)
            self.assertEqual(list(left_open), [])

    def test_stop_strings(self) -> None:
        with self.model.session(seed=5) as s:
            full = s.generate(PROMPT, max_tokens=30)
        self.assertGreater(len(full), 8)
        stop = full[len(full) // 2: len(full) // 2 + 2]
        with self.model.session(seed=5) as s:
            cut = s.generate(PROMPT, max_tokens=30, stop=[stop])
            self.assertEqual(cut, full[: full.index(stop)])
            self.assertEqual(s.metrics.finish_reason, "stop")

    def test_token_level_loop_equals_generate(self) -> None:
        with self.model.session(temperature=0) as s:
            ref = s.generate(PROMPT, max_tokens=12)
        with self.model.session(temperature=0) as s:
            s.eval(self.model.tokenize(PROMPT))
            out = []
            for i in range(12):
                logits = s.logits()
                self.assertEqual(len(logits), self.model.n_vocab)
                t = s.sample()
                self.assertEqual(t, max(range(len(logits)), key=logits.__getitem__))
                if self.model.is_eog(t):
                    break
                out.append(t)
                if i % 2:
                    s.eval([t])
                else:
                    s.accept(t)
                    self.assertEqual(s.n_evaluated, s.n_tokens - 1)
                    with self.assertRaises(InvalidArgumentError):
                        s.logits()
                    s.eval([])
            # generated text continues the prompt: the pieces as they are (detokenize
            # would drop the leading space of a first "▁word" piece, as SentencePiece does)
            text = b"".join(self.model.token_to_piece(t) for t in out).decode("utf-8", "replace")
            self.assertEqual(text, ref)

    def test_a_session_outlives_its_model_handle(self) -> None:
        m2 = emberlm.Model(fx.model)
        with m2.session(temperature=0) as s:
            m2.close()
            self.assertEqual(s.generate(PROMPT, max_tokens=24), fx.cli_run(PROMPT, 24, ["--temp", "0"]))
            s.eval([5])
            self.assertEqual(len(s.logits()), 512)

    def test_two_sessions_on_two_threads(self) -> None:
        results = {}

        def run(k: int) -> None:
            with self.model.session(seed=k) as s:
                results[k] = s.generate(PROMPT, max_tokens=16)
        threads = [threading.Thread(target=run, args=(k,)) for k in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for k in (1, 2):
            with self.model.session(seed=k) as s:
                self.assertEqual(results[k], s.generate(PROMPT, max_tokens=16))


class TestErrors(unittest.TestCase):
    def test_missing_file(self) -> None:
        with self.assertRaises(EmberIOError) as cm:
            emberlm.Model(fx.dir / "missing.gguf")
        e = cm.exception
        self.assertIsInstance(e, EmberError)
        self.assertIsInstance(e, OSError)
        self.assertIn("missing.gguf", str(e))
        self.assertEqual(e.status, 2)

    def test_corrupt_file(self) -> None:
        with self.assertRaises(BadFormatError) as cm:
            emberlm.Model(fx.corrupt)
        self.assertIn("magic", str(cm.exception))
        with self.assertRaises(BadFormatError) as cm:
            emberlm.Model(fx.truncated)
        self.assertTrue(str(cm.exception))

    def test_invalid_arguments(self) -> None:
        with emberlm.Model(fx.model) as m:
            with self.assertRaises(InvalidArgumentError) as cm:
                m.detokenize([1, 100000])
            self.assertIn("100000", str(cm.exception))
            self.assertIsInstance(cm.exception, ValueError)
            with self.assertRaises(InvalidArgumentError):
                m.session(temperature=float("nan"))
            with self.assertRaises(InvalidArgumentError):
                m.session(n_batch=0)
            with m.session() as s:
                with self.assertRaises(InvalidArgumentError):
                    s.sample()  # no logits yet
                with self.assertRaises(InvalidArgumentError) as cm:
                    s.eval([5, -1])
                self.assertIn("-1", str(cm.exception))
                self.assertEqual(s.n_tokens, 0)  # unchanged
                with self.assertRaises(InvalidArgumentError):
                    s.generate(PROMPT, stop=[""])
            with self.assertRaises(InvalidArgumentError):
                s.generate(PROMPT)  # closed

    def test_context_full(self) -> None:
        with emberlm.Model(fx.model) as m, m.session(n_ctx=8) as s:
            with self.assertRaises(ContextFullError) as cm:
                s.generate("once upon a time there was a little girl and a little boy")
            self.assertIn("context", str(cm.exception))
            self.assertEqual(s.n_tokens, 0)

    def test_errors_in_a_stream_reach_the_consumer(self) -> None:
        with emberlm.Model(fx.model) as m, m.session(n_ctx=8) as s:
            stream = s.generate("once upon a time there was a little girl and a little boy", stream=True)
            with self.assertRaises(ContextFullError):
                list(stream)


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
