"""Lifetime plumbing shared by the classes that own a native handle."""
from __future__ import annotations

from typing import Any, Optional, TypeVar

from .errors import InvalidArgumentError

_T = TypeVar("_T", bound="NativeHandle")


class NativeHandle:
    """A context manager owning one native handle: close() frees it (idempotent),
    leaving the block or garbage collection closes it, and _h() returns it or
    raises InvalidArgumentError naming the closed object."""

    _kind = "object"
    _handle: Optional[int] = None

    def close(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self) -> int:
        if self._handle is None:
            raise InvalidArgumentError(f"the {self._kind} is closed")
        return self._handle
