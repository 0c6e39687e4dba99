'use strict';
// A model's worker thread: runs the calls that take time (load, generate,
// eval, prefill) with synchronous FFI calls, so the JavaScript thread never blocks and
// ember_last_error() is read on the thread that failed. Requests arrive one at
// a time; pieces and progress go back as messages. Cancel and flow control
// use a SharedArrayBuffer: [0] cancel flag, [1] pieces the consumer will take.
const { parentPort, workerData } = require('node:worker_threads');
const N = require('./native');

const { fn } = N.bind(workerData.libraryPath);

function done(id, status, extra) {
  parentPort.postMessage({ id, type: 'done', status, message: status === N.OK ? '' : fn.last_error(), ...extra });
}

const ops = {
  load(m) {
    const ctl = new Int32Array(m.control);
    const params = {};
    fn.model_default_params(params);
    params.n_threads = m.nThreads | 0;
    params.kv_type = m.kvType === 'f16' ? 1 : 0; // EMBER_KV_F16 : EMBER_KV_F32
    params.f16_as_bf16 = m.f16AsBf16 ? 1 : 0;
    let seq = 0;
    params.progress = (progress, stage) => {
      if (m.progress) {
        // wait for the JavaScript thread to see the report (ctl[1] = last seen), so
        // that its answer -- carry on or cancel -- applies to this very stage
        parentPort.postMessage({ id: m.id, type: 'progress', progress, stage, seq: ++seq });
        while (Atomics.load(ctl, 1) < seq && !Atomics.load(ctl, 0)) Atomics.wait(ctl, 1, seq - 1, 50);
      }
      return Atomics.load(ctl, 0) ? 1 : 0;
    };
    const out = [null];
    const status = fn.model_load(m.path, params, out);
    done(m.id, status, { handle: status === N.OK ? out[0] : null });
  },

  generate(m) {
    const ctl = new Int32Array(m.control);
    const params = {};
    fn.generate_default_params(params);
    params.max_tokens = m.maxTokens;
    params.stop = m.stop.length ? m.stop : null;
    params.n_stop = m.stop.length;
    params.flags = m.special ? N.TOKENIZE_PARSE_SPECIAL : 0;
    params.on_piece = (ptr, len) => {
      len = Number(len);
      if (len > 0) {
        if (m.lookahead) {
          // wait until the consumer has room (it adds to ctl[1]), or a cancel
          while (Atomics.load(ctl, 1) <= 0 && !Atomics.load(ctl, 0)) Atomics.wait(ctl, 1, 0, 50);
          if (Atomics.load(ctl, 0)) return 1;
          Atomics.sub(ctl, 1, 1);
        }
        // as bytes: decoding 'char' would stop at a NUL (a byte token can be one)
        const text = Buffer.from(N.koffi.view(ptr, len)).toString('utf8');
        parentPort.postMessage({ id: m.id, type: 'piece', text });
      }
      return Atomics.load(ctl, 0) ? 1 : 0;
    };
    // a cancel (abort signal, break out of a stream) also stops a long prompt's prefill
    params.on_prefill = () => (Atomics.load(ctl, 0) ? 1 : 0);
    const prompt = Buffer.from(m.prompt, 'utf8');
    const metrics = { size: N.koffi.sizeof(N.Metrics) };
    const status = fn.generate(m.session, prompt, prompt.length, params, metrics);
    done(m.id, status, { metrics });
  },

  eval(m) {
    const tokens = Int32Array.from(m.tokens);
    done(m.id, fn.session_eval(m.session, tokens.length ? tokens : null, tokens.length));
  },

  prefill(m) {
    const text = Buffer.from(m.text, 'utf8');
    done(m.id, fn.session_prefill(m.session, text, text.length, m.special ? N.TOKENIZE_PARSE_SPECIAL : 0));
  },
};

parentPort.on('message', (m) => {
  try {
    ops[m.op](m);
  } catch (e) {
    parentPort.postMessage({ id: m.id, type: 'done', status: N.ERR_INTERNAL, message: `emberlm worker: ${e.stack || e}` });
  }
});
