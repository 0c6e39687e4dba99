'use strict';
// emberlm: Node bindings of libember (capi/ember.h) through koffi.
//
// Quick calls (tokenize, info, sampling one token) are synchronous FFI calls
// on the JavaScript thread. Calls that take time (load, generate, eval,
// prefill) run on a worker thread that each model owns, so the event loop
// never blocks; pieces of text stream back as they are made. A scheduler's
// steps are bounded by their budget and run on the JavaScript thread (see
// Scheduler below).
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const N = require('./lib/native');

const { fn, libraryPath } = N.bind();
const koffi = N.koffi;

const STATUS_NAMES = [
  'EMBER_OK', 'EMBER_ERR_INVALID_ARGUMENT', 'EMBER_ERR_IO', 'EMBER_ERR_BAD_FORMAT', 'EMBER_ERR_UNSUPPORTED',
  'EMBER_ERR_OUT_OF_MEMORY', 'EMBER_ERR_CONTEXT_FULL', 'EMBER_ERR_CANCELLED', 'EMBER_ERR_INTERNAL',
  'EMBER_ERR_BUFFER_TOO_SMALL',
];
const FINISH_REASONS = [null, 'eos', 'max_tokens', 'stop', 'context_full', 'cancelled'];

/** A failed libember call: `message` is the library's, `status` the ember_status code, `code` its name. */
class EmberError extends Error {
  constructor(message, status) {
    super(message || STATUS_NAMES[status] || `status ${status}`);
    this.name = status === N.ERR_CANCELLED ? 'AbortError' : 'EmberError';
    this.status = status;
    this.code = STATUS_NAMES[status] || 'EMBER_ERR_UNKNOWN';
  }
}

function check(status) {
  if (status !== N.OK) throw new EmberError(fn.last_error(), status);
}

function invalid(message) {
  return new EmberError(message, N.ERR_INVALID_ARGUMENT);
}

function abortError(signal, message) {
  const e = new EmberError(message || 'the operation was aborted', N.ERR_CANCELLED);
  if (signal && signal.reason !== undefined) e.cause = signal.reason;
  return e;
}

function metricsFrom(m) {
  return {
    nPromptTokens: m.n_prompt_tokens,
    nGeneratedTokens: m.n_generated_tokens,
    ttftMs: m.ttft_ms,
    tpotMs: m.tpot_ms,
    totalMs: m.total_ms,
    prefillTokensPerS: m.prefill_tokens_per_s,
    decodeTokensPerS: m.decode_tokens_per_s,
    finishReason: FINISH_REASONS[m.finish_reason] ?? null,
    nContextShifts: m.n_context_shifts,
  };
}

// ---- the worker a model owns ------------------------------------------------------------------
// Kept alive (ref'd) only while a request is in flight, so an idle model never
// holds the process open; terminated when the model and its sessions are closed.
class Runner {
  constructor() {
    this.worker = new Worker(path.join(__dirname, 'lib', 'worker.js'), { workerData: { libraryPath } });
    this.worker.unref();
    this.pending = new Map();
    this.nextId = 1;
    this.refs = 1;
    this.worker.on('message', (msg) => this.onMessage(msg));
    this.worker.on('error', (e) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new EmberError(`emberlm worker exited (${code})`, N.ERR_INTERNAL)));
  }

  request(msg, onEvent) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject, onEvent });
      this.worker.postMessage({ ...msg, id });
    });
  }

  onMessage(msg) {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type !== 'done') {
      p.onEvent?.(msg);
      return;
    }
    this.pending.delete(msg.id);
    if (this.pending.size === 0) {
      this.worker.unref();
      if (this.refs === 0) this.worker.terminate();
    }
    p.resolve(msg);
  }

  failAll(e) {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  retain() { this.refs++; }

  release() {
    if (--this.refs === 0 && this.pending.size === 0) this.worker.terminate();
  }
}

function controlBlock() {
  return new Int32Array(new SharedArrayBuffer(8)); // [0] cancel, [1] credits for pieces
}

