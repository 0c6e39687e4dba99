"""Model: a loaded GGUF file (weights memory-mapped, shared by its sessions)."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Union

from . import _native as N
from ._handle import NativeHandle
from .errors import InvalidArgumentError, UnsupportedError, error_for

if TYPE_CHECKING:
    from .scheduler import Scheduler
    from .session import Session

#: progress(fraction, stage) -> a true value cancels the load
ProgressCallback = Callable[[float, str], Optional[bool]]


def check(status: int) -> None:
    """Raises the exception for a non-OK status, with the library's message (read
    on this thread, right after the call)."""
    if status != N.OK:
        raise error_for(status, N.last_error())


@dataclass(frozen=True)
class ModelInfo:
    """What a model is (ember_model_info)."""
    architecture: str
    name: str
    n_params: int
    n_ctx_train: int
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    tensor_types: Dict[str, int]   # tensor count per GGUF type, e.g. {"Q4_0": 155, "F32": 45}
    file_size: int                 # bytes
    chat_template: Optional[str]   # the file's Jinja chat template, if any
    gguf_version: int
    n_tensors: int
    kernels: str                   # kernel set in use: "amx", "avx512bf16", "avx512", "avx2", ...
    n_threads: int


def _s(b: Optional[bytes]) -> str:
    return b.decode("utf-8", "replace") if b else ""


class Model(NativeHandle):
    """A GGUF model loaded by libember.

    ``Model(path, n_threads=0, progress=None, kv_type="f32", f16_as_bf16=False)``
    maps and validates the file. ``kv_type="f16"`` keeps every session's keys
    and values in float16: half the KV memory, each value rounded when
    written (llama.cpp's default). ``f16_as_bf16`` rounds F16 weights to BF16
    for the AVX512-BF16 kernels (faster, lossy).
    ``progress(fraction, stage)`` is called after each load stage ("parsed",
    "weights", "tokenizer", "ready"); returning a true value (or raising)
    cancels the load. Errors raise subclasses of :class:`EmberError`
    (``EmberIOError`` for a missing file, ``BadFormatError`` for a corrupt one).

    A model is immutable and thread-safe; sessions made from it may run on
    different threads at once. Use it as a context manager, or call
    :meth:`close`, to unmap the file (sessions keep the weights alive until
    they are closed too).
    """

    _kind = "model"

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, n_threads: int = 0,
                 progress: Optional[ProgressCallback] = None, kv_type: str = "f32",
                 f16_as_bf16: bool = False) -> None:
        self._handle: Optional[int] = None
        self._info: Optional[ModelInfo] = None
        self.path = os.fspath(path)
        params = N.ModelParams()
        N.lib.ember_model_params_init(ctypes.byref(params), ctypes.sizeof(params))
        params.n_threads = int(n_threads)
        if kv_type not in N.KV_TYPES:
            raise ValueError(f"kv_type must be 'f32' or 'f16', not {kv_type!r}")
        params.kv_type = N.KV_TYPES[kv_type]
        params.f16_as_bf16 = 1 if f16_as_bf16 else 0
        raised: List[BaseException] = []
        if progress is not None:
            def on_progress(fraction: float, stage: Optional[bytes], _ud: Any) -> int:
                try:
                    return 1 if progress(float(fraction), _s(stage)) else 0
                except BaseException as e:  # noqa: BLE001 - re-raised after the call
                    raised.append(e)
                    return 1
            params.progress = N.PROGRESS_CALLBACK(on_progress)
        handle = ctypes.c_void_p()
        status = N.lib.ember_model_load(self.path.encode("utf-8"), ctypes.byref(params), ctypes.byref(handle))
        if raised:
            raise raised[0]
        check(status)
        self._handle = handle.value

    # ---- lifetime
    def close(self) -> None:
        """Frees the native model (idempotent). Sessions already made keep working."""
        h, self._handle = self._handle, None
        if h:
            N.lib.ember_model_free(h)


    def __repr__(self) -> str:
        if self._handle is None:
            return f"<emberlm.Model {self.path!r} (closed)>"
        i = self.info
        return f"<emberlm.Model {self.path!r} {i.architecture} {i.n_params} params>"

    # ---- facts
    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raw = N.ModelInfo()
            raw.size = ctypes.sizeof(raw)
            check(N.lib.ember_model_get_info(self._h(), ctypes.byref(raw)))
            types: Dict[str, int] = {}
            for part in _s(raw.tensor_types).split(","):
                if part:
                    name, _, count = part.partition(":")
                    types[name] = int(count)
            self._info = ModelInfo(
                architecture=_s(raw.architecture), name=_s(raw.name), n_params=raw.n_params,
                n_ctx_train=raw.n_ctx_train, n_vocab=raw.n_vocab, n_embd=raw.n_embd, n_layer=raw.n_layer,
                n_head=raw.n_head, n_head_kv=raw.n_head_kv, tensor_types=types, file_size=raw.file_size,
                chat_template=raw.chat_template.decode("utf-8", "replace") if raw.chat_template else None,
                gguf_version=raw.gguf_version, n_tensors=raw.n_tensors, kernels=_s(raw.kernels),
                n_threads=raw.n_threads)
        return self._info

    @property
    def n_vocab(self) -> int:
        return int(N.lib.ember_model_n_vocab(self._h()))

    @property
    def bos(self) -> Optional[int]:
        t = N.lib.ember_token_bos(self._h())
        return None if t < 0 else int(t)

    @property
    def eos(self) -> Optional[int]:
        t = N.lib.ember_token_eos(self._h())
        return None if t < 0 else int(t)

    def is_eog(self, token: int) -> bool:
        """True if `token` ends a generation (EOS, end of turn...)."""
        return bool(N.lib.ember_token_is_eog(self._h(), int(token)))

    # ---- text <-> tokens
    def tokenize(self, text: Union[str, bytes], *, add_bos: bool = True, special: bool = False) -> List[int]:
        """Token ids of `text`. add_bos prepends BOS (if the vocabulary has one);
        special lets control-token text (like "</s>") map to control tokens."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = (N.TOKENIZE_ADD_BOS if add_bos else 0) | (N.TOKENIZE_PARSE_SPECIAL if special else 0)
        n = ctypes.c_size_t(0)
        cap = len(data) + 2  # SentencePiece never makes more tokens than bytes (+BOS)
        while True:
            buf = (ctypes.c_int32 * max(cap, 1))()
            st = N.lib.ember_tokenize(self._h(), data, len(data), flags, buf, cap, ctypes.byref(n))
            if st == N.ERR_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            check(st)
            return list(buf[: n.value])

    def detokenize(self, tokens: Iterable[int], *, special: bool = False) -> str:
        """Text of `tokens` (the dummy-prefix space of SentencePiece removed)."""
        ids = list(tokens)
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        n = ctypes.c_size_t(0)
        cap = 16 * len(ids) + 16
        flags = N.DETOKENIZE_SPECIAL if special else 0
        while True:
            buf = ctypes.create_string_buffer(cap)
            st = N.lib.ember_detokenize(self._h(), arr, len(ids), flags, buf, cap, ctypes.byref(n))
            if st == N.ERR_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            check(st)
            return buf.raw[: n.value].decode("utf-8", "replace")

    def apply_chat_template(self, messages: Iterable[Dict[str, Any]], *, add_generation_prompt: bool = True,
                            template: Optional[str] = None, **variables: Any) -> str:
        """The prompt text for a conversation, rendered with the model's chat
        template (``tokenizer.chat_template``, or `template`) the way model
        publishers render it: Jinja2 in an immutable sandbox, blocks trimmed,
        with ``messages``, ``add_generation_prompt``, ``bos_token``,
        ``eos_token`` and any extra `variables`. Each message is a dict with
        "role" ("system", "user", "assistant") and "content" (and whatever
        else the template reads, e.g. "name"). Needs Jinja2 (Debian:
        python3-jinja2). Generate from the result with ``special=True`` so
        control tokens in it are parsed."""
        text = template if template is not None else self.info.chat_template
        if not text:
            raise InvalidArgumentError(f"{self.path}: the model has no chat template (pass template=...)")
        try:
            from jinja2 import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError as e:  # pragma: no cover - depends on the machine
            raise UnsupportedError("apply_chat_template needs Jinja2 (Debian: python3-jinja2)") from e

        def raise_exception(message: str) -> None:
            raise InvalidArgumentError(f"chat template: {message}")

        def piece(token: Optional[int]) -> str:
            return "" if token is None else self.token_to_piece(token, special=True).decode("utf-8", "replace")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        msgs = [dict(m) for m in messages]
        for m in msgs:
            if "role" not in m or "content" not in m:
                raise InvalidArgumentError("each message needs a 'role' and a 'content'")
        try:
            return env.from_string(text).render(messages=msgs, add_generation_prompt=add_generation_prompt,
                                                bos_token=piece(self.bos), eos_token=piece(self.eos), **variables)
        except TemplateError as e:
            raise InvalidArgumentError(f"chat template: {e}") from e

    def token_to_piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes one token contributes (may be part of a UTF-8 character)."""
        n = ctypes.c_size_t(0)
        cap = 64
        flags = N.DETOKENIZE_SPECIAL if special else 0
        while True:
            buf = ctypes.create_string_buffer(cap)
            st = N.lib.ember_token_to_piece(self._h(), int(token), flags, buf, cap, ctypes.byref(n))
            if st == N.ERR_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value
                continue
            check(st)
            return buf.raw[: n.value]

    # ---- sessions
    def session(self, **params: Any) -> "Session":
        """A new conversation on this model; see :class:`emberlm.Session` for the settings
        (n_ctx, n_batch, seed, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n,
        overflow_policy, n_keep)."""
        from .session import Session
        return Session(self, **params)

    def scheduler(self, **params: Any) -> "Scheduler":
        """A scheduler for many sessions on this model (NPCs): see :class:`emberlm.Scheduler`
        for the settings (max_batch_tokens, prefill_chunk, kv_max_tokens, kv_initial_tokens)."""
        from .scheduler import Scheduler
        return Scheduler(self, **params)


__all__ = ["Model", "ModelInfo", "ProgressCallback", "check"]
