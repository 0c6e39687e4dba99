"""Exceptions: one class per ember_status, all under EmberError."""
from __future__ import annotations

from typing import Dict, Type


class EmberError(Exception):
    """A failed libember call. ``str(e)`` is the library's message; ``status``
    is the ember_status code and ``status_name`` its name."""

    status: int = -1
    status_name: str = "EMBER_ERR_UNKNOWN"

    def __init__(self, message: str, status: int | None = None, status_name: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if status_name is not None:
            self.status_name = status_name

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(EmberError, ValueError):
    """A bad value: a token id out of range, a setting out of range, a closed handle."""
    status, status_name = 1, "EMBER_ERR_INVALID_ARGUMENT"


class EmberIOError(EmberError, OSError):
    """A file could not be opened or read."""
    status, status_name = 2, "EMBER_ERR_IO"


class BadFormatError(EmberError):
    """Not a valid GGUF file, or a corrupt one."""
    status, status_name = 3, "EMBER_ERR_BAD_FORMAT"


class UnsupportedError(EmberError):
    """A valid file with an architecture or tensor type emberlm does not run."""
    status, status_name = 4, "EMBER_ERR_UNSUPPORTED"


class OutOfMemoryError(EmberError, MemoryError):
    status, status_name = 5, "EMBER_ERR_OUT_OF_MEMORY"


class ContextFullError(EmberError):
    """The request does not fit in the session's context (the session is unchanged)."""
    status, status_name = 6, "EMBER_ERR_CONTEXT_FULL"


class CancelledError(EmberError):
    """A callback asked to stop (a progress callback, or a stream that was closed)."""
    status, status_name = 7, "EMBER_ERR_CANCELLED"


class InternalError(EmberError):
    """A bug in emberlm: please report the message."""
    status, status_name = 8, "EMBER_ERR_INTERNAL"


class BufferTooSmallError(EmberError):
    status, status_name = 9, "EMBER_ERR_BUFFER_TOO_SMALL"


_BY_STATUS: Dict[int, Type[EmberError]] = {
    c.status: c
    for c in (InvalidArgumentError, EmberIOError, BadFormatError, UnsupportedError, OutOfMemoryError,
              ContextFullError, CancelledError, InternalError, BufferTooSmallError)
}


def error_for(status: int, message: str) -> EmberError:
    """The exception for a status code and the library's message."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        return EmberError(message or f"status {status}", status, "EMBER_ERR_UNKNOWN")
    return cls(message or cls.status_name)
