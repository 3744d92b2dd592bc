"""Scopes: every resource paired with its cleanup the moment it is made, undone newest first.

In the spirit of the kernel selftests' defer.sh: `scope.defer(cleanup, "what")` right after making a thing;
`scope.close()` runs the cleanups last-in first-out, and one that raises does not stop the ones after it
(their errors are gathered into one ScopeError). Scopes nest: the run (one per process) holds each
DUT's and each case's scope, a case's scope holds its lab and its captures, so whatever a case opened
goes when the case ends, and whatever is left at exit goes with the run.
"""
from __future__ import annotations

import threading
from typing import Callable

from grelab.errors import GrelabError


class ScopeError(GrelabError):
    """One or more cleanups of a scope failed (every other cleanup still ran)."""

    def __init__(self, what: str, errors: list[str]):
        self.errors = errors
        super().__init__(f"closing {what}: " + "; ".join(errors))


class Scope:
    def __init__(self, what: str, parent: "Scope | None" = None):
        self.what = what
        self._cleanups: list[tuple[str, Callable[[], None]]] = []
        self._mutex = threading.Lock()
        self._close_in_parent = parent.defer(self._close, what) if parent is not None else None

    def defer(self, cleanup: Callable[[], None], what: str = "") -> Callable[[], None]:
        """Pair a resource with its cleanup now. Returns a function that runs this one cleanup early (once)."""
        entry = (what, cleanup)
        with self._mutex:
            self._cleanups.append(entry)

        def run_now() -> None:
            with self._mutex:
                if not any(e is entry for e in self._cleanups):
                    return
            cleanup()  # a stop signal that cuts it short leaves it listed: this scope's close, at exit, runs it
            with self._mutex:
                if any(e is entry for e in self._cleanups):
                    self._cleanups.remove(entry)

        return run_now

    def child(self, what: str) -> "Scope":
        """A scope inside this one: closed with it, or earlier on its own."""
        return Scope(what, self)

    def close(self) -> None:
        """Run every cleanup, newest first; raise ScopeError naming those that failed, after all ran."""
        self._close()  # first: a stop signal during it leaves the rest on the parent's list, for the run's close
        if self._close_in_parent is not None:
            self._close_in_parent()  # off the parent's list (its _close() again: nothing left to do)

    def _close(self) -> None:
        errors: list[str] = []
        stopped: BaseException | None = None
        again: set[int] = set()  # cleanups cut short once: run again once, never in a loop
        while True:
            with self._mutex:  # the entry stays listed until it has run: a stop signal before that loses nothing
                if not self._cleanups:
                    break
                entry = self._cleanups[-1]
            what, cleanup = entry
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - the other cleanups must still run
                errors.append(f"{what or getattr(cleanup, '__qualname__', cleanup)}: {exc}")
            except KeyboardInterrupt as exc:  # a stop signal (grelab.lab.ownership) arrived inside this cleanup:
                stopped = stopped or exc  # it is run again (once), the rest too, and then the process stops
                if id(cleanup) not in again:
                    again.add(id(cleanup))
                    continue
            with self._mutex:
                if any(e is entry for e in self._cleanups):
                    self._cleanups.remove(entry)
        if stopped is not None:
            raise stopped
        if errors:
            raise ScopeError(self.what, errors)

    def __enter__(self) -> "Scope":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