// ---- Model ------------------------------------------------------------------------------------
class Model {
  /**
   * Loads a GGUF file on a worker thread.
   * @param {string} file
   * @param {{threads?: number, kvType?: 'f32'|'f16', f16AsBf16?: boolean,
   *          onProgress?: (progress: number, stage: string) => boolean|void, signal?: AbortSignal}} [options]
   */
  static async load(file, options = {}) {
    const { threads = 0, kvType = 'f32', f16AsBf16 = false, onProgress, signal } = options;
    if (typeof file !== 'string') throw invalid('Model.load: the path must be a string');
    if (kvType !== 'f32' && kvType !== 'f16') throw invalid(`Model.load: kvType must be 'f32' or 'f16', not ${String(kvType)}`);
    if (signal?.aborted) throw abortError(signal, 'model load aborted before it started');
    const runner = new Runner();
    const ctl = controlBlock();
    const onAbort = () => Atomics.store(ctl, 0, 1);
    signal?.addEventListener('abort', onAbort, { once: true });
    let res;
    let thrown = null; // an exception from onProgress cancels the load and is rethrown
    try {
      res = await runner.request({ op: 'load', path: file, nThreads: threads, kvType, f16AsBf16: !!f16AsBf16,
        progress: !!onProgress, control: ctl.buffer },
        (ev) => {
          if (ev.type !== 'progress') return;
          try {
            if (onProgress(ev.progress, ev.stage) === true) onAbort();
          } catch (e) {
            onAbort();
            thrown = thrown ?? { e };
          }
          Atomics.store(ctl, 1, ev.seq);
          Atomics.notify(ctl, 1);
        });
    } catch (e) {
      runner.release();
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (res.status !== N.OK) {
      runner.release();
      if (thrown) throw thrown.e;
      if (res.status === N.ERR_CANCELLED && signal?.aborted) throw abortError(signal, res.message);
      throw new EmberError(res.message, res.status);
    }
    return new Model(file, res.handle, runner);
  }

  constructor(file, handle, runner) {
    if (!runner) throw invalid('use `await Model.load(path)` to load a model');
    this.path = file;
    this._handle = handle;
    this._runner = runner;
    this._info = null;
  }

  _h() {
    if (this._handle === null) throw invalid('the model is closed');
    return this._handle;
  }

  get closed() { return this._handle === null; }

  /** Frees the native model (idempotent). Sessions already made keep working. */
  close() {
    if (this._handle === null) return;
    fn.model_free(this._handle);
    this._handle = null;
    this._runner.release();
  }

  [Symbol.dispose ?? Symbol.for('nodejs.dispose')]() { this.close(); }

  /** What the model is (ember_model_info). */
  get info() {
    if (!this._info) {
      const raw = { size: koffi.sizeof(N.ModelInfo) };
      check(fn.model_get_info(this._h(), raw));
      const tensorTypes = {};
      for (const part of (raw.tensor_types || '').split(',')) {
        if (!part) continue;
        const [name, count] = part.split(':');
        tensorTypes[name] = Number(count);
      }
      this._info = Object.freeze({
        architecture: raw.architecture, name: raw.name || '', nParams: Number(raw.n_params),
        nCtxTrain: raw.n_ctx_train, nVocab: raw.n_vocab, nEmbd: raw.n_embd, nLayer: raw.n_layer,
        nHead: raw.n_head, nHeadKv: raw.n_head_kv, tensorTypes, fileSize: Number(raw.file_size),
        chatTemplate: raw.chat_template ?? null, ggufVersion: raw.gguf_version, nTensors: raw.n_tensors,
        kernels: raw.kernels, nThreads: raw.n_threads,
      });
    }
    return this._info;
  }

  get nVocab() { return fn.model_n_vocab(this._h()); }
  get bos() { const t = fn.token_bos(this._h()); return t < 0 ? null : t; }
  get eos() { const t = fn.token_eos(this._h()); return t < 0 ? null : t; }
  /** True if `token` ends a generation (EOS, end of turn...). */
  isEog(token) { return fn.token_is_eog(this._h(), token) !== 0; }

  /** Token ids of `text` (BOS first unless addBos is false). */
  tokenize(text, { addBos = true, special = false } = {}) {
    const bytes = Buffer.from(String(text), 'utf8');
    const flags = (addBos ? N.TOKENIZE_ADD_BOS : 0) | (special ? N.TOKENIZE_PARSE_SPECIAL : 0);
    let cap = bytes.length + 2;
    for (;;) {
      const ids = new Int32Array(cap);
      const n = [0];
      const st = fn.tokenize(this._h(), bytes, bytes.length, flags, ids, cap, n);
      if (st === N.ERR_BUFFER_TOO_SMALL && Number(n[0]) > cap) { cap = Number(n[0]); continue; }
      check(st);
      return Array.from(ids.subarray(0, Number(n[0])));
    }
  }

  /** Text of `tokens`. */
  detokenize(tokens, { special = false } = {}) {
    const ids = Int32Array.from(tokens);
    let cap = 16 * ids.length + 16;
    for (;;) {
      const buf = Buffer.alloc(cap);
      const n = [0];
      const st = fn.detokenize(this._h(), ids.length ? ids : null, ids.length, special ? N.DETOKENIZE_SPECIAL : 0, buf, cap, n);
      if (st === N.ERR_BUFFER_TOO_SMALL && Number(n[0]) > cap) { cap = Number(n[0]); continue; }
      check(st);
      return buf.toString('utf8', 0, Number(n[0]));
    }
  }

  /** The bytes one token contributes (may be part of a UTF-8 character). */
  tokenToPiece(token, { special = false } = {}) {
    let cap = 64;
    for (;;) {
      const buf = Buffer.alloc(cap);
      const n = [0];
      const st = fn.token_to_piece(this._h(), token, special ? N.DETOKENIZE_SPECIAL : 0, buf, cap, n);
      if (st === N.ERR_BUFFER_TOO_SMALL && Number(n[0]) > cap) { cap = Number(n[0]); continue; }
      check(st);
      return buf.subarray(0, Number(n[0]));
    }
  }

  /**
   * The prompt text for a conversation, rendered with the model's chat
   * template (`tokenizer.chat_template`, or `options.template`) by a Jinja
   * implementation made for chat templates (@huggingface/jinja), as model
   * publishers render it. `messages`: [{ role, content, ... }]; variables:
   * messages, add_generation_prompt, bos_token, eos_token (raise_exception
   * is the library's), and any other option. Generate from it with `{ special: true }`.
   */
  applyChatTemplate(messages, options = {}) {
    const { addGenerationPrompt = true, template, ...variables } = options;
    const text = template ?? this.info.chatTemplate;
    if (!text) throw invalid(`${this.path}: the model has no chat template (pass { template })`);
    if (!Array.isArray(messages) || messages.some((m) => !m || typeof m.role !== 'string' || m.content === undefined))
      throw invalid("applyChatTemplate: each message needs a 'role' and a 'content'");
    let Template;
    try {
      ({ Template } = require('@huggingface/jinja'));
    } catch {
      throw new EmberError('applyChatTemplate needs the @huggingface/jinja package (npm install)', N.ERR_UNSUPPORTED);
    }
    const piece = (t) => (t === null ? '' : this.tokenToPiece(t, { special: true }).toString('utf8'));
    try {
      return new Template(text).render({
        messages, add_generation_prompt: addGenerationPrompt, bos_token: piece(this.bos), eos_token: piece(this.eos),
        ...variables,
      });
    } catch (e) {
      if (e instanceof EmberError) throw e;
      throw invalid(`chat template: ${e.message}`);
    }
  }

  /** A new conversation on this model. */
  session(options = {}) {
    return new Session(this, options);
  }

  /** A scheduler for many sessions on this model (NPCs), stepped by the caller. */
  scheduler(options = {}) {
    return new Scheduler(this, options);
  }
}

// ---- Session ----------------------------------------------------------------------------------
const SESSION_OPTIONS = {
  nCtx: 'n_ctx', nBatch: 'n_batch', seed: 'seed', temperature: 'temperature', topK: 'top_k', topP: 'top_p',
  minP: 'min_p', repeatPenalty: 'repeat_penalty', repeatLastN: 'repeat_last_n', overflowPolicy: 'overflow_policy',
  nKeep: 'n_keep',
};
const OVERFLOW_POLICIES = { error: 0, shift: 1, shiftFast: 2 };

// An ember_session_params with the library's defaults and the options given.
function sessionParams(options) {
  const params = {};
  fn.session_default_params(params);
  for (const [key, value] of Object.entries(options)) {
    const field = SESSION_OPTIONS[key];
    if (!field) throw invalid(`unknown session option '${key}'`);
    if (value === undefined) continue;
    if (key === 'seed') {
      const seed = BigInt(value);
      if (seed < 0n || seed >= 2n ** 64n) throw invalid('seed must be in [0, 2**64)');
      params.seed = seed;
    } else if (key === 'overflowPolicy') {
      if (!Object.hasOwn(OVERFLOW_POLICIES, value)) throw invalid(`overflowPolicy must be 'error', 'shift' or 'shiftFast', not '${value}'`);
      params.overflow_policy = OVERFLOW_POLICIES[value];
    } else {
      params[field] = value;
    }
  }
  return params;
}

class Session {
  static GENERATE_LOOKAHEAD = 64;

