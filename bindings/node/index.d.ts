// Type declarations of the emberlm Node package (bindings of libember's C ABI).

/** A failed libember call. `message` is the library's; `status` the ember_status code; `code` its name.
 *  A cancelled call (AbortSignal, a progress callback) has name 'AbortError' and code 'EMBER_ERR_CANCELLED'. */
export class EmberError extends Error {
  readonly status: number;
  readonly code:
    | 'EMBER_ERR_INVALID_ARGUMENT' | 'EMBER_ERR_IO' | 'EMBER_ERR_BAD_FORMAT' | 'EMBER_ERR_UNSUPPORTED'
    | 'EMBER_ERR_OUT_OF_MEMORY' | 'EMBER_ERR_CONTEXT_FULL' | 'EMBER_ERR_CANCELLED' | 'EMBER_ERR_INTERNAL'
    | 'EMBER_ERR_BUFFER_TOO_SMALL' | 'EMBER_ERR_UNKNOWN';
}

export interface ModelInfo {
  readonly architecture: string;
  readonly name: string;
  readonly nParams: number;
  readonly nCtxTrain: number;
  readonly nVocab: number;
  readonly nEmbd: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly nHeadKv: number;
  /** Tensor count per GGUF type, e.g. { Q4_0: 155, F32: 45 }. */
  readonly tensorTypes: Readonly<Record<string, number>>;
  /** Bytes. */
  readonly fileSize: number;
  /** The file's Jinja chat template, or null. */
  readonly chatTemplate: string | null;
  readonly ggufVersion: number;
  readonly nTensors: number;
  /** Kernel set in use: 'amx', 'avx512bf16', 'avx512', 'avx2', 'sse2', 'neon', 'scalar'. */
  readonly kernels: string;
  readonly nThreads: number;
}

export interface LoadOptions {
  /** Threads of the model's pool, the calling worker included; 0 = automatic. */
  threads?: number;
  /** Element type of every session's KV cache: 'f32' (default) or 'f16' (half the
   *  memory; each key and value rounded when written, llama.cpp's default). */
  kvType?: 'f32' | 'f16';
  /** Round F16 weights to BF16 for the AVX512-BF16 kernels: faster, lossy. */
  f16AsBf16?: boolean;
  /** Called after each stage ('parsed', 'weights', 'tokenizer', 'ready'); return true (or throw) to cancel. */
  onProgress?: (progress: number, stage: string) => boolean | void;
  signal?: AbortSignal;
}

export interface SessionOptions {
  /** Context length in tokens; 0 = the model's (at most 4096). */
  nCtx?: number;
  nBatch?: number;
  /** Same seed, model and inputs => same text, in C, Python and Node. */
  seed?: number | bigint;
  /** <= 0: greedy (default 0.8). */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  repeatLastN?: number;
  /** When the conversation reaches nCtx: 'error' (default) ends the request with finishReason 'context_full';
   *  'shift' keeps the first nKeep tokens, drops the oldest half of the rest, re-evaluates what follows and goes on
   *  (exact; one prefill); 'shiftFast' keeps and drops the same tokens but moves the cached entries instead of
   *  re-evaluating them (no stall; approximate). */
  overflowPolicy?: OverflowPolicy;
  /** Tokens 'shift' keeps at the start (a persona); -1 (default) = the first prompt. */
  nKeep?: number;
}

export type OverflowPolicy = 'error' | 'shift' | 'shiftFast';

export interface GenerateOptions {
  /** Generated tokens at most (default 256); < 0: until EOS or the context is full. */
  maxTokens?: number;
  /** Generation ends before the first of these strings (which is not emitted). */
  stop?: string[];
  /** Control-token text in the prompt maps to control tokens. */
  special?: boolean;
  /** Aborting cancels at the next token: the promise rejects / the loop throws an AbortError. */
  signal?: AbortSignal;
}

export type FinishReason = 'eos' | 'max_tokens' | 'stop' | 'context_full' | 'cancelled' | null;

export interface Metrics {
  readonly nPromptTokens: number;
  readonly nGeneratedTokens: number;
  readonly ttftMs: number;
  readonly tpotMs: number;
  readonly totalMs: number;
  readonly prefillTokensPerS: number;
  readonly decodeTokensPerS: number;
  readonly finishReason: FinishReason;
  /** Times the overflow policy dropped old tokens ('shift' / 'shiftFast'). */
  readonly nContextShifts: number;
}

