"""The one exception type that the CLI turns into a one-line message.

Library code raises :class:`MscmtError` (or a subclass) for anything a user can
fix: a malformed file, an unknown component, a missing model. The CLI prints
``error: <message>`` and exits with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class MscmtError(Exception):
    """A user-facing error whose message is one line and names the culprit."""


class DataError(MscmtError):
    """Malformed input data; the message names the file and line."""

    def __init__(self, path: object, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class ModelLoadError(MscmtError):
    """A pretrained model or saved run directory could not be loaded."""


class TrainingInterrupted(MscmtError):
    """Training stopped by Ctrl-C; the last finished epoch is checkpointed in ``run_dir``."""

    def __init__(self, epoch: int, run_dir: object) -> None:
        super().__init__(f"interrupted after epoch {epoch}; continue with: mscmt train --resume {run_dir}")
        self.epoch = epoch
        self.run_dir = run_dir
