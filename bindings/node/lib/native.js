'use strict';
// koffi declarations of libember's C ABI (capi/ember.h) and how the library is
// found. Loaded by the main thread and by each model's worker thread.
const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

/** The ABI this package was written for (EMBER_ABI_VERSION of capi/ember.h). */
const ABI_VERSION = 1;

function candidates() {
  if (process.env.EMBER_LIBRARY) return [process.env.EMBER_LIBRARY];
  const found = [];
  const bundled = path.join(__dirname, '..', 'libember.so.1');
  if (fs.existsSync(bundled)) found.push(bundled);
  // a build tree of the repository this package sits in (bindings/node/lib -> build/)
  let dir = path.resolve(__dirname, '..');
  for (let i = 0; i < 4; ++i) {
    dir = path.dirname(dir);
    const lib = path.join(dir, 'build', 'libember.so.1');
    if (fs.existsSync(lib)) found.push(lib);
  }
  found.push('libember.so.1'); // the system's search path (after `cmake --install build` and ldconfig)
  return found;
}

function open(explicit) {
  const errors = [];
  for (const cand of explicit ? [explicit] : candidates()) {
    try {
      return { lib: koffi.load(cand), libraryPath: cand };
    } catch (e) {
      errors.push(`${cand}: ${e.message}`);
    }
  }
  throw new Error('emberlm: cannot find libember (build it with `cmake --build build`, install it with ' +
                  '`cmake --install build`, or set EMBER_LIBRARY to its path). Tried:\n  ' + errors.join('\n  '));
}

// Types are registered once per thread (koffi is per isolate).
koffi.opaque('ember_model');
koffi.opaque('ember_session');
koffi.opaque('ember_scheduler');
// Pieces come as a pointer and a length: they are not NUL-terminated.
koffi.proto('int ember_piece_callback(const void* piece, size_t len, int32_t token, void* user_data)');
koffi.proto('int ember_prefill_callback(int32_t done, int32_t total, void* user_data)');
koffi.proto('int ember_progress_callback(float progress, const char* stage, void* user_data)');
const LogCallback = koffi.proto('void ember_log_callback(int32_t level, const char* message, void* user_data)');

// Field for field as in capi/ember.h (only ever appended to).
const ModelParams = koffi.struct('ember_model_params', {
  size: 'uint32_t', n_threads: 'int32_t', progress: 'ember_progress_callback*', progress_user_data: 'void*',
  f16_as_bf16: 'int32_t', reserved0: 'int32_t', kv_type: 'int32_t',
});
const ModelInfo = koffi.struct('ember_model_info', {
  size: 'uint32_t', architecture: 'const char*', name: 'const char*', n_params: 'uint64_t',
  n_ctx_train: 'int32_t', n_vocab: 'int32_t', n_embd: 'int32_t', n_layer: 'int32_t', n_head: 'int32_t',
  n_head_kv: 'int32_t', tensor_types: 'const char*', file_size: 'uint64_t', chat_template: 'const char*',
  gguf_version: 'uint32_t', n_tensors: 'int32_t', kernels: 'const char*', n_threads: 'int32_t',
});
const SessionParams = koffi.struct('ember_session_params', {
  size: 'uint32_t', n_ctx: 'int32_t', n_batch: 'int32_t', seed: 'uint64_t', temperature: 'float', top_k: 'int32_t',
  top_p: 'float', min_p: 'float', repeat_penalty: 'float', repeat_last_n: 'int32_t',
  overflow_policy: 'int32_t', n_keep: 'int32_t',
});
const GenerateParams = koffi.struct('ember_generate_params', {
  size: 'uint32_t', max_tokens: 'int32_t', stop: 'const char**', n_stop: 'size_t',
  on_piece: 'ember_piece_callback*', user_data: 'void*', flags: 'uint32_t',
  on_prefill: 'ember_prefill_callback*',
});
const Metrics = koffi.struct('ember_metrics', {
  size: 'uint32_t', n_prompt_tokens: 'int32_t', n_generated_tokens: 'int32_t', ttft_ms: 'double', tpot_ms: 'double',
  total_ms: 'double', prefill_tokens_per_s: 'double', decode_tokens_per_s: 'double', finish_reason: 'int32_t',
  n_context_shifts: 'int32_t',
});