export class Model {
  /** Maps and validates a GGUF file on a worker thread. */
  static load(path: string, options?: LoadOptions): Promise<Model>;
  private constructor();
  readonly path: string;
  readonly closed: boolean;
  readonly info: ModelInfo;
  readonly nVocab: number;
  readonly bos: number | null;
  readonly eos: number | null;
  isEog(token: number): boolean;
  tokenize(text: string, options?: { addBos?: boolean; special?: boolean }): number[];
  detokenize(tokens: Iterable<number>, options?: { special?: boolean }): string;
  tokenToPiece(token: number, options?: { special?: boolean }): Buffer;
  /** The prompt for a conversation, rendered with the model's chat template (needs @huggingface/jinja). */
  applyChatTemplate(messages: Array<{ role: string; content: string; [key: string]: unknown }>,
                    options?: { addGenerationPrompt?: boolean; template?: string; [variable: string]: unknown }): string;
  session(options?: SessionOptions): Session;
  /** A scheduler for many sessions on this model (NPCs), stepped by the caller. */
  scheduler(options?: SchedulerOptions): Scheduler;
  /** Frees the native model (sessions already made keep working). */
  close(): void;
}

export class Session {
  constructor(model: Model, options?: SessionOptions);
  readonly model: Model;
  readonly closed: boolean;
  readonly nCtx: number;
  readonly nTokens: number;
  readonly nEvaluated: number;
  /** Bytes the session holds alone (KV cache, logits; scratch is the model's). */
  readonly memory: number;
  /** Figures of the last finished generate, or null. */
  readonly metrics: Metrics | null;
  /**
   * Appends `prompt` and generates; resolves to the text. With `onPiece` the
   * worker runs at most 64 pieces ahead of it, so an abort from inside
   * `onPiece` stops the generation within that many tokens.
   */
  generate(prompt: string, options?: GenerateOptions & { onPiece?: (piece: string) => void }): Promise<string>;
  stream(prompt: string, options?: GenerateOptions): TextStream;
  /** Appends tokens and evaluates what is not yet in the cache (on the worker thread). */
  eval(tokens: Iterable<number>): Promise<void>;
  /** A copy of the last evaluated token's logits (nVocab floats). */
  logits(): Float32Array;
  /** One token from the current logits by the session's sampler chain (not appended). */
  sample(): number;
  /** Appends a token without evaluating it; the next eval/generate evaluates it first. */
  accept(token: number): void;
  reset(): void;
  /** The scheduler whose KV memory this session uses, or null for a plain session. */
  readonly scheduler: Scheduler | null;
  /** A new session continuing this conversation (history, settings, RNG state); its KV cache shares this
   *  one's copy-on-write. Belongs to this session's scheduler, if any. */
  fork(): Session;
  /** Appends text and evaluates it (on the worker thread) without generating: a persona or lore before forking. */
  prefill(text: string, options?: { special?: boolean }): Promise<void>;
  /** A savegame: conversation, sampler settings and RNG state (and with withKv the KV cache), tagged with
   *  the model's content hash. */
  save(options?: { withKv?: boolean }): Buffer;
  /** Restores a save (settings and conversation replaced). Another model's save: EMBER_ERR_INVALID_ARGUMENT;
   *  truncated or modified data: EMBER_ERR_BAD_FORMAT; either way the session is unchanged. */
  load(data: Uint8Array): void;
  /** Cancels what is running and frees the native session. */
  close(): void;
}

/** Pieces of generated text. Breaking out of `for await` cancels the generation. */
export class TextStream implements AsyncIterableIterator<string> {
  /** Pieces the generation may run ahead of the consumer. */
  static readonly LOOKAHEAD: number;
  /** The text read so far. */
  readonly text: string;
  /** The request's figures, once it has ended. */
  readonly metrics: Metrics | null;
  /** Resolves when the generation has ended (a cancel included). */
  readonly finished: Promise<void>;
  next(): Promise<IteratorResult<string>>;
  return(value?: unknown): Promise<IteratorResult<string>>;
  throw(e?: unknown): Promise<IteratorResult<string>>;
  [Symbol.asyncIterator](): TextStream;
}

