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
    assert.ok(['avx512', 'avx2', 'sse2', 'neon', 'scalar'].includes(emberlm.cpuKernels()));
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
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const stream = b.stream(PROMPT, { maxTokens: 20 });
    for await (const piece of stream) pieces.push(piece);
    clearInterval(timer);
    assert.ok(pieces.length > 1);
    assert.equal(pieces.join(''), whole);
    assert.equal(stream.text, whole);
    assert.equal(stream.metrics.finishReason, 'max_tokens');
    assert.equal(b.metrics.nGeneratedTokens, 20);
    assert.ok(ticks > 0, 'the event loop ran during generation');
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
    assert.equal(m.detokenize(out), ref);
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
