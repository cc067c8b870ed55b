"""Corpora by name from a data directory laid out like ``../shared/data``.

``twitter2015`` and ``twitter2017`` are sub-directories holding
``train.txt``, ``valid.txt`` and ``test.txt``; ``merged`` concatenates both,
split by split. Any other sub-directory with the three files is a corpus too
(the bundled example is one). ``2015`` and ``2017`` are accepted as short names.
A corpus may also be a directory named by path: any name holding a ``/``
(``./mine``, ``/data/wnut17``), read without ``--data-dir``. Each split of a
corpus directory is its ``train.txt`` (``valid.txt``, ``test.txt``), or else its
one ``train.*`` file in any format :mod:`mscmt_cli.data.reading` reads by
extension (:func:`split_files`). ``A+B`` reads both corpora together, names and
paths alike (so a path holding a ``+`` is read as two). A split may also be a
file named by path (``--train``, ``--valid``, ``--test``).

The bundled corpora are read with the type map ``MISC=OTHER`` (TWITTER-2017
calls the class MISC that TWITTER-2015 calls OTHER) unless ``--map`` says
otherwise, as BIO (not detected) unless ``--scheme`` says otherwise, and keep the type order of the runs trained before the label set
came from the data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from mscmt_cli.data.conll import Tweet
from mscmt_cli.data.reading import ReadOptions, read_data_file
from mscmt_cli.errors import MscmtError
from mscmt_cli.labels import ENTITY_TYPES
from mscmt_cli.settings import DATA_DIR_LAYOUT

SPLITS: tuple[str, ...] = ("train", "valid", "test")
MERGED: dict[str, tuple[str, ...]] = {"merged": ("twitter2015", "twitter2017")}
SHORT_NAMES: dict[str, str] = {"2015": "twitter2015", "2017": "twitter2017"}
#: What ``--data-dir`` must hold, for help texts and errors.
NO_DATA_DIR = f"no data directory: pass --data-dir DIR ({DATA_DIR_LAYOUT})"
#: The corpora read with :data:`BUNDLED_MAP` and :data:`BUNDLED_ORDER` by default.
BUNDLED: tuple[str, ...] = ("twitter2015", "twitter2017")
BUNDLED_MAP: dict[str, str] = {"MISC": "OTHER"}
BUNDLED_ORDER: tuple[str, ...] = ENTITY_TYPES
BUNDLED_SCHEME = "bio"


@dataclass(frozen=True)
class Split:
    """The tweets of one split, with the files they came from."""

    corpus: str
    name: str
    tweets: list[Tweet]
    files: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def canonical_name(name: str) -> str:
    """``2015`` -> ``twitter2015``; other names unchanged."""
    return SHORT_NAMES.get(name, name)


def is_path(corpus: str) -> bool:
    """Whether ``corpus`` (one part of it) names a directory by path rather than a corpus under ``--data-dir``."""
    return "/" in corpus


def corpus_parts(corpus: str) -> tuple[str, ...]:
    """The corpora ``corpus`` reads together: the two of ``merged``, each of ``A+B``, else itself."""
    corpus = canonical_name(corpus)
    return MERGED.get(corpus) or tuple(canonical_name(p) for p in corpus.split("+"))


def needs_data_dir(corpus: str) -> bool:
    """Whether some part of ``corpus`` is a name, looked up under ``--data-dir``."""
    return not all(is_path(p) for p in corpus_parts(corpus))


def corpus_label(corpus: str) -> str:
    """``corpus`` as row and file names show it: a directory named by path by its folder name (``./data/mine/`` -> ``mine``)."""
    return "+".join(Path(p).resolve().name if is_path(p) else canonical_name(p) for p in canonical_name(corpus).split("+"))


def corpus_dirs(data_dir: Path | None, corpus: str) -> tuple[Path, ...]:
    """The directories that make up ``corpus``: two for ``merged``, one per part for ``A+B``; a part with a ``/`` by path."""
    return tuple(_part_dir(data_dir, corpus, part) for part in corpus_parts(corpus))


def _part_dir(data_dir: Path | None, corpus: str, part: str) -> Path:
    if is_path(part):
        if not Path(part).is_dir():
            raise MscmtError(f"corpus directory {part}: {'not a directory' if Path(part).exists() else 'does not exist'}")
        return Path(part)
    if data_dir is None:
        raise MscmtError(f"corpus {part!r}: {NO_DATA_DIR}, or name a corpus directory by path (with a /)")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MscmtError(f"data directory {data_dir} does not exist (set --data-dir)")
    d = data_dir / part
    if not d.is_dir():
        known = ", ".join(available_corpora(data_dir)) or "none"
        raise MscmtError(f"corpus {canonical_name(corpus)!r}: no directory {d}; known corpora in {data_dir}: {known}")
    return d


def split_file(directory: Path, split: str) -> Path:
    """The file of ``split`` in a corpus directory: ``<split>.txt``, else its one ``<split>.<ext>`` file (read by extension)."""
    plain = Path(directory) / f"{split}.txt"
    if plain.is_file():
        return plain
    found = sorted(p.name for p in Path(directory).iterdir() if p.stem == split and p.suffix and p.is_file())
    if len(found) == 1:
        return Path(directory) / found[0]
    if not found:
        raise MscmtError(f"corpus directory {directory}: no {split} split (neither {split}.txt nor one {split}.<ext> file)")
    raise MscmtError(f"corpus directory {directory}: {len(found)} files could be the {split} split ({', '.join(found)}); keep one")


def split_files(data_dir: Path | None, corpus: str, split: str) -> tuple[Path, ...]:
    """The files ``split`` of ``corpus`` is read from, one per directory (see :func:`corpus_dirs`, :func:`split_file`)."""
    if split not in SPLITS:
        raise MscmtError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return tuple(split_file(d, split) for d in corpus_dirs(data_dir, corpus))


def available_corpora(data_dir: Path) -> list[str]:
    """Names of the corpora found under ``data_dir`` (``merged`` when both parts exist)."""
    found = sorted(p.name for p in Path(data_dir).iterdir() if p.is_dir() and (p / "train.txt").is_file())
    found += [m for m, parts in MERGED.items() if all(p in found for p in parts)]
    return found


def is_bundled(corpus: str) -> bool:
    """Whether every part of ``corpus`` is one of the bundled corpora."""
    return all(p in BUNDLED for p in corpus_parts(corpus))


def corpus_options(corpus: str | None, options: ReadOptions) -> ReadOptions:
    """``options`` with the bundled corpora's default type map under the given ``--map`` entries, and their
    scheme, BIO, known rather than detected (so reading them by name says nothing about it)."""
    if corpus is None or not is_bundled(corpus):
        return options
    scheme = BUNDLED_SCHEME if options.scheme == "auto" else options.scheme
    return replace(options, type_map={**BUNDLED_MAP, **options.type_map}, scheme=scheme)


def type_order(corpus: str | None) -> tuple[str, ...]:
    """The types a corpus's label set puts first (the bundled corpora's order), before the others sorted."""
    return BUNDLED_ORDER if corpus is not None and is_bundled(corpus) else ()


def read_files(corpus: str, split: str, files: tuple[Path, ...], options: ReadOptions) -> Split:
    """One split made of ``files``, read under ``options``."""
    tweets: list[Tweet] = []
    notes: list[str] = []
    for f in files:
        read = read_data_file(f, options)
        tweets.extend(read.tweets)
        notes.extend(read.notes)
    return Split(corpus, split, tweets, files, tuple(notes))


def load_split(data_dir: Path | None, corpus: str, split: str, options: ReadOptions | None = None) -> Split:
    """Read one split of a corpus (``train``, ``valid`` or ``test``), each file in the format ``options`` say or its own."""
    files = split_files(data_dir, corpus, split)
    return read_files(canonical_name(corpus), split, files, corpus_options(corpus, options or ReadOptions()))


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (recorded in run directories)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
