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
  /** Kernel set in use: 'avx512', 'avx2', 'sse2', 'neon', 'scalar'. */
  readonly kernels: string;
  readonly nThreads: number;
}

export interface LoadOptions {
  /** Threads of the model's pool, the calling worker included; 0 = automatic. */
  threads?: number;
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
}

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
  session(options?: SessionOptions): Session;
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
  /** Bytes the session holds (KV cache, scratch). */
  readonly memory: number;
  /** Figures of the last finished generate, or null. */
  readonly metrics: Metrics | null;
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

/** Routes libember's log lines to `handler`; null restores the default (warnings on stderr). */
export function setLogger(handler: ((level: 'debug' | 'info' | 'warn' | 'error', message: string) => void) | null): void;
export function abiVersion(): number;
export function version(): string;
export function cpuKernels(): string;
/** The libember file this package loaded. */
export const libraryPath: string;
