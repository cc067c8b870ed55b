"""Records a reader skips, reported with their file and line (``--strict`` refuses them instead)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mscmt_cli.errors import DataError

SHOWN = 5  # skipped records named one by one in the report; the rest are counted


@dataclass
class Problems:
    """The skipped records of one read; under ``strict`` the first one is an error."""

    strict: bool = False
    skipped: list[str] = field(default_factory=list)

    def skip(self, path: Path | str, line: int, message: str) -> None:
        """Skip a record: an error under ``strict``, else remembered as ``file:line: message``."""
        if self.strict:
            raise DataError(path, line, f"{message} (--strict refuses it; without --strict it is skipped)")
        self.skipped.append(f"{path}:{line}: {message}")

    def report(self) -> str | None:
        """One line naming the skipped records (the first :data:`SHOWN`), or None when nothing was skipped."""
        if not self.skipped:
            return None
        more = len(self.skipped) - SHOWN
        return f"{len(self.skipped)} record(s) skipped: " + "; ".join(self.skipped[:SHOWN]) + (f"; and {more} more" if more > 0 else "")