  constructor(model, options = {}) {
    if (!(model instanceof Model)) throw invalid('new Session(model, options): model must be a Model');
    const params = sessionParams(options);
    const out = [null];
    check(fn.session_create(model._h(), params, out));
    this._init(model, out[0], null, model.nVocab);
  }

  // A session made by a scheduler or by fork: owns `handle`.
  static _wrap(model, handle, scheduler, nVocab) {
    const s = Object.create(Session.prototype);
    s._init(model, handle, scheduler, nVocab);
    return s;
  }

  _init(model, handle, scheduler, nVocab) {
    this.model = model;
    this._handle = handle;
    this._nVocab = nVocab;
    this._scheduler = scheduler; // whose KV pool it shares (it stays shared after the scheduler is closed)
    this._requestId = 0;         // its last request on the scheduler
    this._runner = model._runner;
    this._runner.retain();
    this._tail = Promise.resolve(); // requests run one after another
    this._busy = 0;
    this._stream = null; // the stream in progress, cancelled by any new request
    this._cancelRunning = null; // cancels the generation in progress (used by close)
    this._metrics = null;
  }

  _h() {
    if (this._handle === null) throw invalid('the session is closed');
    return this._handle;
  }

  _idle() {
    this._h();
    if (this._busy) throw invalid('the session is busy with a generation, eval or prefill: await it (or abort it) first');
  }