const SchedulerParams = koffi.struct('ember_scheduler_params', {
  size: 'uint32_t', max_batch_tokens: 'int32_t', prefill_chunk: 'int32_t', kv_max_tokens: 'int32_t',
  kv_initial_tokens: 'int32_t',
});
const RequestParams = koffi.struct('ember_request_params', {
  size: 'uint32_t', max_tokens: 'int32_t', stop: 'const char**', n_stop: 'size_t', priority: 'int32_t',
  flags: 'uint32_t', on_piece: 'ember_piece_callback*', user_data: 'void*',
});
const StepStats = koffi.struct('ember_step_stats', {
  size: 'uint32_t', entries: 'int32_t', layers: 'int32_t', tokens_generated: 'int32_t', paused: 'int32_t',
  ms: 'double',
});

const PROTOTYPES = [
  'const char* ember_last_error(void)',
  'const char* ember_status_name(int status)',
  'uint32_t ember_abi_version(void)',
  'const char* ember_version(void)',
  'const char* ember_cpu_kernels(void)',
  'void ember_log_set(ember_log_callback* callback, void* user_data)',
  'void ember_model_params_init(_Out_ ember_model_params* params, size_t size)',
  'int ember_model_load(const char* path, const ember_model_params* params, _Out_ ember_model** out)',
  'void ember_model_free(ember_model* model)',
  'int ember_model_get_info(const ember_model* model, _Inout_ ember_model_info* info)',
  'int32_t ember_model_n_vocab(const ember_model* model)',
  'int32_t ember_token_bos(const ember_model* model)',
  'int32_t ember_token_eos(const ember_model* model)',
  'int32_t ember_token_is_eog(const ember_model* model, int32_t token)',
  'int ember_tokenize(const ember_model* model, const void* text, size_t text_len, uint32_t flags, _Out_ int32_t* tokens, size_t capacity, _Out_ size_t* n_tokens)',
  'int ember_detokenize(const ember_model* model, const int32_t* tokens, size_t n, uint32_t flags, _Out_ uint8_t* text, size_t capacity, _Out_ size_t* text_len)',
  'int ember_token_to_piece(const ember_model* model, int32_t token, uint32_t flags, _Out_ uint8_t* piece, size_t capacity, _Out_ size_t* piece_len)',
  'void ember_session_params_init(_Out_ ember_session_params* params, size_t size)',
  'int ember_session_create(ember_model* model, const ember_session_params* params, _Out_ ember_session** out)',
  'void ember_session_free(ember_session* session)',
  'int ember_session_reset(ember_session* session)',
  'size_t ember_session_memory(const ember_session* session)',
  'int32_t ember_session_n_ctx(const ember_session* session)',
  'int32_t ember_session_n_tokens(const ember_session* session)',
  'int32_t ember_session_n_evaluated(const ember_session* session)',
  'void ember_generate_params_init(_Out_ ember_generate_params* params, size_t size)',
  'int ember_generate(ember_session* session, const void* prompt, size_t prompt_len, const ember_generate_params* params, _Inout_ ember_metrics* metrics)',
  'int ember_session_metrics(const ember_session* session, _Inout_ ember_metrics* metrics)',
  'int ember_session_eval(ember_session* session, const int32_t* tokens, size_t n)',
  'const float* ember_session_logits(ember_session* session)',
  'int ember_session_sample(ember_session* session, _Out_ int32_t* token)',
  'int ember_session_accept(ember_session* session, int32_t token)',
  'void ember_scheduler_params_init(_Out_ ember_scheduler_params* params, size_t size)',
  'int ember_scheduler_create(ember_model* model, const ember_scheduler_params* params, _Out_ ember_scheduler** out)',
  'void ember_scheduler_free(ember_scheduler* sched)',
  'int ember_scheduler_session_create(ember_scheduler* sched, const ember_session_params* params, _Out_ ember_session** out)',
  'size_t ember_scheduler_kv_bytes(const ember_scheduler* sched)',
  'int ember_session_fork(const ember_session* parent, _Out_ ember_session** out)',
  'int ember_session_prefill(ember_session* session, const void* text, size_t len, uint32_t flags)',
  'void ember_request_params_init(_Out_ ember_request_params* params, size_t size)',
  'int ember_submit(ember_scheduler* sched, ember_session* session, const void* prompt, size_t prompt_len, const ember_request_params* params, _Out_ uint64_t* out)',
  'int ember_step(ember_scheduler* sched, double budget_ms, _Inout_ ember_step_stats* stats)',
  'int ember_scheduler_run(ember_scheduler* sched)',
  'int ember_request_get_state(const ember_scheduler* sched, uint64_t req, _Out_ int32_t* state)',
  'int ember_request_poll(ember_scheduler* sched, uint64_t req, _Out_ uint8_t* text, size_t capacity, _Out_ size_t* len)',
  'int ember_request_cancel(ember_scheduler* sched, uint64_t req)',
  'int ember_request_metrics(const ember_scheduler* sched, uint64_t req, _Inout_ ember_metrics* metrics)',
  'const char* ember_request_error(const ember_scheduler* sched, uint64_t req)',
  'int ember_request_release(ember_scheduler* sched, uint64_t req)',
  'int ember_session_save(const ember_session* session, uint32_t flags, _Out_ uint8_t* data, size_t capacity, _Out_ size_t* len)',
  'int ember_session_load(ember_session* session, const void* data, size_t len)',
];

