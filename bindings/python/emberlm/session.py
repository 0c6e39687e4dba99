"""Session: one conversation (token history, KV cache, sampler) on a Model."""
from __future__ import annotations

import array
import contextlib
import ctypes
import queue
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, List, Literal, Optional, Sequence, Union, overload

from . import _native as N
from ._handle import Closing, NativeHandle
from .errors import InvalidArgumentError, error_for
from .model import Model, check

if TYPE_CHECKING:
    from .scheduler import Scheduler

FINISH_REASONS = {0: None, 1: "eos", 2: "max_tokens", 3: "stop", 4: "context_full", 5: "cancelled"}


@dataclass(frozen=True)
class Metrics:
    """Figures of one generate request (ember_metrics)."""
    n_prompt_tokens: int        # tokens evaluated before the first sample
    n_generated_tokens: int
    ttft_ms: float              # time to first token
    tpot_ms: float              # mean time per output token after the first
    total_ms: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    finish_reason: Optional[str]  # "eos", "max_tokens", "stop", "context_full", "cancelled"
    n_context_shifts: int = 0     # times the overflow policy dropped old tokens

    @staticmethod
    def _from(m: N.Metrics) -> "Metrics":
        return Metrics(m.n_prompt_tokens, m.n_generated_tokens, m.ttft_ms, m.tpot_ms, m.total_ms,
                       m.prefill_tokens_per_s, m.decode_tokens_per_s, FINISH_REASONS.get(m.finish_reason),
                       m.n_context_shifts)


_END = object()


class _StreamState:
    """What a stream's worker thread shares with its consumer. The worker holds
    only this (not the TextStream), so a stream dropped by its reader -- a
    ``break`` out of ``for piece in session.generate(..., stream=True)`` -- is
    collected at once and its finalizer cancels the generation."""

    def __init__(self, lookahead: int) -> None:
        self.queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self.cancel = threading.Event()
        self.slots = threading.Semaphore(lookahead)  # pieces the worker may run ahead
        self.metrics: Optional[Metrics] = None


def _stream_worker(state: _StreamState, session: "Session", prompt: bytes, gp: "_GenerateArgs") -> None:
    try:
        def on_piece(piece: str) -> bool:
            while not state.slots.acquire(timeout=0.05):
                if state.cancel.is_set():
                    return True
            if state.cancel.is_set():
                return True
            state.queue.put(piece)
            return False
        status, metrics = session._generate_locked(prompt, gp, on_piece, cancelled=state.cancel.is_set)
        state.metrics = metrics
        if status == N.ERR_CANCELLED and state.cancel.is_set():
            state.queue.put(_END)
        elif status != N.OK:
            state.queue.put(error_for(status, N.last_error()))
        else:
            state.queue.put(_END)
    except BaseException as e:  # noqa: BLE001 - handed to the consumer
        state.queue.put(e)


class TextStream(Closing, Iterator[str]):
    """Pieces of generated text as they are made (``Session.generate(..., stream=True)``).

    Generation runs in a worker thread (libember releases the GIL) and hands
    each UTF-8-complete piece through a queue; it runs at most LOOKAHEAD
    pieces ahead of the consumer. Stopping early -- ``break`` out of the loop,
    :meth:`close`, or leaving a ``with`` block -- cancels the generation at
    its next token; what was generated stays in the session, which is usable
    again at once. After the stream ends, :attr:`text` holds everything it
    yielded and :attr:`metrics` the request's figures.
    """

    LOOKAHEAD = 8

    def __init__(self, session: "Session", prompt: bytes, gp: "_GenerateArgs") -> None:
        self._session = session
        self._state = _StreamState(self.LOOKAHEAD)
        self._finished = False
        self._pieces: List[str] = []
        self._thread = threading.Thread(target=_stream_worker, args=(self._state, session, prompt, gp),
                                        name="emberlm-generate", daemon=True)
        self._thread.start()

    @property
    def metrics(self) -> Optional[Metrics]:
        """The request's figures, once it has ended."""
        return self._state.metrics

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        if self._finished:
            raise StopIteration
        item = self._state.queue.get()
        if item is _END:
            self._finish()
            raise StopIteration
        if isinstance(item, BaseException):
            self._finish()
            raise item
        self._state.slots.release()
        self._pieces.append(item)
        return item

    def _finish(self) -> None:
        self._finished = True
        if threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def text(self) -> str:
        """The text yielded so far."""
        return "".join(self._pieces)

    def close(self) -> None:
        """Cancels the generation (if still running) and waits for it to stop."""
        if self._finished:
            return
        self._state.cancel.set()
        self._state.slots.release()  # wake a worker waiting for room
        self._finish()