  // For calls that use the conversation or the KV memory: a scheduler's session must not be
  // running a request, and no session sharing its KV pool may be busy on the worker.
  _exclusive() {
    this._idle();
    if (this._scheduler) {
      this._scheduler._checkNotBusy();
      this._scheduler._checkNoRequest(this);
    }
  }

  /** The scheduler whose KV memory this session uses (null for a plain session). */
  get scheduler() { return this._scheduler; }

  get closed() { return this._handle === null; }

  /** Cancels what is running and frees the native session (idempotent); its requests end. */
  close() {
    if (this._handle === null) return;
    const h = this._handle;
    this._handle = null;
    this._stream?._cancel();
    this._cancelRunning?.();
    this._tail.finally(() => {
      const free = () => {
        fn.session_free(h);
        this._runner.release();
      };
      // a scheduler's sessions share its KV pool: not while one of them runs on the worker
      if (this._scheduler) this._scheduler._whenIdle(free);
      else free();
    });
  }

  [Symbol.dispose ?? Symbol.for('nodejs.dispose')]() { this.close(); }

  get nCtx() { return fn.session_n_ctx(this._h()); }
  get nTokens() { this._idle(); return fn.session_n_tokens(this._handle); }
  get nEvaluated() { this._idle(); return fn.session_n_evaluated(this._handle); }
  get memory() { return Number(fn.session_memory(this._h())); }
  /** Figures of the last finished generate (null before the first). */
  get metrics() { return this._metrics; }

  /** Forgets the conversation; keeps the settings. */
  reset() { this._exclusive(); check(fn.session_reset(this._handle)); }

  // Queues `run` after the session's earlier requests; a stream still running is cancelled first.
  _enqueue(run) {
    this._h();
    this._stream?._cancel();
    const result = this._tail.then(async () => {
      this._h();
      if (this._scheduler) this._scheduler._checkNoRequest(this);
      this._busy++;
      this._scheduler?._enter();
      try {
        return await run();
      } finally {
        this._busy--;
        this._scheduler?._leave();
      }
    });
    this._tail = result.catch(() => {});
    return result;
  }

