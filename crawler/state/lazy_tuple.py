"""Sequences made when iterated that stand for tuples (``found_on`` and ``Report.links``
of a crawl, ``found_on`` read back from the history)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, overload

_T = TypeVar("_T")


class LazyTuple(Sequence[_T]):
    """A sequence whose items are made when it is iterated (again each time, or once and
    kept) that indexes, compares, hashes and pickles as the tuple of its items."""

    __slots__ = ()

    @overload
    def __getitem__(self, index: int) -> _T: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[_T, ...]: ...
    def __getitem__(self, index: int | slice) -> _T | tuple[_T, ...]:
        return tuple(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LazyTuple, tuple)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (tuple(self),))