@dataclass
class _GenerateArgs:
    max_tokens: int
    stop: Sequence[str]
    special: bool


#: What a session does when its conversation reaches n_ctx: "error" ends the request with
#: finish_reason "context_full"; "shift" keeps the first n_keep tokens, drops the oldest half of the rest
#: and re-evaluates what follows (exact; one prefill); "shift_fast" keeps and drops the same tokens but
#: moves the cached entries instead of re-evaluating them (no stall; approximate)
OverflowPolicy = Literal["error", "shift", "shift_fast"]


def _session_params(**settings: Any) -> N.SessionParams:
    """An ember_session_params with the library's defaults and the settings that are not None."""
    p = N.SessionParams()
    N.lib.ember_session_params_init(ctypes.byref(p), ctypes.sizeof(p))
    fields = {f[0] for f in N.SessionParams._fields_}
    for name, value in settings.items():
        if name not in fields or name == "size":
            raise InvalidArgumentError(f"unknown session setting {name!r}")
        if value is None:
            continue
        if name == "seed" and not 0 <= int(value) < 2**64:
            raise InvalidArgumentError("seed must be in [0, 2**64)")
        if name == "overflow_policy":
            if value not in N.OVERFLOW_POLICIES:
                raise InvalidArgumentError(f"overflow_policy must be 'error', 'shift' or 'shift_fast', not {value!r}")
            value = N.OVERFLOW_POLICIES[value]
        setattr(p, name, value)
    return p