  _request(prompt, opts, lookahead, onPiece) {
    const { maxTokens = 256, stop = [], special = false, signal } = opts;
    if (typeof prompt !== 'string') throw invalid('the prompt must be a string');
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0))
      throw invalid('stop must be an array of non-empty strings');
    const ctl = controlBlock();
    if (lookahead) Atomics.store(ctl, 1, lookahead);
    const cancel = () => { Atomics.store(ctl, 0, 1); Atomics.notify(ctl, 1); };
    const promise = this._enqueue(async () => {
      if (signal?.aborted || Atomics.load(ctl, 0)) return { status: N.ERR_CANCELLED, message: 'aborted before it started', metrics: null };
      signal?.addEventListener('abort', cancel, { once: true });
      this._cancelRunning = cancel;
      try {
        return await this._runner.request({
          op: 'generate', session: this._handle, prompt, maxTokens, stop, special, lookahead, control: ctl.buffer,
        }, (ev) => onPiece(ev.text));
      } finally {
        this._cancelRunning = null;
        signal?.removeEventListener('abort', cancel);
      }
    }).then((res) => {
      if (res.metrics) this._metrics = metricsFrom(res.metrics);
      return res;
    });
    return { promise, ctl, cancel };
  }

  /**
   * Appends `prompt` and generates; resolves to the text. An aborted `signal`
   * rejects with an AbortError (what was generated stays in the session).
   */
  async generate(prompt, opts = {}) {
    let text = '';
    // With an onPiece callback the worker runs at most GENERATE_LOOKAHEAD
    // pieces ahead of it, so an abort from inside onPiece stops the
    // generation within that many tokens, however busy this thread is.
    const lookahead = opts.onPiece ? Session.GENERATE_LOOKAHEAD : 0;
    let ctl = null;
    const req = this._request(prompt, opts, lookahead, (piece) => {
      text += piece;
      try {
        opts.onPiece?.(piece);
      } finally {
        if (lookahead) {
          Atomics.add(ctl, 1, 1); // room for one more
          Atomics.notify(ctl, 1);
        }
      }
    });
    ctl = req.ctl;
    const { promise } = req;
    const res = await promise;
    if (res.status === N.ERR_CANCELLED && (opts.signal?.aborted ?? true)) throw abortError(opts.signal, res.message);
    if (res.status !== N.OK) throw new EmberError(res.message, res.status);
    return text;
  }

  /**
   * The same, as an async iterable of text pieces. Breaking out of a
   * `for await` loop cancels the generation at its next token; an aborted
   * `signal` makes the loop throw an AbortError.
   */
  stream(prompt, opts = {}) {
    return new TextStream(this, prompt, opts);
  }

  /** Appends `tokens` and evaluates everything not yet in the cache (on the worker). */
  async eval(tokens) {
    const ids = Array.from(tokens, Number);
    const res = await this._enqueue(() => this._runner.request({ op: 'eval', session: this._handle, tokens: ids }));
    if (res.status !== N.OK) throw new EmberError(res.message, res.status);
  }

  /** A copy of the logits of the last evaluated token (nVocab floats). */
  logits() {
    this._exclusive();
    const ptr = fn.session_logits(this._handle);
    if (!ptr) throw new EmberError(fn.last_error(), N.ERR_INVALID_ARGUMENT);
    return new Float32Array(koffi.view(ptr, 4 * this._nVocab).slice(0));
  }

  /** One token from the current logits by the session's sampler chain (not appended). */
  sample() {
    this._exclusive();
    const t = [0];
    check(fn.session_sample(this._handle, t));
    return t[0];
  }

  /** Appends `token` without evaluating it; the next eval/generate evaluates it first. */
  accept(token) {
    this._exclusive();
    check(fn.session_accept(this._handle, token));
  }

  /**
   * A new session continuing this conversation: same history, settings and RNG
   * state. Its KV cache shares this one's copy-on-write, so a prefix prefilled
   * once (a persona, the world's lore) serves every fork and costs memory only
   * for what each fork adds. Belongs to this session's scheduler, if any.
   */
  fork() {
    this._exclusive();
    const out = [null];
    check(fn.session_fork(this._handle, out));
    return Session._wrap(this.model, out[0], this._scheduler, this._nVocab);
  }

  /**
   * Appends `text` and evaluates it (on the worker) without generating: a
   * persona or lore prefilled before forking. BOS comes first on an empty session.
   */
  async prefill(text, { special = false } = {}) {
    if (typeof text !== 'string') throw invalid('the text must be a string');
    const res = await this._enqueue(() => this._runner.request({ op: 'prefill', session: this._handle, text, special }));
    if (res.status !== N.OK) throw new EmberError(res.message, res.status);
  }

  /**
   * A savegame: the conversation, sampler settings and RNG state, tagged with
   * the model's content hash; `withKv` adds the evaluated KV cache (instant
   * resume, larger). Restore it with load().
   */
  save({ withKv = false } = {}) {
    this._exclusive();
    const flags = withKv ? N.SAVE_KV : 0;
    const n = [0];
    const st = fn.session_save(this._handle, flags, null, 0, n);
    if (st !== N.ERR_BUFFER_TOO_SMALL) check(st);
    const buf = Buffer.alloc(Number(n[0]));
    check(fn.session_save(this._handle, flags, buf, buf.length, n));
    return buf.subarray(0, Number(n[0]));
  }

  /**
   * Restores a save into this session: its settings and conversation are
   * replaced (on a scheduler's session its requests end). A save from another
   * model is EMBER_ERR_INVALID_ARGUMENT, truncated or modified data
   * EMBER_ERR_BAD_FORMAT; either way the session is unchanged.
   */
  load(data) {
    this._idle();
    this._scheduler?._checkNotBusy();
    if (!(data instanceof Uint8Array)) throw invalid('load: data must be a Buffer or Uint8Array');
    check(fn.session_load(this._handle, data.length ? data : null, data.length));
  }
}

class TextStream {
  static LOOKAHEAD = 8;

  constructor(session, prompt, opts) {
    this._pieces = [];      // made, not yet read
    this._waiters = [];     // pending next() calls
    this._ended = false;
    this._error = null;
    this._userCancelled = false;
    this.text = '';
    this.metrics = null;
    const signal = opts.signal;
    const req = session._request(prompt, opts, TextStream.LOOKAHEAD, (piece) => this._push(piece));
    this._ctl = req.ctl;
    this._cancelFn = req.cancel;
    this._session = session;
    session._stream = this;
    this._done = req.promise.then((res) => {
      this.metrics = res.metrics ? metricsFrom(res.metrics) : null;
      if (res.status === N.ERR_CANCELLED && signal?.aborted) this._error = abortError(signal, res.message);
      else if (res.status !== N.OK && !(res.status === N.ERR_CANCELLED && this._userCancelled))
        this._error = new EmberError(res.message, res.status);
    }, (e) => { this._error = e; }).finally(() => {
      this._ended = true;
      if (session._stream === this) session._stream = null;
      this._wake();
    });
  }

  _push(piece) {
    if (this._userCancelled) return; // a cancelled stream yields nothing more
    this._pieces.push(piece);
    this._wake();
  }

  _wake() {
    while (this._waiters.length && (this._pieces.length || this._ended)) {
      const w = this._waiters.shift();
      this._settle(w);
    }
  }

  _settle(w) {
    if (this._pieces.length) {
      const piece = this._pieces.shift();
      this.text += piece;
      Atomics.add(this._ctl, 1, 1); // room for one more
      Atomics.notify(this._ctl, 1);
      w.resolve({ value: piece, done: false });
    } else if (this._error) {
      const e = this._error;
      this._error = null;
      w.reject(e);
    } else {
      w.resolve({ value: undefined, done: true });
    }
  }

