"""Stream result rows to CSV or JSON (chosen by the file suffix) without holding them all in memory.

JSON is written as one array, row by row, so a day-long video stream still ends in a valid, bounded-memory file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

FORMATS = (".csv", ".json")


def check_output_path(path: str | Path, key: str = "output") -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{key}={str(path)!r}: expected a .csv or .json file")
    return path


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, JSON for a list or record (the faces of an image), else the value."""
    if value is None:
        return ""
    return json.dumps(value, default=float) if isinstance(value, (list, dict)) else value


class RowWriter:
    """`with RowWriter(path, columns) as out: out.write({...})`; missing keys become empty cells / null, lists
    and records JSON in a CSV cell."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path = check_output_path(path)
        self.columns = list(columns)
        self.count = 0
        self._handle: IO[str] | None = None
        self._csv: Any = None

    def __enter__(self) -> RowWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # surrogateescape: a file name that is not valid UTF-8 is written back as its original bytes
        self._handle = self.path.open("w", newline="", encoding="utf-8", errors="surrogateescape")
        if self.path.suffix.lower() == ".csv":
            self._csv = csv.DictWriter(self._handle, fieldnames=self.columns, extrasaction="ignore")
            self._csv.writeheader()
        else:
            self._handle.write("[")
        return self

    def write(self, row: dict[str, Any]) -> None:
        assert self._handle is not None, "RowWriter used outside its `with` block"
        record = {column: row.get(column) for column in self.columns}
        if self._csv is not None:
            self._csv.writerow({k: _cell(v) for k, v in record.items()})
        else:
            self._handle.write(("," if self.count else "") + "\n  " + json.dumps(record, default=float))
        self.count += 1

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._handle is None:
            return
        if self._csv is None:
            self._handle.write("\n]\n")
        self._handle.close()
        self._handle = None