export interface SchedulerOptions {
  /** Batch entries per forward pass (default 128). */
  maxBatchTokens?: number;
  /** Prompt tokens one session adds per pass (default 64). */
  prefillChunk?: number;
  /** Cap on the shared KV memory, in positions; 0 (default) = none. */
  kvMaxTokens?: number;
  /** KV positions reserved up front (default 0: grow as needed). */
  kvInitialTokens?: number;
}

export interface SubmitOptions {
  /** Generated tokens at most (default 256); < 0: until EOS or the context is full. */
  maxTokens?: number;
  /** Generation ends before the first of these strings (which is not emitted). */
  stop?: string[];
  /** Higher first (the player's current partner answers first); default 0. */
  priority?: number;
  /** Control-token text in the prompt maps to control tokens. */
  special?: boolean;
  /** Aborting cancels the request at the next step; iterating it then throws an AbortError. */
  signal?: AbortSignal;
}

/** What one step did (ember_step_stats). */
export interface StepStats {
  /** Batch entries whose pass completed in this step. */
  readonly entries: number;
  /** Layers run in this step. */
  readonly layers: number;
  readonly tokensGenerated: number;
  /** A pass is in flight and continues next step. */
  readonly paused: boolean;
  /** Time the step took. */
  readonly ms: number;
}

export type RequestState = 'queued' | 'running' | 'done' | 'cancelled' | 'failed';

/** Many sessions on one model: their pending work is batched into one forward pass per step.
 *  Every call runs on the JavaScript thread; step() returns within about its budget. */
export class Scheduler {
  constructor(model: Model, options?: SchedulerOptions);
  /** Milliseconds of work per step when run() or an iterator pumps the scheduler (default 10). */
  static PUMP_BUDGET_MS: number;
  readonly model: Model;
  readonly closed: boolean;
  /** Bytes of KV memory in use in the shared pool (forks share their prefix). */
  readonly kvBytes: number;
  /** A session whose KV memory comes from this scheduler's pool. */
  session(options?: SessionOptions): Session;
  /** Queues a generation on one of its sessions (one request per session at a time); returns at once. */
  submit(session: Session, prompt: string, options?: SubmitOptions): Request;
  /** About budgetMs of work (at least one layer when any is pending), or one whole pass when budgetMs <= 0.
   *  Does nothing while one of its sessions runs a prefill, generate or eval on the worker thread. */
  step(budgetMs?: number): StepStats;
  /** Steps until no request is in progress, budgetMs at a time, letting the event loop run between steps. */
  run(options?: { budgetMs?: number }): Promise<void>;
  /** Frees the native scheduler; its sessions stay valid as plain sessions, its requests are gone. */
  close(): void;
}

/** A generation queued on a Scheduler. Iterating it yields its text, stepping the scheduler;
 *  breaking out of the loop cancels it; a failed request throws an EmberError with the library's
 *  message (code 'EMBER_ERR_UNKNOWN': the C ABI gives a failed request a message, not a status). */
export class Request implements AsyncIterable<string> {
  private constructor();
  readonly scheduler: Scheduler;
  readonly session: Session;
  readonly id: number;
  /** The text polled so far. */
  readonly text: string;
  readonly state: RequestState;
  /** True once the request is done, cancelled or failed. */
  readonly finished: boolean;
  /** The text made since the last poll ('' if none). */
  poll(): string;
  /** Takes effect at the next step: the request ends as 'cancelled' (what it made stays in the session). */
  cancel(): void;
  readonly metrics: Metrics;
  /** The library's message for a failed request, else null. */
  readonly error: string | null;
  /** Forgets the request; one still in progress is cancelled and freed once it has stopped. */
  release(): void;
  [Symbol.asyncIterator](): AsyncGenerator<string, void, undefined>;
}

/** Routes libember's log lines to `handler`; null restores the default (warnings on stderr). */
export function setLogger(handler: ((level: 'debug' | 'info' | 'warn' | 'error', message: string) => void) | null): void;
export function abiVersion(): number;
export function version(): string;
export function cpuKernels(): string;
/** The libember file this package loaded. */
export const libraryPath: string;