  // Stops the generation at its next token; pieces not yet read are dropped.
  _cancel() {
    this._userCancelled = true;
    this._pieces.length = 0;
    this._cancelFn();
    this._wake();
  }

  next() {
    return new Promise((resolve, reject) => {
      this._waiters.push({ resolve, reject });
      this._wake();
    });
  }

  /** Called by `break` in a for-await loop: cancels and waits until the generation has stopped. */
  async return(value) {
    this._cancel();
    await this._done;
    this._error = null;
    return { value, done: true };
  }

  async throw(e) {
    await this.return();
    throw e;
  }

  [Symbol.asyncIterator]() { return this; }

  /** Resolves when the generation has ended (after a cancel too). */
  get finished() { return this._done; }
}

// ---- Scheduler --------------------------------------------------------------------------------
// Scheduler calls (submit, step, poll, cancel) are synchronous FFI calls on the
// JavaScript thread: ember_step() returns within the budget it is given, so a
// frame loop calls step() like any other per-frame work, and the thread that
// steps is the one that reads the text (one thread drives a scheduler). run()
// and iterating a request pump steps on this thread too, yielding to the event
// loop between steps. The model's worker still runs prefill, generate and eval
// of the scheduler's sessions; they share its KV pool, so while one of them is
// on the worker a step does nothing and calls that touch the pool throw.
const SCHEDULER_OPTIONS = {
  maxBatchTokens: 'max_batch_tokens', prefillChunk: 'prefill_chunk', kvMaxTokens: 'kv_max_tokens',
  kvInitialTokens: 'kv_initial_tokens',
};
const REQUEST_STATES = ['queued', 'running', 'done', 'cancelled', 'failed'];
const inProgress = (state) => state === 'queued' || state === 'running';

class Scheduler {
  /** Milliseconds of work per step when run() or an iterator pumps the scheduler. */
  static PUMP_BUDGET_MS = 10;

  constructor(model, options = {}) {
    if (!(model instanceof Model)) throw invalid('new Scheduler(model, options): model must be a Model');
    const params = {};
    fn.scheduler_default_params(params);
    for (const [key, value] of Object.entries(options)) {
      const field = SCHEDULER_OPTIONS[key];
      if (!field) throw invalid(`unknown scheduler option '${key}'`);
      if (value !== undefined) params[field] = value;
    }
    const out = [null];
    check(fn.scheduler_create(model._h(), params, out));
    this.model = model;
    this._handle = out[0];
    this._nVocab = model.nVocab;
    this._runner = model._runner;
    this._runner.retain();
    this._busy = 0;              // worker calls in flight on its sessions
    this._afterBusy = [];        // run when none is
    this._active = new Set();    // requests in progress
    this._orphans = new Map();   // id -> session: let go while in progress, released once they end
    this._waiters = [];          // iterators waiting for the next step
    this._pumping = null;
    // a Request collected unreleased is released here (it has ended: the scheduler holds it until then)
    this._registry = new FinalizationRegistry(({ id, session }) => this._letGo(id, session, false));
  }

  _h() {
    if (this._handle === null) throw invalid('the scheduler is closed');
    return this._handle;
  }

  get closed() { return this._handle === null; }

  /** Frees the native scheduler (idempotent). Its sessions stay valid as plain sessions; its requests are gone. */
  close() {
    if (this._handle === null) return;
    const h = this._handle;
    this._handle = null;
    for (const r of this._active) r._ended();
    this._active.clear();
    this._orphans.clear();
    this._whenIdle(() => {
      fn.scheduler_free(h);
      this._runner.release();
    });
    this._wake(null);
  }

  [Symbol.dispose ?? Symbol.for('nodejs.dispose')]() { this.close(); }

  /** Bytes of KV memory in use in the shared pool (forks share their prefix). */
  get kvBytes() { return Number(fn.scheduler_kv_bytes(this._h())); }

  /** A session whose KV memory comes from this scheduler's pool (Session options). */
  session(options = {}) {
    this._h();
    this._checkNotBusy();
    const params = sessionParams(options);
    const out = [null];
    check(fn.scheduler_session_create(this._handle, params, out));
    return Session._wrap(this.model, out[0], this, this._nVocab);
  }

