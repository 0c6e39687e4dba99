'use strict';
// The emberlm package against a real GGUF model written by `ember make-model`.
// Run: cd bindings/node && npm install && npm test
// (EMBER_LIBRARY and EMBER_CLI may point at a build; otherwise ../../build is used.)
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const emberlm = require('..');
const { Model, EmberError } = emberlm;

const REPO = path.resolve(__dirname, '..', '..', '..');
const CLI = process.env.EMBER_CLI || path.join(REPO, 'build', 'ember');
const PROMPT = 'once upon a time';
let dir, modelPath, corruptPath, truncatedPath;

function cliRun(prompt, n, extra) {
  const out = execFileSync(CLI, ['--quiet', 'run', '-m', modelPath, '-p', prompt, '-n', String(n), ...extra]).toString('utf8');
  assert.ok(out.startsWith(prompt) && out.endsWith('\n'), out);
  return out.slice(prompt.length, -1);
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emberlm-node-'));
  modelPath = path.join(dir, 'tiny.gguf');
  execFileSync(CLI, ['--quiet', 'make-model', modelPath]);
  corruptPath = path.join(dir, 'corrupt.gguf');
  fs.writeFileSync(corruptPath, 'this is not a GGUF file at all'.repeat(10));
  truncatedPath = path.join(dir, 'truncated.gguf');
  const data = fs.readFileSync(modelPath);
  fs.writeFileSync(truncatedPath, data.subarray(0, Math.floor(data.length / 3)));
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function withModel(fnBody, opts) {
  const m = await Model.load(modelPath, opts);
  try {
    return await fnBody(m);
  } finally {
    m.close();
  }
}

describe('library', () => {
  test('versions', () => {
    assert.equal(emberlm.abiVersion(), 1);
    assert.match(emberlm.version(), /^\d+\.\d+\.\d+/);
    assert.ok(['amx', 'avx512bf16', 'avx512', 'avx2', 'sse2', 'neon', 'scalar'].includes(emberlm.cpuKernels()));
  });
});

describe('model', () => {
  test('load and info match the CLI', () => withModel((m) => {
    const info = m.info;
    const text = execFileSync(CLI, ['info', '-m', modelPath]).toString();
    assert.equal(info.architecture, /architecture: (\S+)/.exec(text)[1]);
    assert.equal(info.nParams, Number(/parameters: (\d+)/.exec(text)[1]));
    assert.equal(info.nVocab, Number(/vocabulary: (\d+)/.exec(text)[1]));
    assert.equal(info.nCtxTrain, Number(/context \(training\): (\d+)/.exec(text)[1]));
    assert.equal(info.nLayer, Number(/layers: (\d+)/.exec(text)[1]));
    assert.equal(info.fileSize, Number(/file: (\d+) bytes/.exec(text)[1]));
    assert.equal(info.nTensors, Number(/(\d+) tensors/.exec(text)[1]));
    assert.equal(Object.values(info.tensorTypes).reduce((a, b) => a + b, 0), info.nTensors);
    assert.equal(info.chatTemplate, null);
    assert.equal(info.nThreads, 2);
    assert.equal(m.nVocab, info.nVocab);
    assert.equal(m.bos, 1);
    assert.ok(m.isEog(m.eos));
    m.close();
    assert.ok(m.closed);
    assert.throws(() => m.tokenize('x'), (e) => e instanceof EmberError && e.code === 'EMBER_ERR_INVALID_ARGUMENT');
  }, { threads: 2 }));

  test('progress reports each stage', async () => {
    const seen = [];
    await withModel(() => {}, { onProgress: (p, stage) => { seen.push([p, stage]); } });
    assert.deepEqual(seen.map((s) => s[1]), ['parsed', 'weights', 'tokenizer', 'ready']);
    assert.equal(seen.at(-1)[0], 1);
  });

  test('an AbortSignal cancels a load', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(Model.load(modelPath, { signal: ac.signal }), (e) => e.name === 'AbortError' && e.status === 7);
    // a signal aborted by the first progress report stops the load at the next stage
    const ac2 = new AbortController();
    await assert.rejects(Model.load(modelPath, { signal: ac2.signal, onProgress: () => ac2.abort() }),
      (e) => e.name === 'AbortError' && /cancelled/.test(e.message));
    // so does onProgress returning true (an EmberError with status EMBER_ERR_CANCELLED), or throwing
    await assert.rejects(Model.load(modelPath, { onProgress: (p, stage) => stage === 'weights' }),
      (e) => e instanceof EmberError && e.code === 'EMBER_ERR_CANCELLED' && /after stage 'weights'/.test(e.message));
    await assert.rejects(Model.load(modelPath, { onProgress: () => { throw new RangeError('mine'); } }),
      (e) => e instanceof RangeError && e.message === 'mine');
  });

  test('an f16 KV cache halves the KV memory', async () => {
    await assert.rejects(Model.load(modelPath, { kvType: 'q8' }), (e) => e instanceof EmberError && /kvType/.test(e.message));
    await withModel(async (m32) => withModel(async (m16) => {
      const s32 = m32.session({ nCtx: 64 }), s16 = m16.session({ nCtx: 64 });
      try {
        const ids = m32.tokenize('once upon a time');
        await s32.eval(ids);
        await s16.eval(ids);
        const logits = 4 * m32.nVocab; // memory = KV + the logits
        assert.ok(s16.memory > logits);
        assert.equal((s16.memory - logits) * 2, s32.memory - logits);
      } finally {
        s32.close();
        s16.close();
      }
    }, { kvType: 'f16' }));
  });

  test('load warnings reach the logger', async () => {
    const lines = [];
    emberlm.setLogger((level, message) => lines.push([level, message]));
    try {
      await withModel(() => {}, { threads: 255 });
    } finally {
      emberlm.setLogger(null);
    }
    assert.ok(lines.some(([level, msg]) => level === 'warn' && msg.includes('n_threads 255')), JSON.stringify(lines));
    assert.ok(lines.some(([level, msg]) => level === 'info' && msg.includes('loaded')));
  });

  test('tokenize round trip', () => withModel((m) => {
    for (const text of ['hello world', 'once upon a time, there was a cat.', '  spaces  twice ', 'héllo wörld ✓ 日本']) {
      const ids = m.tokenize(text);
      assert.equal(ids[0], m.bos);
      assert.ok(ids.every((t) => t >= 0 && t < m.nVocab));
      assert.equal(m.detokenize(ids), text);
      assert.deepEqual(m.tokenize(text, { addBos: false }), ids.slice(1));
    }
    assert.deepEqual(m.tokenize(''), [m.bos]);
    const pieces = Buffer.concat(m.tokenize('hello world', { addBos: false }).map((t) => m.tokenToPiece(t)));
    assert.equal(pieces.toString().trim(), 'hello world');
    const long = 'abc '.repeat(500);
    assert.equal(m.detokenize(m.tokenize(long)), long);
  }));
});

