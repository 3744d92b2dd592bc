"""Work that waits on something else (a DUT's console, a guest booting), done side by side.

    side_by_side(lambda dut: dut.reset(), duts)     # each on a thread of its own; results in order

Two DUTs reset, boot or take a plan at once: each waits on its own guest, not on this process's CPU. The first
error is raised here, after every one has finished.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    items = list(items)
    if len(items) <= 1:
        return [fn(item) for item in items]
    results: list = [None] * len(items)
    errors: list[BaseException] = []

    def one(n: int, item: T) -> None:
        try:
            results[n] = fn(item)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            errors.append(exc)
    threads = [threading.Thread(target=one, args=(n, item), name=f"grelab-side-by-side-{n}")
               for n, item in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