function bind(explicit) {
  const { lib, libraryPath } = open(explicit);
  const fn = {};
  for (const proto of PROTOTYPES) {
    const name = /(ember_[a-z_]+)\(/.exec(proto)[1];
    try {
      fn[name.slice('ember_'.length)] = lib.func(proto);
    } catch (e) {
      throw new Error(`emberlm: ${libraryPath} has no usable ${name} (the library is older than this package?): ${e.message}`);
    }
  }
  // Defaults for exactly the struct this package knows (the library never
  // writes past the size it is given, whatever its own struct has grown to).
  fn.model_default_params = (p) => fn.model_params_init(p, koffi.sizeof(ModelParams));
  fn.session_default_params = (p) => fn.session_params_init(p, koffi.sizeof(SessionParams));
  fn.generate_default_params = (p) => fn.generate_params_init(p, koffi.sizeof(GenerateParams));
  fn.scheduler_default_params = (p) => fn.scheduler_params_init(p, koffi.sizeof(SchedulerParams));
  fn.request_default_params = (p) => fn.request_params_init(p, koffi.sizeof(RequestParams));
  const abi = fn.abi_version();
  if (abi !== ABI_VERSION) {
    throw new Error(`emberlm: ${libraryPath} has C ABI ${abi}, this package needs ABI ${ABI_VERSION}`);
  }
  return { fn, libraryPath };
}

module.exports = {
  koffi, bind, ABI_VERSION, LogCallback, ModelParams, ModelInfo, SessionParams, GenerateParams, Metrics,
  SchedulerParams, RequestParams, StepStats,
  TOKENIZE_ADD_BOS: 1, TOKENIZE_PARSE_SPECIAL: 2, DETOKENIZE_SPECIAL: 1, SAVE_KV: 1,
  OK: 0, ERR_INVALID_ARGUMENT: 1, ERR_CANCELLED: 7, ERR_INTERNAL: 8, ERR_BUFFER_TOO_SMALL: 9,
};
