"""Lifetime plumbing shared by the classes that own a native handle."""
from __future__ import annotations

from typing import Any, Optional, TypeVar

from .errors import InvalidArgumentError

_C = TypeVar("_C", bound="Closing")


class Closing:
    """A context manager whose close() (idempotent) runs when the block is left
    or the object is garbage-collected."""

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class NativeHandle(Closing):
    """A Closing that owns one native handle: close() frees it, and _h()
    returns it or raises InvalidArgumentError naming the closed object."""

    _kind = "object"
    _handle: Optional[int] = None

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self) -> int:
        if self._handle is None:
            raise InvalidArgumentError(f"the {self._kind} is closed")
        return self._handle