  /**
   * Queues a generation on `session` (one of this scheduler's, one request at a
   * time) and returns a Request at once; the prompt is tokenized and checked
   * now. An aborted `signal` cancels it at the next step.
   */
  submit(session, prompt, opts = {}) {
    const { maxTokens = 256, stop = [], priority = 0, special = false, signal } = opts;
    this._h();
    if (!(session instanceof Session)) throw invalid('submit: session must be a Session');
    if (typeof prompt !== 'string') throw invalid('the prompt must be a string');
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0))
      throw invalid('stop must be an array of non-empty strings');
    if (signal?.aborted) throw abortError(signal, 'the request was aborted before it was submitted');
    session._idle();
    const params = {};
    fn.request_default_params(params);
    params.max_tokens = maxTokens;
    params.stop = stop.length ? stop : null;
    params.n_stop = stop.length;
    params.priority = priority;
    params.flags = special ? N.TOKENIZE_PARSE_SPECIAL : 0;
    const bytes = Buffer.from(prompt, 'utf8');
    const out = [0];
    check(fn.submit(this._handle, session._handle, bytes, bytes.length, params, out));
    const req = new Request(this, session, out[0], signal);
    session._requestId = req.id;
    this._active.add(req);
    this._registry.register(req, { id: req.id, session }, req);
    return req;
  }

  /**
   * Does about `budgetMs` of work (at least one layer when any is pending), or
   * one whole forward pass when budgetMs <= 0, on this thread. Call it once per frame.
   */
  step(budgetMs = 0) {
    this._h();
    let stats = { entries: 0, layers: 0, tokensGenerated: 0, paused: false, ms: 0 };
    if (!this._busy) { // a session of this scheduler on the worker has the KV pool: no step this time
      const raw = { size: koffi.sizeof(N.StepStats) };
      check(fn.step(this._handle, Number(budgetMs), raw));
      stats = { entries: raw.entries, layers: raw.layers, tokensGenerated: raw.tokens_generated, paused: raw.paused !== 0, ms: raw.ms };
    }
    this._afterStep();
    return stats;
  }

  /**
   * Steps until no request is in progress, `budgetMs` (default
   * Scheduler.PUMP_BUDGET_MS) at a time, letting the event loop run between steps.
   */
  run({ budgetMs } = {}) {
    if (budgetMs !== undefined) this._budgetMs = budgetMs;
    return this._pump();
  }

  _pump() {
    if (!this._pumping) {
      this._pumping = (async () => {
        try {
          while (this._handle !== null && (this._active.size || this._orphans.size)) {
            if (this._busy) await new Promise((resolve) => this._whenIdle(resolve));
            else this.step(this._budgetMs ?? Scheduler.PUMP_BUDGET_MS);
            await new Promise((resolve) => setImmediate(resolve));
          }
        } catch (e) {
          this._wake(e);
          throw e;
        } finally {
          this._pumping = null;
          this._budgetMs = undefined;
          this._wake(null);
        }
      })();
    }
    return this._pumping;
  }

  // Resolves after the next step (made by the pump, started if needed, or by a step() call).
  _nextStep() {
    const p = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    this._pump().catch(() => {});
    return p;
  }

  _wake(error) {
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) error ? w.reject(error) : w.resolve();
  }

  _afterStep() {
    for (const r of this._active) {
      if (!r._inProgress()) {
        this._active.delete(r);
        r._ended();
      }
    }
    for (const [id, session] of this._orphans) {
      const st = [0];
      if (session.closed || fn.request_get_state(this._handle, id, st) !== N.OK) this._orphans.delete(id);
      else if (!inProgress(REQUEST_STATES[st[0]])) {
        fn.request_release(this._handle, id);
        this._orphans.delete(id);
      }
    }
    this._wake(null);
  }

  // A request its owner let go of: released now if it has ended, else when it does.
  _letGo(id, session, cancel) {
    if (this._handle === null || session.closed) return;
    const st = [0];
    if (fn.request_get_state(this._handle, id, st) !== N.OK) return;
    if (inProgress(REQUEST_STATES[st[0]])) {
      if (cancel) fn.request_cancel(this._handle, id);
      this._orphans.set(id, session);
    } else {
      fn.request_release(this._handle, id);
    }
  }

  _checkNotBusy() {
    if (this._busy) throw invalid('a session of this scheduler is busy on the worker (prefill, generate or eval): await it first');
  }

  _checkNoRequest(session) {
    if (!session._requestId || this._handle === null) return;
    const st = [0];
    if (fn.request_get_state(this._handle, session._requestId, st) === N.OK && inProgress(REQUEST_STATES[st[0]]))
      throw invalid('the session has a request in progress on its scheduler: let it end (or cancel it) first');
  }

  _enter() { this._busy++; }

  _leave() {
    if (--this._busy === 0) {
      const callbacks = this._afterBusy;
      this._afterBusy = [];
      for (const cb of callbacks) cb();
    }
  }

  _whenIdle(cb) {
    if (this._busy === 0) cb();
    else this._afterBusy.push(cb);
  }
}

class Request {
  constructor(scheduler, session, id, signal) {
    this.scheduler = scheduler;
    this.session = session;
    this.id = id;
    /** The text polled so far. */
    this.text = '';
    this._released = false;
    this._signal = signal;
    this._onAbort = null;
    if (signal) {
      this._onAbort = () => { try { this.cancel(); } catch { /* already gone */ } };
      signal.addEventListener('abort', this._onAbort, { once: true });
    }
  }

