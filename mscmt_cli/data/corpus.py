"""Corpora by name from a data directory laid out like ``../shared/data``.

``twitter2015`` and ``twitter2017`` are sub-directories holding
``train.txt``, ``valid.txt`` and ``test.txt``; ``merged`` concatenates both,
split by split. Any other sub-directory with the three files is a corpus too
(the bundled example is one). ``2015`` and ``2017`` are accepted as short names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from mscmt_cli.data.conll import Tweet, read_conll
from mscmt_cli.errors import MscmtError

SPLITS: tuple[str, ...] = ("train", "valid", "test")
MERGED: dict[str, tuple[str, ...]] = {"merged": ("twitter2015", "twitter2017")}
SHORT_NAMES: dict[str, str] = {"2015": "twitter2015", "2017": "twitter2017"}
#: What ``--data-dir`` must hold, for help texts and errors.
DATA_DIR_LAYOUT = "one sub-directory per corpus (twitter2015, twitter2017, ...) holding train.txt, valid.txt and test.txt"
NO_DATA_DIR = f"no data directory: pass --data-dir DIR ({DATA_DIR_LAYOUT})"


@dataclass(frozen=True)
class Split:
    """The tweets of one split, with the files they came from."""

    corpus: str
    name: str
    tweets: list[Tweet]
    files: tuple[Path, ...]


def canonical_name(name: str) -> str:
    """``2015`` -> ``twitter2015``; other names unchanged."""
    return SHORT_NAMES.get(name, name)


def corpus_dirs(data_dir: Path, corpus: str) -> tuple[Path, ...]:
    """The directories that make up ``corpus``: two for ``merged``, one per part for ``A+B``."""
    corpus = canonical_name(corpus)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MscmtError(f"data directory {data_dir} does not exist (set --data-dir)")
    parts = MERGED.get(corpus) or tuple(canonical_name(p) for p in corpus.split("+"))
    dirs = tuple(data_dir / p for p in parts)
    for d in dirs:
        if not d.is_dir():
            raise MscmtError(
                f"corpus {corpus!r}: no directory {d}; known corpora in {data_dir}: {', '.join(available_corpora(data_dir)) or 'none'}"
            )
    return dirs


def available_corpora(data_dir: Path) -> list[str]:
    """Names of the corpora found under ``data_dir`` (``merged`` when both parts exist)."""
    found = sorted(p.name for p in Path(data_dir).iterdir() if p.is_dir() and (p / "train.txt").is_file())
    found += [m for m, parts in MERGED.items() if all(p in found for p in parts)]
    return found


def load_split(data_dir: Path, corpus: str, split: str) -> Split:
    """Read one split of a corpus (``train``, ``valid`` or ``test``)."""
    if split not in SPLITS:
        raise MscmtError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    files = tuple(d / f"{split}.txt" for d in corpus_dirs(data_dir, corpus))
    tweets: list[Tweet] = []
    for f in files:
        tweets.extend(read_conll(f))
    return Split(canonical_name(corpus), split, tweets, files)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (recorded in run directories)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
