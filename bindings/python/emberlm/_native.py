"""ctypes declarations of libember's C ABI (capi/ember.h) and how the library is found.

Every foreign call goes through ``ctypes.CDLL``, which releases the GIL for the
duration of the call: other Python threads run while a model loads or a
session generates, and the callbacks below take the GIL back only for the
moment they run.
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32, c_size_t,
                    c_uint32, c_uint64, c_void_p)
from pathlib import Path
from typing import List, Optional

#: The ABI this package was written for (EMBER_ABI_VERSION of capi/ember.h).
ABI_VERSION = 1

# ---- callbacks --------------------------------------------------------------------------------
# Pieces arrive as a raw pointer (not c_char_p) because they are not NUL-terminated.
PIECE_CALLBACK = CFUNCTYPE(c_int, c_void_p, c_size_t, c_int32, c_void_p)
PREFILL_CALLBACK = CFUNCTYPE(c_int, c_int32, c_int32, c_void_p)
PROGRESS_CALLBACK = CFUNCTYPE(c_int, c_float, c_char_p, c_void_p)
LOG_CALLBACK = CFUNCTYPE(None, c_int32, c_char_p, c_void_p)


# ---- structs: field for field as in capi/ember.h (only ever appended to) ----------------------
class ModelParams(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("n_threads", c_int32),
        ("progress", PROGRESS_CALLBACK),
        ("progress_user_data", c_void_p),
        ("f16_as_bf16", c_int32),
        ("reserved0", c_int32),
        ("kv_type", c_int32),
    ]


KV_TYPES = {"f32": 0, "f16": 1}  # ember_kv_type


class ModelInfo(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("architecture", c_char_p),
        ("name", c_char_p),
        ("n_params", c_uint64),
        ("n_ctx_train", c_int32),
        ("n_vocab", c_int32),
        ("n_embd", c_int32),
        ("n_layer", c_int32),
        ("n_head", c_int32),
        ("n_head_kv", c_int32),
        ("tensor_types", c_char_p),
        ("file_size", c_uint64),
        ("chat_template", c_char_p),
        ("gguf_version", c_uint32),
        ("n_tensors", c_int32),
        ("kernels", c_char_p),
        ("n_threads", c_int32),
    ]


class SessionParams(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("n_ctx", c_int32),
        ("n_batch", c_int32),
        ("seed", c_uint64),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("repeat_last_n", c_int32),
        ("overflow_policy", c_int32),
        ("n_keep", c_int32),
    ]


class GenerateParams(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("max_tokens", c_int32),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_size_t),
        ("on_piece", PIECE_CALLBACK),
        ("user_data", c_void_p),
        ("flags", c_uint32),
        ("on_prefill", PREFILL_CALLBACK),
    ]


class Metrics(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("n_prompt_tokens", c_int32),
        ("n_generated_tokens", c_int32),
        ("ttft_ms", c_double),
        ("tpot_ms", c_double),
        ("total_ms", c_double),
        ("prefill_tokens_per_s", c_double),
        ("decode_tokens_per_s", c_double),
        ("finish_reason", c_int32),
        ("n_context_shifts", c_int32),
    ]


class SchedulerParams(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("max_batch_tokens", c_int32),
        ("prefill_chunk", c_int32),
        ("kv_max_tokens", c_int32),
        ("kv_initial_tokens", c_int32),
    ]


class RequestParams(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("max_tokens", c_int32),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_size_t),
        ("priority", c_int32),
        ("flags", c_uint32),
        ("on_piece", PIECE_CALLBACK),
        ("user_data", c_void_p),
    ]


class StepStats(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("entries", c_int32),
        ("layers", c_int32),
        ("tokens_generated", c_int32),
        ("paused", c_int32),
        ("ms", c_double),
    ]


TOKENIZE_ADD_BOS = 1 << 0
TOKENIZE_PARSE_SPECIAL = 1 << 1
DETOKENIZE_SPECIAL = 1 << 0
SAVE_KV = 1 << 0

OVERFLOW_POLICIES = {"error": 0, "shift": 1, "shift_fast": 2}
REQUEST_STATES = {0: "queued", 1: "running", 2: "done", 3: "cancelled", 4: "failed"}

OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_CANCELLED = 7
ERR_BUFFER_TOO_SMALL = 9

_model_p = c_void_p
_session_p = c_void_p
_scheduler_p = c_void_p
_request = c_uint64
_i32_p = POINTER(c_int32)

# name: (restype, argtypes)
_PROTOTYPES = {
    "ember_last_error": (c_char_p, []),
    "ember_status_name": (c_char_p, [c_int]),
    "ember_abi_version": (c_uint32, []),
    "ember_version": (c_char_p, []),
    "ember_cpu_kernels": (c_char_p, []),
    "ember_log_set": (None, [LOG_CALLBACK, c_void_p]),
    "ember_model_params_init": (None, [POINTER(ModelParams), c_size_t]),
    "ember_model_load": (c_int, [c_char_p, POINTER(ModelParams), POINTER(_model_p)]),
    "ember_model_free": (None, [_model_p]),
    "ember_model_get_info": (c_int, [_model_p, POINTER(ModelInfo)]),
    "ember_model_n_vocab": (c_int32, [_model_p]),
    "ember_model_n_ctx_train": (c_int32, [_model_p]),
    "ember_token_bos": (c_int32, [_model_p]),
    "ember_token_eos": (c_int32, [_model_p]),
    "ember_token_is_eog": (c_int32, [_model_p, c_int32]),
    "ember_tokenize": (c_int, [_model_p, c_char_p, c_size_t, c_uint32, _i32_p, c_size_t, POINTER(c_size_t)]),
    "ember_detokenize": (c_int, [_model_p, _i32_p, c_size_t, c_uint32, c_void_p, c_size_t, POINTER(c_size_t)]),
    "ember_token_to_piece": (c_int, [_model_p, c_int32, c_uint32, c_void_p, c_size_t, POINTER(c_size_t)]),
    "ember_session_params_init": (None, [POINTER(SessionParams), c_size_t]),
    "ember_session_create": (c_int, [_model_p, POINTER(SessionParams), POINTER(_session_p)]),
    "ember_session_free": (None, [_session_p]),
    "ember_session_reset": (c_int, [_session_p]),
    "ember_session_memory": (c_size_t, [_session_p]),
    "ember_session_n_ctx": (c_int32, [_session_p]),
    "ember_session_n_tokens": (c_int32, [_session_p]),
    "ember_session_n_evaluated": (c_int32, [_session_p]),
    "ember_generate_params_init": (None, [POINTER(GenerateParams), c_size_t]),
    "ember_generate": (c_int, [_session_p, c_char_p, c_size_t, POINTER(GenerateParams), POINTER(Metrics)]),
    "ember_session_metrics": (c_int, [_session_p, POINTER(Metrics)]),
    "ember_session_eval": (c_int, [_session_p, _i32_p, c_size_t]),
    "ember_session_logits": (POINTER(c_float), [_session_p]),
    "ember_session_sample": (c_int, [_session_p, _i32_p]),
    "ember_session_accept": (c_int, [_session_p, c_int32]),
    "ember_scheduler_params_init": (None, [POINTER(SchedulerParams), c_size_t]),
    "ember_scheduler_create": (c_int, [_model_p, POINTER(SchedulerParams), POINTER(_scheduler_p)]),
    "ember_scheduler_free": (None, [_scheduler_p]),
    "ember_scheduler_session_create": (c_int, [_scheduler_p, POINTER(SessionParams), POINTER(_session_p)]),
    "ember_scheduler_kv_bytes": (c_size_t, [_scheduler_p]),
    "ember_session_fork": (c_int, [_session_p, POINTER(_session_p)]),
    "ember_session_prefill": (c_int, [_session_p, c_char_p, c_size_t, c_uint32]),
    "ember_request_params_init": (None, [POINTER(RequestParams), c_size_t]),
    "ember_submit": (c_int, [_scheduler_p, _session_p, c_char_p, c_size_t, POINTER(RequestParams), POINTER(_request)]),
    "ember_step": (c_int, [_scheduler_p, c_double, POINTER(StepStats)]),
    "ember_scheduler_run": (c_int, [_scheduler_p]),
    "ember_request_get_state": (c_int, [_scheduler_p, _request, _i32_p]),
    "ember_request_poll": (c_int, [_scheduler_p, _request, c_void_p, c_size_t, POINTER(c_size_t)]),
    "ember_request_cancel": (c_int, [_scheduler_p, _request]),
    "ember_request_metrics": (c_int, [_scheduler_p, _request, POINTER(Metrics)]),
    "ember_request_error": (c_char_p, [_scheduler_p, _request]),
    "ember_request_release": (c_int, [_scheduler_p, _request]),
    "ember_session_save": (c_int, [_session_p, c_uint32, c_void_p, c_size_t, POINTER(c_size_t)]),
    "ember_session_load": (c_int, [_session_p, c_char_p, c_size_t]),
}


def _candidates() -> List[str]:
    """Where libember is looked for, in order."""
    found: List[str] = []
    env = os.environ.get("EMBER_LIBRARY")
    if env:
        return [env]  # explicit: nothing else is tried
    here = Path(__file__).resolve().parent
    # a copy bundled into the package at install time (see setup.py)
    for name in ("libember.so.1", "libember.so"):
        if (here / name).exists():
            found.append(str(here / name))
    # a build tree of the repository this package sits in (bindings/python/emberlm -> build/)
    for parent in list(here.parents)[:4]:
        for build in ("build", "build-release"):
            lib = parent / build / "libember.so.1"
            if lib.exists():
                found.append(str(lib))
    # the system's search path (after `cmake --install build` and ldconfig)
    found.append("libember.so.1")
    return found


def _load() -> ctypes.CDLL:
    errors = []
    for cand in _candidates():
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            errors.append(f"{cand}: {e}")
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise ImportError(f"emberlm: {cand} has no {name}: the library is older than this package") from None
            fn.restype = restype
            fn.argtypes = argtypes
        abi = lib.ember_abi_version()
        if abi != ABI_VERSION:
            raise ImportError(f"emberlm: {cand} has C ABI {abi}, this package needs ABI {ABI_VERSION}")
        lib._ember_path = cand  # type: ignore[attr-defined]
        return lib
    raise ImportError(
        "emberlm: cannot find libember (build it with `cmake --build build`, install it with "
        "`cmake --install build`, or set EMBER_LIBRARY to its path). Tried:\n  " + "\n  ".join(errors))


lib = _load()
library_path: str = lib._ember_path  # type: ignore[attr-defined]


def last_error() -> str:
    msg: Optional[bytes] = lib.ember_last_error()
    return msg.decode("utf-8", "replace") if msg else ""
