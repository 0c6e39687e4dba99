"""Scheduler: many sessions on one model, one batched forward pass per step (game loops, NPCs)."""
from __future__ import annotations

import contextlib
import ctypes
import threading
import weakref
from dataclasses import dataclass
from typing import Iterator, List, Literal, Optional, Sequence, Set

from . import _native as N
from ._handle import NativeHandle
from .errors import EmberError, InvalidArgumentError
from .model import Model, check
from .session import Metrics, OverflowPolicy, Session, _session_params

#: Where a request is: "queued", "running", then one of "done" (see metrics.finish_reason),
#: "cancelled" or "failed" (see Request.error)
RequestState = Literal["queued", "running", "done", "cancelled", "failed"]

_IN_PROGRESS = ("queued", "running")


@dataclass(frozen=True)
class StepStats:
    """What one :meth:`Scheduler.step` did (ember_step_stats)."""
    entries: int           # batch entries whose pass completed in this step
    layers: int            # layers run in this step
    tokens_generated: int
    paused: bool           # a pass is in flight and continues next step
    ms: float              # time the step took


class Scheduler(NativeHandle):
    """Batches the pending work of all its sessions -- prompt chunks and
    next-token decodes -- into one forward pass per step, so each weight is
    read once for all of them (``Model.scheduler(...)``).

    Submitting never blocks; call :meth:`step` once per frame with the
    milliseconds you can spare (a step returns within about that budget,
    pausing a pass between layers), then :meth:`Request.poll` each request
    for its new text. A session's tokens do not depend on which other
    sessions share the batch: the same model, seed and inputs give the same
    text as the session alone.

    Settings left as None take the library's defaults: ``max_batch_tokens``
    (entries per pass, 128), ``prefill_chunk`` (prompt tokens one session adds
    per pass, 64), ``kv_max_tokens`` (cap on the shared KV memory in
    positions, 0 = none), ``kv_initial_tokens`` (positions reserved up front).

    Thread-safe: the scheduler, its sessions and its requests share one lock,
    so one thread at a time drives it (foreign calls release the GIL). Use it
    as a context manager or call :meth:`close`; its sessions stay valid as
    plain sessions after it is closed.
    """

    _kind = "scheduler"

    def __init__(self, model: Model, *, max_batch_tokens: Optional[int] = None, prefill_chunk: Optional[int] = None,
                 kv_max_tokens: Optional[int] = None, kv_initial_tokens: Optional[int] = None) -> None:
        self._handle: Optional[int] = None
        self._lock = threading.RLock()   # re-entrant: a finalizer may run while this thread holds it
        self._orphans: Set[int] = set()  # requests let go while in progress, released once they end
        self._sessions: "weakref.WeakSet[Session]" = weakref.WeakSet()
        self.model = model
        p = N.SchedulerParams()
        N.lib.ember_scheduler_params_init(ctypes.byref(p), ctypes.sizeof(p))
        for name, value in (("max_batch_tokens", max_batch_tokens), ("prefill_chunk", prefill_chunk),
                            ("kv_max_tokens", kv_max_tokens), ("kv_initial_tokens", kv_initial_tokens)):
            if value is not None:
                setattr(p, name, int(value))
        handle = ctypes.c_void_p()
        check(N.lib.ember_scheduler_create(model._h(), ctypes.byref(p), ctypes.byref(handle)))
        self._handle = handle.value
        self._n_vocab = model.n_vocab

    # ---- lifetime
    def close(self) -> None:
        """Frees the native scheduler (idempotent). Its sessions stay valid as plain
        sessions; its requests are gone."""
        with self._lock:
            h, self._handle = self._handle, None
            self._orphans.clear()
            if h:
                N.lib.ember_scheduler_free(h)


    def _stop_streams(self) -> None:
        # a stream on one of its sessions holds the shared lock until the stream's reader lets go
        for s in list(self._sessions):
            s._stop_own_stream()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._stop_streams()
        with self._lock:
            yield

    def __repr__(self) -> str:
        return f"<emberlm.Scheduler {'closed' if self._handle is None else f'kv_bytes={self.kv_bytes}'}>"

    # ---- sessions and requests
    def session(self, *, n_ctx: Optional[int] = None, n_batch: Optional[int] = None, seed: Optional[int] = None,
                temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                min_p: Optional[float] = None, repeat_penalty: Optional[float] = None,
                repeat_last_n: Optional[int] = None, overflow_policy: Optional[OverflowPolicy] = None,
                n_keep: Optional[int] = None) -> Session:
        """A session whose KV memory comes from this scheduler's shared pool (the
        settings are :class:`Session`'s). It can also generate on its own."""
        p = _session_params(n_ctx=n_ctx, n_batch=n_batch, seed=seed, temperature=temperature, top_k=top_k,
                            top_p=top_p, min_p=min_p, repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                            overflow_policy=overflow_policy, n_keep=n_keep)
        handle = ctypes.c_void_p()
        with self._locked():
            check(N.lib.ember_scheduler_session_create(self._h(), ctypes.byref(p), ctypes.byref(handle)))
        return Session._wrap(self.model, handle.value, self, self._n_vocab)

    def submit(self, session: Session, prompt: str, *, max_tokens: int = 256, stop: Optional[Sequence[str]] = None,
               priority: int = 0, special: bool = False) -> "Request":
        """Queues a generation on `session` (one of this scheduler's, one request
        at a time) and returns at once: `prompt` is appended to the conversation
        (BOS first on an empty session) and up to `max_tokens` tokens follow (<
        0: until EOS or the context is full), ending before the first `stop`
        string. Higher `priority` goes first. The prompt is tokenized and
        checked now: bad input raises here and queues nothing."""
        if not isinstance(session, Session):
            raise InvalidArgumentError("submit: session must be a Session")
        if not isinstance(prompt, str):
            raise InvalidArgumentError("prompt must be a str")
        stops = list(stop or [])
        if any(not isinstance(s, str) or not s for s in stops):
            raise InvalidArgumentError("stop strings must be non-empty str")
        data = prompt.encode("utf-8")
        params = N.RequestParams()
        N.lib.ember_request_params_init(ctypes.byref(params), ctypes.sizeof(params))
        params.max_tokens = int(max_tokens)
        stop_arr = (ctypes.c_char_p * max(len(stops), 1))(*[s.encode("utf-8") for s in stops])
        params.stop = ctypes.cast(stop_arr, ctypes.POINTER(ctypes.c_char_p))
        params.n_stop = len(stops)
        params.priority = int(priority)
        params.flags = N.TOKENIZE_PARSE_SPECIAL if special else 0
        session._stop_stream()
        req = ctypes.c_uint64(0)
        with self._locked():
            check(N.lib.ember_submit(self._h(), session._h(), data, len(data), ctypes.byref(params), ctypes.byref(req)))
            session._request_id = req.value
        return Request(self, session, req.value)

    # ---- driving it
    def step(self, budget_ms: float = 0.0) -> StepStats:
        """Does about `budget_ms` of work (at least one layer when any is pending),
        or one whole forward pass when budget_ms <= 0. Call it once per frame."""
        st = N.StepStats()
        st.size = ctypes.sizeof(st)
        with self._locked():
            check(N.lib.ember_step(self._h(), float(budget_ms), ctypes.byref(st)))
            self._release_orphans()
        return StepStats(st.entries, st.layers, st.tokens_generated, bool(st.paused), st.ms)

    def run(self) -> None:
        """Steps until no request is queued or running (blocking; the GIL is released)."""
        with self._locked():
            check(N.lib.ember_scheduler_run(self._h()))
            self._release_orphans()

    @property
    def kv_bytes(self) -> int:
        """Bytes of KV memory in use in the shared pool (forks share their prefix)."""
        with self._locked():
            return int(N.lib.ember_scheduler_kv_bytes(self._h()))

    def _release_orphans(self) -> None:
        # under the lock: requests their owners dropped while in progress, released once they have ended
        for rid in list(self._orphans):
            state = ctypes.c_int32(-1)
            if N.lib.ember_request_get_state(self._handle, rid, ctypes.byref(state)) != N.OK:
                self._orphans.discard(rid)  # gone with its session
            elif N.REQUEST_STATES.get(state.value) not in _IN_PROGRESS:
                N.lib.ember_request_release(self._handle, rid)
                self._orphans.discard(rid)