class Session(NativeHandle):
    """One conversation on a :class:`Model`: its history, KV cache and sampler.

    Settings left as None take the library's defaults (temperature 0.8, top_k
    40, top_p 0.95, min_p 0.05, repeat_penalty 1.0, n_ctx = the model's, at most
    4096, overflow_policy "error"). ``overflow_policy="shift"`` lets a long
    conversation go on when it reaches n_ctx: the first ``n_keep`` tokens (-1:
    the first prompt, e.g. a persona) are kept and the oldest half of the rest
    is dropped (``"shift_fast"``: the same, without re-evaluating what
    follows the dropped span: no stall, approximate). The same seed, model and inputs give the same text everywhere
    (C, Python, Node). A session is used by one thread at a time; any call made
    while a stream is open (reading n_tokens or metrics included) first
    cancels that stream. Sessions made by :meth:`Scheduler.session` (and their
    forks) share the scheduler's KV memory and its lock: a call on the
    scheduler, its requests or any of its sessions first cancels a stream
    open on any of them.
    """

    _kind = "session"

    def __init__(self, model: Model, *, n_ctx: Optional[int] = None, n_batch: Optional[int] = None,
                 seed: Optional[int] = None, temperature: Optional[float] = None, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, min_p: Optional[float] = None,
                 repeat_penalty: Optional[float] = None, repeat_last_n: Optional[int] = None,
                 overflow_policy: Optional[OverflowPolicy] = None, n_keep: Optional[int] = None) -> None:
        self._handle: Optional[int] = None
        p = _session_params(n_ctx=n_ctx, n_batch=n_batch, seed=seed, temperature=temperature, top_k=top_k,
                            top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                            overflow_policy=overflow_policy, n_keep=n_keep)
        handle = ctypes.c_void_p()
        check(N.lib.ember_session_create(model._h(), ctypes.byref(p), ctypes.byref(handle)))
        self._adopt(model, handle.value, None, model.n_vocab)

    def _adopt(self, model: Model, handle: Optional[int], scheduler: Optional["Scheduler"], n_vocab: int) -> None:
        """Takes ownership of a native session (made here, by a scheduler or by fork)."""
        self._handle = handle
        # A scheduler's sessions share its KV pool and its lock (one thread drives a scheduler at a time).
        self._lock: ContextManager[Any] = scheduler._lock if scheduler is not None else threading.Lock()
        self._stream: Optional["weakref.ref[TextStream]"] = None  # the stream last opened
        self._scheduler = scheduler
        self._request_id = 0  # its last request on the scheduler
        self.model = model
        self._n_vocab = n_vocab

    @classmethod
    def _wrap(cls, model: Model, handle: Optional[int], scheduler: Optional["Scheduler"], n_vocab: int) -> "Session":
        s = cls.__new__(cls)
        s._handle = None
        s._adopt(model, handle, scheduler, n_vocab)
        if scheduler is not None:
            scheduler._sessions.add(s)
        return s

    # ---- lifetime
    def close(self) -> None:
        """Cancels a running stream and frees the native session (idempotent)."""
        self._stop_stream()
        with self._lock:
            h, self._handle = self._handle, None
            if h:
                N.lib.ember_session_free(h)


    @contextlib.contextmanager
    def _use(self) -> Iterator[None]:
        """The session's lock, for calls that use the conversation: a scheduler's
        session must not be running a request meanwhile."""
        with self._lock:
            sched = self._scheduler
            if self._request_id and sched is not None and sched._handle is not None:
                state = ctypes.c_int32(-1)
                if (N.lib.ember_request_get_state(sched._handle, self._request_id, ctypes.byref(state)) == N.OK
                        and state.value in (0, 1)):
                    raise InvalidArgumentError("the session has a request in progress on its scheduler: "
                                               "let it end (or cancel it) first")
            yield

    def _stop_stream(self) -> None:
        if self._scheduler is not None:
            # its sessions share one lock, which a stream on any of them holds: stop them all
            self._scheduler._stop_streams()
        else:
            self._stop_own_stream()

    def _stop_own_stream(self) -> None:
        s = self._stream() if self._stream is not None else None
        if s is not None and threading.current_thread() is not s._thread:
            s.close()
        self._stream = None

    # ---- facts
    @property
    def n_ctx(self) -> int:
        return int(N.lib.ember_session_n_ctx(self._h()))

    @property
    def n_tokens(self) -> int:
        """Tokens in the conversation so far."""
        self._stop_stream()
        with self._lock:
            return int(N.lib.ember_session_n_tokens(self._h()))

    @property
    def n_evaluated(self) -> int:
        """Of those, the tokens already in the KV cache."""
        self._stop_stream()
        with self._lock:
            return int(N.lib.ember_session_n_evaluated(self._h()))

    @property
    def memory(self) -> int:
        """Bytes this session holds alone (KV cache, logits; scratch is the model's)."""
        self._stop_stream()
        with self._lock:
            return int(N.lib.ember_session_memory(self._h()))

    @property
    def metrics(self) -> Metrics:
        """Figures of the last generate request."""
        self._stop_stream()
        m = N.Metrics()
        m.size = ctypes.sizeof(m)
        with self._lock:
            check(N.lib.ember_session_metrics(self._h(), ctypes.byref(m)))
        return Metrics._from(m)

    def reset(self) -> None:
        """Forgets the conversation; keeps the settings."""
        self._stop_stream()
        with self._use():
            check(N.lib.ember_session_reset(self._h()))

    @property
    def scheduler(self) -> Optional["Scheduler"]:
        """The scheduler whose KV memory this session uses (None for a plain session)."""
        return self._scheduler

    # ---- forks, prefill, savegames
    def fork(self) -> "Session":
        """A new session continuing this conversation: same history, settings and
        RNG state. Its KV cache shares this one's copy-on-write, so a prefix
        prefilled once (a persona, the world's lore) serves every fork and costs
        memory only for what each fork adds. Belongs to this session's
        scheduler, if any."""
        self._stop_stream()
        handle = ctypes.c_void_p()
        with self._use():
            check(N.lib.ember_session_fork(self._h(), ctypes.byref(handle)))
        return Session._wrap(self.model, handle.value, self._scheduler, self._n_vocab)

    def prefill(self, text: str, *, special: bool = False) -> None:
        """Appends `text` to the conversation and evaluates it now, without
        generating (BOS first on an empty session): a persona or lore
        prefilled before forking. ``special`` lets control-token text map to
        control tokens. Raises ContextFullError (session unchanged) when it does not fit."""
        if not isinstance(text, str):
            raise InvalidArgumentError("text must be a str")
        data = text.encode("utf-8")
        self._stop_stream()
        with self._use():
            check(N.lib.ember_session_prefill(self._h(), data, len(data), N.TOKENIZE_PARSE_SPECIAL if special else 0))

    def save(self, with_kv: bool = False) -> bytes:
        """A savegame of this session: the conversation, the sampler settings and
        RNG state, tagged with the model's content hash; ``with_kv`` adds the
        evaluated KV cache (instant resume, larger). Restore it with :meth:`load`."""
        self._stop_stream()
        flags = N.SAVE_KV if with_kv else 0
        n = ctypes.c_size_t(0)
        with self._use():
            st = N.lib.ember_session_save(self._h(), flags, None, 0, ctypes.byref(n))
            if st != N.ERR_BUFFER_TOO_SMALL:
                check(st)
            buf = ctypes.create_string_buffer(max(n.value, 1))
            check(N.lib.ember_session_save(self._h(), flags, buf, n.value, ctypes.byref(n)))
        return buf.raw[: n.value]

    def load(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Restores a save into this session (its settings and conversation are
        replaced; on a scheduler's session, its requests end). A save from a
        different model raises InvalidArgumentError; truncated or modified data
        raises BadFormatError; either way the session is unchanged."""
        raw = bytes(data)
        self._stop_stream()
        with self._lock:
            check(N.lib.ember_session_load(self._h(), raw, len(raw)))

    # ---- generation
    @overload
    def generate(self, prompt: str, *, max_tokens: int = ..., stop: Optional[Sequence[str]] = ...,
                 stream: Literal[False] = ..., special: bool = ...) -> str: ...

    @overload
    def generate(self, prompt: str, *, max_tokens: int = ..., stop: Optional[Sequence[str]] = ...,
                 stream: Literal[True], special: bool = ...) -> TextStream: ...

    def generate(self, prompt: str, *, max_tokens: int = 256, stop: Optional[Sequence[str]] = None,
                 stream: bool = False, special: bool = False) -> Union[str, TextStream]:
        """Appends `prompt` to the conversation (BOS first on an empty session)
        and generates up to `max_tokens` tokens (< 0: until EOS or the context
        is full), ending before the first of the `stop` strings.

        Returns the text, or with ``stream=True`` a :class:`TextStream` of
        pieces. ``special`` lets control-token text in the prompt map to
        control tokens. Raises ContextFullError (session unchanged) when the
        prompt does not fit.
        """
        if not isinstance(prompt, str):
            raise InvalidArgumentError("prompt must be a str")
        stops = list(stop or [])
        if any(not isinstance(s, str) or not s for s in stops):
            raise InvalidArgumentError("stop strings must be non-empty str")
        gp = _GenerateArgs(int(max_tokens), stops, bool(special))
        data = prompt.encode("utf-8")
        self._stop_stream()
        self._h()
        if stream:
            s = TextStream(self, data, gp)
            self._stream = weakref.ref(s)
            return s
        pieces: List[str] = []
        raised: List[BaseException] = []

        def on_piece(piece: str) -> bool:
            pieces.append(piece)
            return False

        # Python runs between the layers of a long prompt's prefill, so Ctrl-C
        # (KeyboardInterrupt) cancels it there too
        status, _ = self._generate_locked(data, gp, on_piece, raised, cancelled=lambda: False)
        if raised:
            raise raised[0]
        if status != N.OK:
            raise error_for(status, N.last_error())
        return "".join(pieces)

    def _generate_locked(self, prompt: bytes, gp: _GenerateArgs, on_piece: Any,
                         raised: Optional[List[BaseException]] = None,
                         cancelled: Optional[Any] = None) -> "tuple[int, Metrics]":
        """Runs ember_generate under the session lock; returns (status, metrics).
        on_piece(text) -> True cancels; so does cancelled() -> True, asked between
        the layers of a long prompt's prefill. An exception in either (e.g.
        KeyboardInterrupt in the main thread) cancels and is stored in `raised`."""
        errors = raised if raised is not None else []

        def prefill_cb(_done: int, _total: int, _ud: Any) -> int:
            try:
                return 1 if cancelled is not None and cancelled() else 0
            except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                errors.append(e)
                return 1

        def cb(ptr: int, n: int, token: int, _ud: Any) -> int:
            try:
                text = ctypes.string_at(ptr, n).decode("utf-8", "replace") if n else ""
                if not text:
                    return 0
                return 1 if on_piece(text) else 0
            except BaseException as e:  # noqa: BLE001 - re-raised by the caller
                errors.append(e)
                return 1

        params = N.GenerateParams()
        N.lib.ember_generate_params_init(ctypes.byref(params), ctypes.sizeof(params))
        params.max_tokens = gp.max_tokens
        stop_arr = (ctypes.c_char_p * max(len(gp.stop), 1))(*[s.encode("utf-8") for s in gp.stop])
        params.stop = ctypes.cast(stop_arr, ctypes.POINTER(ctypes.c_char_p))
        params.n_stop = len(gp.stop)
        params.flags = N.TOKENIZE_PARSE_SPECIAL if gp.special else 0
        callback = N.PIECE_CALLBACK(cb)
        params.on_piece = callback
        prefill_callback = N.PREFILL_CALLBACK(prefill_cb)
        params.on_prefill = prefill_callback
        metrics = N.Metrics()
        metrics.size = ctypes.sizeof(metrics)
        with self._use():
            status = N.lib.ember_generate(self._h(), prompt, len(prompt), ctypes.byref(params), ctypes.byref(metrics))
        if errors and status == N.ERR_CANCELLED and raised is None:
            raise errors[0]
        return status, Metrics._from(metrics)

    # ---- tokens, one step at a time
    def eval(self, tokens: Sequence[int]) -> None:
        """Appends `tokens` and evaluates everything not yet in the cache (accepted
        tokens first); the logits of the last one are then ready."""
        self._stop_stream()
        ids = list(tokens)
        arr = (ctypes.c_int32 * max(len(ids), 1))(*ids)
        with self._use():
            check(N.lib.ember_session_eval(self._h(), arr, len(ids)))

    def logits(self) -> "array.array[float]":
        """A copy of the logits of the last evaluated token (n_vocab floats)."""
        self._stop_stream()
        with self._use():
            ptr = N.lib.ember_session_logits(self._h())
            if not ptr:
                raise InvalidArgumentError(N.last_error())
            out = array.array("f")
            out.frombytes(ctypes.string_at(ptr, 4 * self._n_vocab))
        return out

    def sample(self) -> int:
        """One token from the current logits, by the session's sampler chain (not appended)."""
        self._stop_stream()
        t = ctypes.c_int32(-1)
        with self._use():
            check(N.lib.ember_session_sample(self._h(), ctypes.byref(t)))
        return int(t.value)

    def accept(self, token: int) -> None:
        """Appends `token` without evaluating it; the next eval/generate evaluates it first."""
        self._stop_stream()
        with self._use():
            check(N.lib.ember_session_accept(self._h(), int(token)))


__all__ = ["Session", "TextStream", "Metrics"]