  _h() {
    if (this._released) throw invalid(`request ${this.id} was released`);
    if (this.session.closed) throw invalid(`request ${this.id}: its session is closed`);
    return this.scheduler._h();
  }

  _inProgress() {
    try {
      return inProgress(this.state);
    } catch {
      return false;
    }
  }

  _ended() {
    if (this._onAbort) this._signal.removeEventListener('abort', this._onAbort);
    this._onAbort = null;
  }

  /** 'queued', 'running', 'done' (see metrics.finishReason), 'cancelled' or 'failed' (see error). */
  get state() {
    const st = [0];
    check(fn.request_get_state(this._h(), this.id, st));
    return REQUEST_STATES[st[0]];
  }

  /** True once the request is done, cancelled or failed. */
  get finished() { return !inProgress(this.state); }

  /** The text made since the last poll (UTF-8-complete pieces; '' if none). */
  poll() {
    let cap = 256;
    for (;;) {
      const buf = Buffer.alloc(cap);
      const n = [0];
      const st = fn.request_poll(this._h(), this.id, buf, cap, n);
      if (st === N.ERR_BUFFER_TOO_SMALL && Number(n[0]) > cap) { cap = Number(n[0]); continue; }
      check(st);
      const text = buf.toString('utf8', 0, Number(n[0]));
      this.text += text;
      return text;
    }
  }

  /** Takes effect at the next step: the request ends as 'cancelled'; what it generated stays in the session. */
  cancel() { check(fn.request_cancel(this._h(), this.id)); }

  /** The request's figures (finishReason once it is done). */
  get metrics() {
    const raw = { size: koffi.sizeof(N.Metrics) };
    check(fn.request_metrics(this._h(), this.id, raw));
    return metricsFrom(raw);
  }

  /** The library's message for a failed request, else null. */
  get error() { return fn.request_error(this._h(), this.id) || null; }

  /**
   * Forgets the request (idempotent); one still in progress is cancelled and
   * freed once the scheduler has stopped it.
   */
  release() {
    if (this._released) return;
    this._released = true;
    this._ended();
    this.scheduler._registry.unregister(this);
    this.scheduler._active.delete(this);
    this.scheduler._letGo(this.id, this.session, true);
  }

  [Symbol.dispose ?? Symbol.for('nodejs.dispose')]() { this.release(); }

  /**
   * The text as it comes, stepping the scheduler (all its sessions progress)
   * while it waits. Breaking out of the loop cancels the request; a failed
   * request throws its error, an aborted signal an AbortError.
   */
  async *[Symbol.asyncIterator]() {
    let ended = false;
    try {
      for (;;) {
        const state = this.state;
        const text = this.poll();
        if (text) yield text;
        if (!inProgress(state)) {
          ended = true;
          if (state === 'failed') throw new EmberError(this.error || `request ${this.id} failed`, -1);
          if (state === 'cancelled' && this._signal?.aborted) throw abortError(this._signal, `request ${this.id} was aborted`);
          return;
        }
        await this.scheduler._nextStep();
      }
    } finally {
      if (!ended && this._inProgress()) this.cancel();
    }
  }
}

// ---- the library ------------------------------------------------------------------------------
let logger = null;
let logCallback = null;

/**
 * Routes libember's log lines (load warnings, a summary line per load) to
 * `fn(level, message)`, level one of 'debug' | 'info' | 'warn' | 'error';
 * null restores the default (warnings and errors on stderr).
 */
function setLogger(handler) {
  logger = handler;
  if (!logCallback) {
    // registered once for the life of the process: changing the handler never calls into C
    const levels = ['debug', 'info', 'warn', 'error'];
    logCallback = koffi.register((level, message) => {
      const name = levels[level] ?? 'error';
      if (logger) {
        try { logger(name, message); } catch { /* a logger must not break a load */ }
      } else if (level >= 2) {
        process.stderr.write(`emberlm: ${name === 'warn' ? 'warning' : name}: ${message}\n`);
      }
    }, koffi.pointer(N.LogCallback));
    fn.log_set(logCallback, null);
  }
}

/** libember's C ABI version (checked against this package's at load). */
function abiVersion() { return fn.abi_version(); }
/** libember's version ("0.1.0"). */
function version() { return fn.version(); }
/** The kernel set libember uses on this CPU ("amx", "avx512bf16", "avx512", "avx2", "sse2", "neon", "scalar"). */
function cpuKernels() { return fn.cpu_kernels(); }

// Plain `exports.name = name` lines, so that ESM `import { Model } from 'emberlm'` sees each name.
exports.Model = Model;
exports.Session = Session;
exports.TextStream = TextStream;
exports.Scheduler = Scheduler;
exports.Request = Request;
exports.EmberError = EmberError;
exports.setLogger = setLogger;
exports.abiVersion = abiVersion;
exports.version = version;
exports.cpuKernels = cpuKernels;
exports.libraryPath = libraryPath;