class Request:
    """One generation queued on a :class:`Scheduler` (``Scheduler.submit``).

    :meth:`poll` takes the text made since the last poll; :attr:`state` says
    whether it has ended. Iterating a request yields its text as it comes,
    stepping the scheduler while it waits (all its sessions make progress);
    leaving the loop early (``break``) cancels it; a failed request raises
    EmberError with the library's message.
    :meth:`release` (or leaving a ``with`` block) frees it, cancelling it
    first if it is still in progress; a request dropped unreleased runs to its
    end and is freed then.
    """

    def __init__(self, scheduler: Scheduler, session: Session, rid: int) -> None:
        self.scheduler = scheduler
        self.session = session
        self.id = rid
        self._released = False
        self._pieces: List[str] = []

    def _h(self) -> int:
        if self._released:
            raise InvalidArgumentError(f"request {self.id} was released")
        if self.session.closed:
            raise InvalidArgumentError(f"request {self.id}: its session is closed")
        return self.scheduler._h()

    def __repr__(self) -> str:
        return f"<emberlm.Request {self.id}{' (released)' if self._released else ''}>"

    @property
    def state(self) -> RequestState:
        """"queued", "running", "done", "cancelled" or "failed"."""
        state = ctypes.c_int32(-1)
        with self.scheduler._locked():
            check(N.lib.ember_request_get_state(self._h(), self.id, ctypes.byref(state)))
        return N.REQUEST_STATES[state.value]  # type: ignore[return-value]

    @property
    def finished(self) -> bool:
        """True once the request is done, cancelled or failed."""
        return self.state not in _IN_PROGRESS

    def poll(self) -> str:
        """The text made since the last poll (UTF-8-complete pieces; "" if none)."""
        n = ctypes.c_size_t(0)
        cap = 256
        with self.scheduler._locked():
            while True:
                buf = ctypes.create_string_buffer(cap)
                st = N.lib.ember_request_poll(self._h(), self.id, buf, cap, ctypes.byref(n))
                if st == N.ERR_BUFFER_TOO_SMALL and n.value > cap:
                    cap = n.value
                    continue
                check(st)
                break
        text = buf.raw[: n.value].decode("utf-8", "replace")
        if text:
            self._pieces.append(text)
        return text

    @property
    def text(self) -> str:
        """Everything polled so far."""
        return "".join(self._pieces)

    def cancel(self) -> None:
        """Takes effect at the next step: the request ends as "cancelled"; what it
        generated stays in the session."""
        with self.scheduler._locked():
            check(N.lib.ember_request_cancel(self._h(), self.id))

    @property
    def metrics(self) -> Metrics:
        """The request's figures (finish_reason once it is done)."""
        m = N.Metrics()
        m.size = ctypes.sizeof(m)
        with self.scheduler._locked():
            check(N.lib.ember_request_metrics(self._h(), self.id, ctypes.byref(m)))
        return Metrics._from(m)

    @property
    def error(self) -> Optional[str]:
        """The library's message for a failed request, else None."""
        with self.scheduler._locked():
            msg: Optional[bytes] = N.lib.ember_request_error(self._h(), self.id)
        return msg.decode("utf-8", "replace") if msg else None

    def __iter__(self) -> Iterator[str]:
        ended = False
        try:
            while True:
                state = self.state
                text = self.poll()
                if text:
                    yield text
                if state not in _IN_PROGRESS:
                    ended = True
                    if state == "failed":
                        raise EmberError(self.error or f"request {self.id} failed")
                    return
                self.scheduler.step(0)  # one whole pass
        finally:
            if not ended:  # the loop was left early (break): cancel
                try:
                    if not self.finished:
                        self.cancel()
                except EmberError:
                    pass

    def release(self) -> None:
        """Forgets the request (idempotent); one still in progress is cancelled and
        freed once the scheduler has stopped it."""
        self._release(cancel=True)

    def _release(self, cancel: bool) -> None:
        if self._released:
            return
        self._released = True
        sched = self.scheduler
        if cancel:
            sched._stop_streams()
        # a finalizer (cancel=False) must not wait for the lock, whose holder may be waiting
        # for this very thread: the next step frees the request then
        if not sched._lock.acquire(blocking=cancel):
            sched._orphans.add(self.id)
            return
        try:
            if sched._handle is None or self.session.closed:
                return  # gone with the scheduler or the session
            state = ctypes.c_int32(-1)
            if N.lib.ember_request_get_state(sched._handle, self.id, ctypes.byref(state)) != N.OK:
                return
            if N.REQUEST_STATES.get(state.value) in _IN_PROGRESS:
                if cancel:
                    N.lib.ember_request_cancel(sched._handle, self.id)
                sched._orphans.add(self.id)
            else:
                N.lib.ember_request_release(sched._handle, self.id)
        finally:
            sched._lock.release()

    def __enter__(self) -> "Request":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        # dropped unreleased: it runs to its end (what it makes stays in the session), then is freed
        try:
            self._release(cancel=False)
        except Exception:
            pass


__all__ = ["Scheduler", "Request", "RequestState", "StepStats"]