describe('generation', () => {
  let m;
  before(async () => { m = await Model.load(modelPath); });
  after(() => m.close());

  test('greedy output equals the C CLI', async () => {
    const s = m.session({ temperature: 0 });
    const text = await s.generate(PROMPT, { maxTokens: 24 });
    s.close();
    assert.ok(text.length > 0);
    assert.equal(text, cliRun(PROMPT, 24, ['--temp', '0']));
  });

  test('seeded sampling equals the C CLI', async () => {
    const s = m.session({ seed: 7, temperature: 0.9 });
    const text = await s.generate(PROMPT, { maxTokens: 24 });
    s.close();
    assert.equal(text, cliRun(PROMPT, 24, ['--temp', '0.9', '--seed', '7']));
  });

  test('metrics', async () => {
    const s = m.session({ temperature: 0 });
    assert.equal(s.metrics, null);
    await s.generate(PROMPT, { maxTokens: 10 });
    const mt = s.metrics;
    assert.equal(mt.nGeneratedTokens, 10);
    assert.ok(mt.nPromptTokens > 1);
    assert.ok(mt.ttftMs > 0 && mt.totalMs >= mt.ttftMs);
    assert.equal(mt.finishReason, 'max_tokens');
    s.close();
  });

  test('streaming yields the same text, off the JavaScript thread', async () => {
    const a = m.session({ seed: 3 });
    const whole = await a.generate(PROMPT, { maxTokens: 20 });
    a.close();
    const b = m.session({ seed: 3 });
    const pieces = [];
    const stream = b.stream(PROMPT, { maxTokens: 20 });
    let underway = null;
    for await (const piece of stream) {
      if (pieces.push(piece) === 1) {
        // The worker runs at most TextStream.LOOKAHEAD (8) pieces ahead of
        // this loop: while the loop holds back, the event loop turns and the
        // generation is still under way on the worker (never finished, never
        // blocking this thread).
        for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
        underway = stream.metrics === null;
      }
    }
    assert.equal(underway, true, 'the generation waited for the consumer, off the JavaScript thread');
    assert.ok(pieces.length > 1);
    assert.equal(pieces.join(''), whole);
    assert.equal(stream.text, whole);
    assert.equal(stream.metrics.finishReason, 'max_tokens');
    assert.equal(b.metrics.nGeneratedTokens, 20);
    b.close();
  });

  test('breaking out of a stream cancels it; the session goes on', async () => {
    const s = m.session({ temperature: 0 });
    const got = [];
    for await (const piece of s.stream(PROMPT, { maxTokens: 200 })) {
      got.push(piece);
      if (got.length === 3) break;
    }
    const mt = s.metrics;
    assert.equal(mt.finishReason, 'cancelled');
    assert.ok(mt.nGeneratedTokens <= 3 + emberlm.TextStream.LOOKAHEAD + 1, `${mt.nGeneratedTokens}`);
    const n = s.nTokens;
    assert.equal(n, mt.nPromptTokens + mt.nGeneratedTokens);
    const more = await s.generate(' and then', { maxTokens: 5 });
    assert.equal(typeof more, 'string');
    assert.equal(s.metrics.finishReason, 'max_tokens');
    assert.ok(s.nTokens > n);
    s.close();
  });

  test('an AbortSignal cancels generate and stream', async () => {
    const s = m.session({ seed: 1 });
    const ac = new AbortController();
    let pieces = 0;
    await assert.rejects(s.generate(PROMPT, { maxTokens: 200, signal: ac.signal, onPiece: () => { if (++pieces === 4) ac.abort(); } }),
      (e) => e instanceof EmberError && e.name === 'AbortError' && e.code === 'EMBER_ERR_CANCELLED');
    assert.equal(s.metrics.finishReason, 'cancelled');
    assert.ok(s.metrics.nGeneratedTokens < 200);
    const ac2 = new AbortController();
    await assert.rejects(async () => {
      for await (const piece of s.stream(' more', { maxTokens: 200, signal: ac2.signal })) {
        assert.equal(typeof piece, 'string');
        ac2.abort();
      }
    }, (e) => e.name === 'AbortError');
    assert.equal(await s.generate('!', { maxTokens: 3 }).then((t) => typeof t), 'string');
    s.close();
  });

  test('a new request cancels a stream left open', async () => {
    const s = m.session({ temperature: 0 });
    const left = s.stream(PROMPT, { maxTokens: 200 });
    await left.next();
    const text = await s.generate('x', { maxTokens: 2 });
    assert.equal(typeof text, 'string');
    await left.finished;
    assert.ok((await left.next()).done);
    s.close();
  });

  test('stop strings', async () => {
    const a = m.session({ seed: 5 });
    const full = await a.generate(PROMPT, { maxTokens: 30 });
    a.close();
    assert.ok(full.length > 8);
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    const b = m.session({ seed: 5 });
    const cut = await b.generate(PROMPT, { maxTokens: 30, stop: [stop] });
    assert.equal(cut, full.slice(0, full.indexOf(stop)));
    assert.equal(b.metrics.finishReason, 'stop');
    b.close();
  });

  test('the token-level loop equals generate', async () => {
    const a = m.session({ temperature: 0 });
    const ref = await a.generate(PROMPT, { maxTokens: 12 });
    a.close();
    const s = m.session({ temperature: 0 });
    await s.eval(m.tokenize(PROMPT));
    const out = [];
    for (let i = 0; i < 12; ++i) {
      const logits = s.logits();
      assert.equal(logits.length, m.nVocab);
      const t = s.sample();
      let best = 0;
      for (let k = 1; k < logits.length; ++k) if (logits[k] > logits[best]) best = k;
      assert.equal(t, best);
      if (m.isEog(t)) break;
      out.push(t);
      if (i % 2) {
        await s.eval([t]);
      } else {
        s.accept(t);
        assert.equal(s.nEvaluated, s.nTokens - 1);
        assert.throws(() => s.logits(), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
        await s.eval([]);
      }
    }
    // generated text continues the prompt: the pieces as they are (detokenize
    // drops the leading space of a first "▁word" piece, as SentencePiece does)
    assert.equal(Buffer.concat(out.map((t) => m.tokenToPiece(t))).toString('utf8'), ref);
    s.close();
  });

  test('a session outlives its model handle; close() cancels a generation', async () => {
    const m2 = await Model.load(modelPath);
    const s = m2.session({ temperature: 0 });
    m2.close();
    assert.equal(await s.generate(PROMPT, { maxTokens: 24 }), cliRun(PROMPT, 24, ['--temp', '0']));
    let pieces = 0;
    const running = s.generate(' more', { maxTokens: 200, onPiece: () => { if (++pieces === 2) s.close(); } });
    await assert.rejects(running, (e) => e.name === 'AbortError');
    assert.ok(s.metrics.nGeneratedTokens < 200);
    assert.ok(s.closed);
  });

  test('two sessions generate at once', async () => {
    const runs = [1, 2].map(async (seed) => {
      const s = m.session({ seed });
      try { return await s.generate(PROMPT, { maxTokens: 16 }); } finally { s.close(); }
    });
    const [x, y] = await Promise.all(runs);
    for (const [seed, text] of [[1, x], [2, y]]) {
      const s = m.session({ seed });
      assert.equal(await s.generate(PROMPT, { maxTokens: 16 }), text);
      s.close();
    }
  });
});

describe('errors', () => {
  test('missing file', async () => {
    await assert.rejects(Model.load(path.join(dir, 'missing.gguf')), (e) =>
      e instanceof Error && e instanceof EmberError && e.code === 'EMBER_ERR_IO' && e.status === 2 &&
      e.message.includes('missing.gguf'));
  });

  test('corrupt file', async () => {
    await assert.rejects(Model.load(corruptPath), (e) => e.code === 'EMBER_ERR_BAD_FORMAT' && /magic/.test(e.message));
    await assert.rejects(Model.load(truncatedPath), (e) => e.code === 'EMBER_ERR_BAD_FORMAT' && e.message.length > 0);
  });

  test('invalid arguments', () => withModel(async (m) => {
    assert.throws(() => m.detokenize([1, 100000]), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT' && e.message.includes('100000'));
    assert.throws(() => m.session({ temperature: NaN }), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    assert.throws(() => m.session({ nBatch: 0 }), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    assert.throws(() => m.session({ colour: 'blue' }), /unknown session option/);
    const s = m.session();
    assert.throws(() => s.sample(), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    await assert.rejects(s.eval([5, -1]), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT' && e.message.includes('-1'));
    assert.equal(s.nTokens, 0);
    await assert.rejects(s.generate(PROMPT, { stop: [''] }), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    s.close();
    await assert.rejects(async () => s.generate(PROMPT), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
  }));

  test('context full', () => withModel(async (m) => {
    const s = m.session({ nCtx: 8 });
    await assert.rejects(s.generate('once upon a time there was a little girl and a little boy'),
      (e) => e.code === 'EMBER_ERR_CONTEXT_FULL' && /context/.test(e.message));
    assert.equal(s.nTokens, 0);
    await assert.rejects(async () => {
      for await (const _ of s.stream('once upon a time there was a little girl and a little boy')) { /* none */ }
    }, (e) => e.code === 'EMBER_ERR_CONTEXT_FULL');
    s.close();
  }));
});

describe('many sessions: scheduler, forks, savegames', () => {
  // The test model's logits are steep: a hot, unfiltered sampler makes each seed's text its own.
  const HOT = { temperature: 8, topK: 0, topP: 1, minP: 0 };
  const LORE = 'once upon a time there was a little girl who lived in a village near the forest. ' +
    'every day she walked to the river with her dog, and every day the old miller waved at her.';
  const NPCS = [ // [options, prompt]: two greedy, two seeded
    [{ temperature: 0 }, 'once upon a time'],
    [{ temperature: 0 }, 'the little dog ran'],
    [{ seed: 1, ...HOT }, 'once upon a time'],
    [{ seed: 2, ...HOT }, 'the old miller said'],
  ];
  let m, otherPath;
  before(async () => {
    m = await Model.load(modelPath);
    otherPath = path.join(dir, 'other.gguf'); // same shape, other weights: another content hash
    execFileSync(CLI, ['--quiet', 'make-model', otherPath, '--seed', '2']);
  });
  after(() => m.close());

  // What a plain session says to each prompt in turn.
  async function alone(options, prompts, maxTokens = 16) {
    const s = m.session(options);
    try {
      const out = [];
      for (const p of prompts) out.push(await s.generate(p, { maxTokens }));
      return out;
    } finally {
      s.close();
    }
  }

  test('four sessions through a scheduler give the text each gives alone', async () => {
    const sched = m.scheduler({ maxBatchTokens: 64, prefillChunk: 8 });
    const sessions = NPCS.map(([o]) => sched.session(o));
    const reqs = sessions.map((s, i) => sched.submit(s, NPCS[i][1], { maxTokens: 16 }));
    assert.ok(reqs.every((r) => r.state === 'queued'));
    const texts = reqs.map(() => '');
    for (let frame = 0; frame < 10000 && !reqs.every((r) => r.finished); ++frame) {
      const st = sched.step(2);
      assert.equal(typeof st.paused, 'boolean');
      reqs.forEach((r, i) => { texts[i] += r.poll(); });
    }
    for (const [i, r] of reqs.entries()) {
      assert.equal(r.state, 'done');
      assert.equal(r.text, texts[i]);
      assert.equal(r.metrics.finishReason, 'max_tokens');
      assert.equal(r.metrics.nGeneratedTokens, 16);
      assert.equal(r.error, null);
      r.release();
    }
    // a second turn, awaited with run(): each conversation goes on as it would alone
    const second = sessions.map((s) => sched.submit(s, ' and then', { maxTokens: 8 }));
    // a budget this small makes each step one layer (at least one always
    // runs), so there are many steps, with the event loop turning between them
    let ticks = 0, live = true;
    const tick = () => { ticks++; if (live) setImmediate(tick); };
    setImmediate(tick);
    await sched.run({ budgetMs: 0.001 });
    live = false;
    assert.ok(ticks > 1, 'the event loop ran between steps');
    for (const [i, [o, prompt]] of NPCS.entries()) {
      const s = m.session(o);
      assert.deepEqual([texts[i], second[i].poll()], [await s.generate(prompt, { maxTokens: 16 }), await s.generate(' and then', { maxTokens: 8 })]);
      s.close();
    }
    assert.equal(new Set(texts).size, texts.length); // the four NPCs say different things
    sessions.forEach((s) => s.close());
    sched.close();
  });

  test('iterating a request steps the scheduler; break cancels it', async () => {
    const [o, prompt] = NPCS[2];
    const sched = m.scheduler();
    const s = sched.session(o);
    const r = sched.submit(s, prompt, { maxTokens: 16, priority: 5 });
    const pieces = [];
    for await (const piece of r) pieces.push(piece);
    assert.ok(pieces.length >= 1);
    assert.equal(pieces.join(''), (await alone(o, [prompt]))[0]);
    assert.equal(r.state, 'done');
    r.release();
    assert.throws(() => r.poll(), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT' && /released/.test(e.message));
    const r2 = sched.submit(s, ' more', { maxTokens: 200 });
    for await (const piece of r2) { assert.equal(typeof piece, 'string'); break; }
    sched.step(0);
    // cancelled, unless the model had already ended the reply by itself
    assert.ok(r2.state === 'cancelled' || (r2.state === 'done' && r2.metrics.finishReason === 'eos'), r2.state);
    // an AbortSignal cancels at the next step; the loop throws an AbortError
    // (steps of one layer each, so the tiny model cannot finish the whole
    // reply within the step that delivers its first piece)
    const ac = new AbortController();
    const r3 = sched.submit(s, ' again', { maxTokens: 200, signal: ac.signal });
    const pump = emberlm.Scheduler.PUMP_BUDGET_MS;
    emberlm.Scheduler.PUMP_BUDGET_MS = 0.001;
    try {
      await assert.rejects(async () => { for await (const _ of r3) ac.abort(); }, (e) => e.name === 'AbortError');
    } finally {
      emberlm.Scheduler.PUMP_BUDGET_MS = pump;
    }
    assert.equal(r3.metrics.finishReason, 'cancelled');
    s.close();
    sched.close();
  });

  test('a fork over a shared prefix equals a cold session and shares its KV memory', async () => {
    const endings = [' and the boy', ' and the day', ' and the cat'];
    const sched = m.scheduler();
    const base = sched.session({ seed: 3, ...HOT });
    await base.prefill(LORE);
    assert.ok(base.nTokens > 64);
    const kvPrefix = sched.kvBytes;
    assert.ok(kvPrefix > 0);
    const forks = endings.map(() => base.fork());
    assert.ok(forks.every((f) => f.scheduler === sched && f.nTokens === base.nTokens));
    assert.equal(sched.kvBytes, kvPrefix); // copy-on-write: the prefix is not copied
    const reqs = forks.map((f, i) => sched.submit(f, endings[i], { maxTokens: 12 }));
    await sched.run();
    assert.ok(sched.kvBytes < kvPrefix + forks.length * kvPrefix / 2, `${sched.kvBytes} vs ${kvPrefix}`);
    for (const [i, r] of reqs.entries()) {
      // a cold session given the same prompt: the lore, then the ending (a continuation is
      // tokenized on its own, so LORE + ending as one string would be other tokens)
      const cold = m.session({ seed: 3, ...HOT });
      await cold.prefill(LORE);
      assert.equal(r.poll(), await cold.generate(endings[i], { maxTokens: 12 }));
      cold.close();
    }
    // a plain session forks too
    const s = m.session({ seed: 4, ...HOT });
    await s.prefill(LORE);
    const f = s.fork();
    assert.equal(f.scheduler, null);
    assert.equal(await f.generate(' and the boy', { maxTokens: 10 }), await s.generate(' and the boy', { maxTokens: 10 }));
    for (const x of [s, f, base, ...forks]) x.close();
    sched.close();
  });

  test('a tiny budget pauses a pass and still finishes', async () => {
    const [o, prompt] = NPCS[3];
    const sched = m.scheduler();
    const r = sched.submit(sched.session(o), LORE + prompt, { maxTokens: 16 });
    let paused = 0, steps = 0, text = '';
    while (!r.finished && steps++ < 100000) {
      const st = sched.step(0.001); // far less than a layer: one layer per step
      assert.ok(st.layers <= 2);
      if (st.paused) paused++;
      text += r.poll();
    }
    assert.ok(paused > 0);
    assert.equal(r.state, 'done');
    assert.equal(text, (await alone(o, [LORE + prompt]))[0]);
    r.session.close();
    sched.close();
  });

  test('cancel takes effect at the next step', () => {
    const sched = m.scheduler();
    const s = sched.session({ temperature: 0 });
    const r = sched.submit(s, PROMPT, { maxTokens: 200 });
    sched.step(0);
    sched.step(0);
    assert.equal(r.state, 'running');
    r.cancel();
    assert.equal(r.state, 'running'); // not yet
    sched.step(0);
    assert.equal(r.state, 'cancelled');
    const mt = r.metrics;
    assert.equal(mt.finishReason, 'cancelled');
    assert.ok(mt.nGeneratedTokens < 200);
    assert.equal(s.nTokens, mt.nPromptTokens + mt.nGeneratedTokens); // what it made stays
    r.release();
    // releasing one still running cancels it and frees it once it has stopped
    const r2 = sched.submit(s, ' more', { maxTokens: 200 });
    sched.step(0);
    r2.release();
    assert.deepEqual([...sched._orphans.keys()], [r2.id]);
    sched.step(0);
    assert.equal(sched._orphans.size, 0);
    s.close();
    sched.close();
  });

  test('the scheduler owns a session while its request runs; worker calls pause steps', async () => {
    const sched = m.scheduler();
    const s = sched.session();
    const other = sched.session({ temperature: 0 });
    sched.submit(s, PROMPT, { maxTokens: 4 });
    const owned = (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT' && /request in progress/.test(e.message);
    await assert.rejects(s.generate('x'), owned);
    await assert.rejects(s.prefill('x'), owned);
    for (const use of [() => s.fork(), () => s.save(), () => s.sample(), () => s.reset()]) assert.throws(use, owned);
    assert.throws(() => sched.submit(s, 'again'), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT' && /in progress/.test(e.message));
    // while a session of the scheduler runs on the worker, a step does nothing
    const running = other.generate(PROMPT, { maxTokens: 64 });
    while (!sched._busy) await null; // (microtasks only: the worker's answer cannot arrive meanwhile)
    assert.deepEqual(sched.step(0), { entries: 0, layers: 0, tokensGenerated: 0, paused: false, ms: 0 });
    assert.throws(() => sched.session(), /busy on the worker/);
    await running;
    await sched.run();
    assert.equal(typeof await s.generate('x', { maxTokens: 2 }), 'string');
    s.close();
    other.close();
    sched.close();
  });

  test('a failed request has the library message', async () => {
    const sched = m.scheduler({ kvMaxTokens: 32 }); // one page of KV memory: a long prompt cannot fit
    const r = sched.submit(sched.session(), LORE, { maxTokens: 8 });
    await sched.run();
    assert.equal(r.state, 'failed');
    assert.match(r.error, /KV memory/);
    const r2 = sched.submit(sched.session(), LORE, { maxTokens: 8 });
    await assert.rejects(async () => { for await (const _ of r2) { /* none */ } },
      (e) => e instanceof EmberError && e.message === r2.error && e.code === 'EMBER_ERR_UNKNOWN');
    sched.close();
  });

  test('closing the scheduler leaves plain sessions', async () => {
    const sched = m.scheduler();
    const s = sched.session({ temperature: 0 });
    const r = sched.submit(s, PROMPT, { maxTokens: 4 });
    sched.close();
    sched.close(); // idempotent
    assert.ok(sched.closed);
    assert.throws(() => r.poll(), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    assert.throws(() => sched.step(1), /scheduler is closed/);
    // the submitted prompt stayed in the conversation (never evaluated): a plain
    // session holding the same tokens continues the same way
    const ref = m.session({ temperature: 0 });
    await ref.eval(m.tokenize(PROMPT));
    const want = await ref.generate('x', { maxTokens: 3 });
    ref.close();
    assert.equal(await s.generate('x', { maxTokens: 3 }), want);
    s.close();
    r.release(); // nothing left to free
  });

  test('session options: overflowPolicy and nKeep', async () => {
    for (const policy of ['shift', 'shiftFast']) {
      const shift = m.session({ nCtx: 32, overflowPolicy: policy, nKeep: -1, temperature: 0 });
      await shift.generate(PROMPT, { maxTokens: 60 });
      assert.equal(shift.metrics.finishReason, 'max_tokens', policy);
      assert.ok(shift.nTokens <= 32);
      assert.ok(shift.metrics.nContextShifts > 0, policy);
      shift.close();
    }
    const error = m.session({ nCtx: 32, overflowPolicy: 'error', temperature: 0 });
    await error.generate(PROMPT, { maxTokens: 60 });
    assert.equal(error.metrics.finishReason, 'context_full');
    error.close();
    assert.throws(() => m.session({ overflowPolicy: 'wrap' }), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    assert.throws(() => m.scheduler({ colour: 'blue' }), /unknown scheduler option/);
    assert.throws(() => m.scheduler({ maxBatchTokens: 0 }), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
  });

  test('save, load into a fresh session, continue: equals an uninterrupted run', async () => {
    const o = { seed: 11, ...HOT };
    const want = await alone(o, [PROMPT, ' and then'], 12);
    for (const withKv of [false, true]) {
      const s = m.session(o);
      assert.equal(await s.generate(PROMPT, { maxTokens: 12 }), want[0]);
      const data = s.save({ withKv });
      assert.ok(Buffer.isBuffer(data));
      s.close();
      const restored = m.session({ seed: 999 }); // settings and RNG come from the save
      restored.load(data);
      assert.equal(await restored.generate(' and then', { maxTokens: 12 }), want[1]);
      restored.close();
    }
    // a scheduler's session saves, and its save loads into another scheduler session or a plain one
    const sched = m.scheduler();
    const s = sched.session(o);
    sched.submit(s, PROMPT, { maxTokens: 12 });
    await sched.run();
    const data = s.save({ withKv: true });
    assert.ok(data.length > s.save().length);
    const npc = sched.session();
    npc.load(new Uint8Array(data));
    const r = sched.submit(npc, ' and then', { maxTokens: 12 });
    await sched.run();
    assert.equal(r.poll(), want[1]);
    sched.close();
    const plain = m.session();
    plain.load(data);
    assert.equal(await plain.generate(' and then', { maxTokens: 12 }), want[1]);
    for (const x of [s, npc, plain]) x.close();
  });

  test('a truncated, tampered or other-model save is the right error', async () => {
    const s = m.session({ seed: 5 });
    await s.generate(PROMPT, { maxTokens: 8 });
    const data = s.save({ withKv: true });
    s.close();
    const other = await Model.load(otherPath);
    const s2 = other.session();
    await s2.generate('hello', { maxTokens: 2 });
    const n = s2.nTokens;
    assert.throws(() => s2.load(data), (e) => e instanceof EmberError && e.code === 'EMBER_ERR_INVALID_ARGUMENT' && e.message.length > 0);
    assert.equal(s2.nTokens, n); // unchanged
    s2.close();
    other.close();
    const s3 = m.session();
    const tampered = Buffer.from(data);
    tampered[data.length >> 1] ^= 1;
    for (const bad of [data.subarray(0, data.length >> 1), data.subarray(0, 10), Buffer.alloc(0), tampered]) {
      assert.throws(() => s3.load(bad), (e) => e instanceof EmberError && e.code === 'EMBER_ERR_BAD_FORMAT' && e.message.length > 0);
      assert.equal(s3.nTokens, 0);
    }
    assert.throws(() => s3.load('not bytes'), (e) => e.code === 'EMBER_ERR_INVALID_ARGUMENT');
    s3.close();
  });
});
