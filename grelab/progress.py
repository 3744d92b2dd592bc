"""Progress on long work (image build, guest boot, floods, replays, benchmarks): rich's bars and spinners on
stderr when it is a terminal, nothing at all otherwise (logs and pipes get only the results).

    with progress("replaying", total=len(frames), unit="frames") as advance:
        for chunk in chunks: advance(len(chunk))
    with status("booting r1, r2"): ...
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager


def enabled() -> bool:
    """Bars only for a person watching: stderr is a terminal, and GRELAB_PROGRESS is not 0."""
    return sys.stderr.isatty() and os.environ.get("GRELAB_PROGRESS", "1") != "0"


@contextmanager
def progress(what: str, total: int | None, unit: str = "items"):
    """A bar with the count, the rate and the time left; yields advance(n)."""
    if not enabled():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskProgressColumn, \
        TextColumn, TimeRemainingColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{unit} {task.speed or 0:>10,.0f}/s")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TaskProgressColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n=1: bar.advance(task, n)


@contextmanager
def status(what: str):
    """A spinner with the time so far, for work whose size is unknown (a build, a boot)."""
    if not enabled():
        yield
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        bar.add_task(what, total=None)
        yield
