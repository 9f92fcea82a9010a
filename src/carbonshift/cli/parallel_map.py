"""Map a function over many items on every usable CPU, for work whose results are small next to its
cost: `carbonshift plan DIR` parses and validates thousands of spec files before planning any, and
that one-process loop was the batch's longest phase after rendering (~1.5 s of 10,000 specs).

As in `parallel_lines`, the items are split into contiguous slices; children are forked after the items
exist (copy-on-write, nothing sent to them), each maps its slice, pickles the list of results to its own
file in a private temporary directory and leaves with `os._exit`. The parent maps the first slice
itself, waits for each child and unpickles the parts in order; a slice whose child failed (exit status,
a file it could not write or that cannot be read back) is mapped again in the parent, which then raises
whatever the function raises, as one process would. So the results are those of
`[fn(item) for item in items]`, in order, only pickled and unpickled (equal, not the same objects).

Forking is only safe while this process has no other thread that may hold a lock `fn` takes: call it
before any thread pool starts.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from carbonshift.cli.parallel_lines import in_slices, worker_count

T = TypeVar("T")
R = TypeVar("R")


def map_in_children(items: Sequence[T], fn: Callable[[T], R], workers: int) -> list[R]:
    """`[fn(item) for item in items]`, on up to `workers` processes when there are at least
    MIN_PARALLEL_ITEMS items and the platform can fork; in this process otherwise."""
    n = worker_count(len(items), workers)
    if n == 1:
        return [fn(item) for item in items]
    parts = in_slices(items, n, partial(_mapped, fn=fn), partial(_pickled, fn=fn), _unpickled)
    return [result for part in parts for result in part]


def _mapped(items: Sequence[T], fn: Callable[[T], R]) -> list[R]:
    return [fn(item) for item in items]


def _pickled(items: Sequence[T], fn: Callable[[T], R]) -> bytes:
    return pickle.dumps([fn(item) for item in items], protocol=pickle.HIGHEST_PROTOCOL)


def _unpickled(data: bytes) -> list[Any]:
    loaded = pickle.loads(data)  # our own child's file, in our private directory
    if not isinstance(loaded, list):
        raise TypeError("not a slice's results")
    return loaded
