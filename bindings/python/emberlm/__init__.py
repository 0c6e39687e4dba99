"""emberlm: Python bindings of libember, an embeddable LLM runtime (GGUF models, CPU).

    import emberlm
    with emberlm.Model("model.gguf") as model:
        with model.session(temperature=0) as s:
            print(s.generate("Once upon a time", max_tokens=32))
            for piece in s.generate(" The end.", max_tokens=32, stream=True):
                print(piece, end="", flush=True)
        with model.scheduler() as sched:             # many NPCs, one batched pass per frame
            guard = sched.session(seed=1)
            req = sched.submit(guard, "Guard: Halt!", max_tokens=24)
            while not req.finished:
                sched.step(4.0)                      # ~4 ms of this frame
                print(req.poll(), end="")

Pure ctypes over the C ABI (capi/ember.h): nothing is compiled at install.
libember is found through $EMBER_LIBRARY, a copy bundled at install, the
repository's build/ directory, or the system's library path. Foreign calls
release the GIL. Library log lines (load warnings) go to the ``emberlm``
logger of the logging module.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from . import _native
from .errors import (BadFormatError, BufferTooSmallError, CancelledError, ContextFullError, EmberError, EmberIOError,
                     InternalError, InvalidArgumentError, OutOfMemoryError, UnsupportedError)
from .model import Model, ModelInfo
from .scheduler import Request, RequestState, Scheduler, StepStats
from .session import Metrics, OverflowPolicy, Session, TextStream

__version__ = "0.1.0"

logger = logging.getLogger("emberlm")
_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


def _on_log(level: int, message: Optional[bytes], _ud: Any) -> None:
    try:
        logger.log(_LEVELS.get(level, logging.ERROR), "%s", (message or b"").decode("utf-8", "replace"))
    except Exception:
        pass


# Kept referenced for the life of the module: libember holds the pointer.
_log_callback = _native.LOG_CALLBACK(_on_log)
_native.lib.ember_log_set(_log_callback, None)


def library_version() -> str:
    """libember's version ("0.1.0")."""
    return _native.lib.ember_version().decode()


def abi_version() -> int:
    """libember's C ABI version (checked against this package's at import)."""
    return int(_native.lib.ember_abi_version())


def cpu_kernels() -> str:
    """The kernel set libember uses on this CPU ("amx", "avx512bf16", "avx512", "avx2", "sse2", "neon", "scalar")."""
    return _native.lib.ember_cpu_kernels().decode()


library_path = _native.library_path

__all__ = [
    "Model", "ModelInfo", "Session", "TextStream", "Metrics", "OverflowPolicy",
    "Scheduler", "Request", "RequestState", "StepStats",
    "EmberError", "InvalidArgumentError", "EmberIOError", "BadFormatError", "UnsupportedError",
    "OutOfMemoryError", "ContextFullError", "CancelledError", "InternalError", "BufferTooSmallError",
    "library_version", "abi_version", "cpu_kernels", "library_path", "logger",
]
