"""grelab matrix: every case on every implementation, one cell where they meet (grelab.matrix.cells), the table
of them as JSON with its figures (grelab.matrix.table), its page (grelab.matrix.page); grelab.matrix.record is the
pytest plugin of its runs. For `grelab report merge`: merge(load(f / "matrix.json") for each folder), then write."""
from __future__ import annotations

from pathlib import Path

from grelab.matrix import page
from grelab.matrix.table import dumps, exit_status, load, merge  # noqa: F401 - what callers import from here


def write(matrix: dict, folder: Path) -> tuple[Path, Path]:
    """matrix.json and matrix.html in folder (made if missing); their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data, html = folder / "matrix.json", folder / "matrix.html"
    data.write_text(dumps(matrix))
    html.write_text(page.render(matrix))
    return data, html
