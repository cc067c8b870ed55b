"""The one way mscmt writes, replaces or removes a file or directory: checked first, then atomic.

Every command and every benchmark script writes through this module (a test
walks the source and fails on a write anywhere else). It guarantees:

- **A usable path.** ``Path("")`` is ``Path(".")``: an empty option (``--out ""``,
  ``MSCMT_OUT=``) would silently mean the current directory, so an empty or
  ``.`` path is refused. A directory option refuses an existing file (or a path
  inside one), a file option refuses an existing directory.
- **Nothing of the user's is replaced** (:func:`check_write`): a file named by
  the user is refused when it is one the same command reads (by identity, so
  every spelling is caught: ``./a``, ``d/../a``, a symbolic or hard link), a
  model file, a run's record, a data split or an image, and when it exists
  and is not recognised as the kind of file the option writes (a scores file,
  a captions file, a tag output...). The check reads the file before anything
  is truncated or repaired.
- **Only files are replaced** (:func:`stream_kind`): a device, a pipe, a socket, or a path in /dev,
  /proc or /sys (``/dev/stdout``, ``/proc/self/fd/1``, a link to one: links are judged by every name
  they pass through) is never renamed over. An output written as it goes (``tag --out``, ``explain
  --out``, ``caption --out``) is written through to it, appended to, never truncated; an output
  written whole refuses it. A file with a second name (a hard link) is refused: writing it would
  change the other name too.
- **Nothing new inside a saved model** (:func:`check_dir_target`, :func:`check_write`): no file or
  directory is made inside a saved model, an export or a checkpoint (found where links lead).
- **Atomic writes** (:func:`write_text_atomic`, :func:`atomic_file`,
  :func:`atomic_dir`): a temporary file (or directory) beside the target,
  synced, then renamed into place, so a reader (or a kill) never sees half of it.
- **A directory is ours only when a marker says so**: a directory is replaced
  (:func:`replace_dir`) only when every file in it is one the new version
  writes too, and files are removed (:func:`remove_file`) only where the caller
  has proved they are its own.

Every refusal is one :class:`~mscmt_cli.errors.MscmtError` naming the option and the path.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from mscmt_cli.errors import MscmtError

#: ``(what, path)``: a file the command reads, e.g. ``("the input", Path("a.jsonl"))``.
Reads = Sequence[tuple[str, "str | os.PathLike[str]"]]
#: Suffixes of model weights and graphs: never replaced by an output.
MODEL_SUFFIXES = frozenset({".safetensors", ".onnx", ".pt", ".pth", ".bin", ".ckpt", ".gguf", ".h5", ".msgpack", ".pkl"})
#: A directory holding ``config.json`` and one of these is a saved model (a run's model/, an export, a checkpoint).
MODEL_MARKERS = ("model.safetensors", "model.onnx", "state.pt", "pytorch_model.bin")
#: A directory holding this file is a training checkpoint (``RUN/checkpoint``).
CHECKPOINT_MARKER = "state.pt"
#: A run directory's records (beside its ``run.json``): never replaced by an output.
RUN_RECORD_NAMES = frozenset({"run.json", "metrics.jsonl", "test_scores.json", "study.json"})
#: How much of an existing file a recogniser reads (a larger file is not one mscmt wrote).
RECOGNISE_BYTES = 64 << 20


def check_not_empty(path: Path | str | None, option: str, example: str = "runs/mine") -> Path:
    """``path`` as a Path; refuses None, ``""`` and ``"."`` (which all mean "here" by accident)."""
    if path is None or str(path).strip() == "" or Path(path) == Path("."):
        raise MscmtError(f"{option}: an empty path (or '.') means the current directory; pass a name of its own (e.g. {option} {example})")
    return Path(path)


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a directory (so nothing can be made below it)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


#: Where a path names a device or a process's stream, not a file (``/dev/stdout``, ``/dev/fd/1``, ``/proc/self/fd/1``);
#: ``/dev/shm`` holds plain files.
_STREAM_ROOTS = ("/dev/", "/proc/", "/sys/")


def stream_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` names when it is not a file nor a directory to write in: ``"a device or process stream"`` (a
    path in /dev, /proc or /sys, or one passing through them: /dev/stdout is one even when the shell sent it to a
    file), ``"a device"`` (character or block), ``"a pipe (FIFO)"``, ``"a socket"``; None for a plain path."""
    if any(name.startswith(_STREAM_ROOTS) and not name.startswith("/dev/shm/") for name in _names_on_the_way(path)):
        return "a device or process stream"
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def _names_on_the_way(path: str | os.PathLike[str]) -> Iterator[str]:
    """Every absolute name ``path`` passes through: as given, with its folder resolved, each link's target in
    turn (``out -> /dev/stdout -> /proc/self/fd/1 -> file``), and where it ends."""
    try:
        name = os.path.abspath(path)
        for _ in range(40):
            yield name
            yield os.path.join(os.path.realpath(os.path.dirname(name)), os.path.basename(name))
            if not os.path.islink(name):
                break
            name = os.path.normpath(os.path.join(os.path.dirname(name), os.readlink(name)))
        yield os.path.realpath(path)
    except (OSError, ValueError):  # unreadable link, NUL in the name: what was seen so far is judged
        return


def _saved_model_above(path: Path, home: Path | None = None) -> Path | None:
    """The nearest existing directory above ``path`` (judged where links lead) that is a saved model, an export or a
    checkpoint: mscmt writes nothing new inside one. ``home``: one such directory that may hold ``path`` (a model
    directory's own ``MODEL/onnx``)."""
    for parent in Path(os.path.realpath(path)).parents:
        if _is_saved_dir(parent):
            if home is not None and same_file(parent, home):
                return None
            return parent
    return None


def _is_saved_dir(directory: Path) -> bool:
    """A saved model or an export (``config.json`` beside weights or a graph), or a checkpoint (``state.pt``)."""
    return _is_model_dir(directory) or (directory / CHECKPOINT_MARKER).is_file()


def _refuse_inside_saved_model(path: Path, option: str, home: Path | None = None) -> None:
    found = _saved_model_above(path, home)
    if found is not None:
        raise MscmtError(
            f"{option} {path}: is inside {found}, a saved model, export or checkpoint; mscmt writes nothing new there: pass a path outside it"
        )


def check_dir_target(path: Path | str | None, option: str, *, home: Path | None = None, replaces_saved: bool = False) -> Path:
    """A directory to create or fill: not empty, not an existing file, device or pipe, not below a file, neither a
    saved model, an export or a checkpoint nor inside one (``home``: the one it may be inside, see
    :func:`_saved_model_above`; ``replaces_saved``: it may be one, an earlier export that ``mscmt export`` replaces)."""
    path = check_not_empty(path, option)
    stream = stream_kind(path)
    if stream is not None:
        raise MscmtError(f"{option} {path}: is {stream}, not a directory; pass a directory name")
    if path.exists() and not path.is_dir():
        raise MscmtError(f"{option} {path}: is a file, not a directory; pass a directory name")
    blocker = _file_above(path)
    if blocker is not None:
        raise MscmtError(f"{option} {path}: {blocker} is a file, so no directory can be made inside it")
    _refuse_inside_saved_model(path, option, home)
    if not replaces_saved and _is_saved_dir(Path(os.path.realpath(path))):
        raise MscmtError(f"{option} {path}: is a saved model, export or checkpoint; mscmt writes nothing new there: pass another directory")
    return path


def check_file_target(path: Path | str | None, option: str) -> Path:
    """A file to write: not empty, not an existing directory, not below a file."""
    path = check_not_empty(path, option, "scores.json")
    if path.is_dir():
        raise MscmtError(f"{option} {path}: is a directory; pass a file name (e.g. {path / 'scores.json'})")
    blocker = _file_above(path)
    if blocker is not None:
        raise MscmtError(f"{option} {path}: {blocker} is a file, so no file can be made inside it")
    return path


def listing(names: list[str], limit: int = 4) -> str:
    """``a, b, c, d and 3 more`` for messages that name what a directory holds."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- what an existing file is --------------------------------------------------------------------


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` are the same existing file or directory, however spelled."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # missing, unreadable, NUL in the name
        return False


def looks_like_image(path: Path) -> bool:
    """Whether ``path`` is an existing file whose header Pillow reads as an image (nothing is decoded)."""
    from PIL import Image

    try:
        if not path.is_file():
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path):
                return True
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return True
    except Exception:  # not an image (Pillow raises many types)
        return False


def _head(path: Path, size: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def _is_model_dir(directory: Path) -> bool:
    return (directory / "config.json").is_file() and any((directory / name).is_file() for name in MODEL_MARKERS)


def protected_kind(path: Path) -> str | None:
    """What an existing file is when mscmt never replaces it: a model file, a run's record, a data split, an image."""
    path = Path(path)
    if path.suffix.lower() in MODEL_SUFFIXES or any(_is_model_dir(d) for d in (path.parent, path.parent.parent)):
        return "a model file"
    if path.name in RUN_RECORD_NAMES:
        return "a run's record"
    if _head(path, 256).lstrip().startswith(b"IMGID:"):
        return "a data split"
    if looks_like_image(path):
        return "an image file"
    return None


@dataclass(frozen=True)
class FileKind:
    """A kind of file mscmt writes: its name in messages, and how an existing one is recognised (``owns``)."""

    name: str
    owns: Callable[[Path], bool]


def json_kind(name: str, accepts: Callable[[Any], bool]) -> FileKind:
    """A JSON file whose parsed value ``accepts`` (an empty file counts as new)."""

    def owns(path: Path) -> bool:
        from mscmt_cli.strict_json import loads

        data = _read_bounded(path)
        if data is None:
            return False
        if not data.strip():
            return True
        try:
            return bool(accepts(loads(data)))
        except (ValueError, RecursionError):
            return False

    return FileKind(name, owns)


def prefix_kind(name: str, *prefixes: bytes) -> FileKind:
    """A text file that starts with one of ``prefixes`` (an empty file counts as new)."""

    def owns(path: Path) -> bool:
        head = _head(path, max(len(p) for p in prefixes))
        return head == b"" or any(head.startswith(p) for p in prefixes)

    return FileKind(name, owns)


def _read_bounded(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > RECOGNISE_BYTES:
            return None
        return path.read_bytes()
    except OSError:
        return None


def check_write(path: Path | str | None, option: str, kind: FileKind, reads: Reads = (), *, streams: bool = False) -> Path:
    """A file the user named for ``option`` to write, refused before anything is read or written when it would
    replace something that is not an earlier output of the same kind (see the module doc). Links are judged by
    where they lead; a file with another name (a hard link) is refused, as writing it changes the other name too;
    nothing new goes inside a saved model, an export or a checkpoint.

    ``streams``: the output is written as it goes, so a device, a pipe or a process stream (``/dev/stdout``,
    ``/proc/self/fd/1``, a link to one) is accepted and written through, appended to (:func:`open_stream`);
    an output written whole (temporary file, then rename) refuses them.
    """
    path = check_file_target(path, option)
    for what, other in reads:
        if same_file(path, other):
            raise MscmtError(f"{option} {path} is the same file as {what} {other}: refusing to overwrite it")
    stream = stream_kind(path)
    if stream is not None:
        if streams and path.exists():
            return path
        if streams:
            raise MscmtError(f"{option} {path}: does not exist, and mscmt makes no file in /dev, /proc or /sys; give a file name")
        raise MscmtError(
            f"{option} {path}: is {stream}; this output is written whole to a file (a temporary file, then renamed): give a file name"
        )
    if path.is_symlink() and not path.exists():
        raise MscmtError(f"{option} {path}: is a link to {os.readlink(path)}, which does not exist; give a file name")
    if not path.exists():
        _refuse_inside_saved_model(path, option)
        if not path.parent.is_dir() and streams:
            raise MscmtError(f"{option} {path}: directory {path.parent} does not exist")
        return path
    if not path.is_file():
        raise MscmtError(f"{option} {path}: not a regular file; refusing to replace it")
    links = path.stat().st_nlink
    if links > 1:
        raise MscmtError(
            f"{option} {path}: the file has {links} names (hard links), and writing it would change the others too: "
            "refusing to overwrite it; give a new file name"
        )
    found = protected_kind(path)
    if found is not None:
        raise MscmtError(f"{option} {path} is {found}: refusing to overwrite it; give a new file name")
    _refuse_inside_saved_model(path, option)
    if not kind.owns(path):
        raise MscmtError(f"{option} {path} exists and is not {kind.name} mscmt wrote: refusing to overwrite it; give a new file name")
    return path


# -- writing ------------------------------------------------------------------------------------


def make_dir(path: Path, option: str = "output directory") -> Path:
    """Create ``path`` and its parents (an existing directory is fine); a failure is one line naming it."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MscmtError(f"{option} {path}: cannot create the directory ({err.strerror or err})") from None
    return Path(path)


def sync(fh: IO[Any]) -> None:
    """Flush ``fh`` and sync it to disk (a pipe or device that cannot sync is written as it is)."""
    fh.flush()
    try:
        os.fsync(fh.fileno())
    except OSError as err:
        if err.errno not in (22, 95):  # EINVAL, EOPNOTSUPP: a pipe or device cannot sync
            raise


@contextmanager
def atomic_file(path: Path | str, option: str = "output file", durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it is synced (``durable``) and renamed to ``path``.

    The temporary file never outlives a failed write; an OS error is one line naming ``path``.
    """
    path = check_file_target(path, option)
    stream = stream_kind(path)
    if stream is not None:  # renaming over /dev/stdout would replace the device's name, not write to it
        raise MscmtError(f"{option} {path}: is {stream}; this output is written whole to a file: give a file name")
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as fh:
                sync(fh)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise MscmtError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], object], option: str = "output file", durable: bool = True) -> None:
    """Write ``path`` through ``write(binary file)`` atomically (temporary file beside it, synced, then renamed)."""
    with atomic_file(path, option, durable) as tmp, open(tmp, "wb") as fh:
        write(fh)


def write_bytes_atomic(path: Path | str, data: bytes, option: str = "output file") -> None:
    """Write ``data`` to ``path`` atomically (temporary file beside it, synced, then renamed)."""
    write_atomic(path, lambda fh: fh.write(data), option)


def write_text_atomic(path: Path | str, text: str, option: str = "output file") -> None:
    """Write a UTF-8 text file atomically; creates the parent folder. A directory at ``path`` (or a file where a
    parent folder should be) is refused, and nothing is written when ``text`` cannot be encoded."""
    write_bytes_atomic(path, text.encode("utf-8"), option)


def write_json(path: Path | str, data: Any) -> None:
    """Write strict JSON atomically (temporary file, then rename); a NaN or infinity raises before anything is written."""
    from mscmt_cli.strict_json import dumps

    write_text_atomic(path, dumps(data, str(path), indent=2, sort_keys=False) + "\n")


def open_stream(path: Path, option: str, append: bool = False) -> BinaryIO:
    """``path`` opened (binary) to write as it goes, or to append whole lines (``append``): a tag output, a
    captions file, ``metrics.jsonl``. The caller has checked ``path`` (:func:`check_write`) first. A device, pipe or
    process stream (``/dev/stdout``, which the shell may have sent to a file) is appended to, never truncated."""
    try:
        return open(path, "ab" if append or stream_kind(path) is not None else "wb")
    except OSError as err:
        raise MscmtError(f"{option} {path}: cannot write ({err.strerror or err})") from None


def truncate_file(path: Path, size: int, option: str) -> None:
    """Cut ``path`` to ``size`` bytes (a partial last line of a file the caller has recognised as its own)."""
    try:
        with open(path, "r+b") as fh:
            fh.truncate(size)
    except OSError as err:
        raise MscmtError(f"{option} {path}: cannot repair its last line ({err.strerror or err})") from None


def remove_file(path: Path) -> None:
    """Remove one file the caller has proved its own (a stale score, a temporary file, a cache entry's feature)."""
    Path(path).unlink(missing_ok=True)


def remove_empty_dir(path: Path) -> bool:
    """Remove ``path`` when it is an empty directory; whether it went (a directory holding anything stays)."""
    try:
        Path(path).rmdir()
        return True
    except OSError:
        return False


def remove_tree(path: Path) -> None:
    """Remove a directory mscmt made itself (a temporary directory, a superseded copy); errors are ignored."""
    if Path(path).is_symlink():
        Path(path).unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def copy_file(source: Path | str, target: Path) -> None:
    """Copy ``source`` into a directory mscmt is building (:func:`atomic_dir`)."""
    shutil.copyfile(source, target)


def _files(root: Path) -> set[str]:
    """Every file below ``root`` (links not followed), as paths relative to it."""
    found = set()
    for base, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
            found.add(os.path.relpath(os.path.join(base, name), root))
    return found


def foreign_files(old: Path, ours: Callable[[str], bool]) -> list[str]:
    """The files below ``old`` (relative paths, sorted) that ``ours`` does not accept."""
    return sorted(name for name in _files(old) if not ours(name))


def _real_dir(out: Path) -> Path:
    """Where the directory ``out`` is: a link to a directory is the directory it names (built beside it), and a
    parent spelled with ``..`` is resolved first (``a/../a`` is ``./a``: renaming ``a`` away must not lose the way back)."""
    if out.is_symlink():
        return out.resolve()
    return Path(os.path.realpath(out.parent)) / out.name


@contextmanager
def atomic_dir(out: Path, option: str = "--out", keep: Callable[[str], bool] | None = None, old_name: str | None = None) -> Iterator[Path]:
    """A temporary directory beside ``out`` to build; on success it replaces ``out`` (:func:`replace_dir`).

    ``keep``: relative paths below an existing ``out`` that may go although the new version lacks them
    (an earlier version's own files); by default only the paths the new version writes too.
    """
    out = Path(out)
    stream = stream_kind(out)
    if stream is not None:
        raise MscmtError(f"{option} {out}: is {stream}, not a directory; pass a directory name")
    real = _real_dir(out)
    make_dir(real.parent, option)
    try:
        tmp = Path(tempfile.mkdtemp(dir=real.parent, prefix=f".{real.name}."))
    except OSError as err:
        raise MscmtError(f"{option} {out}: cannot write into {real.parent} ({err.strerror or err})") from None
    try:
        os.chmod(tmp, 0o755)
        yield tmp
        replace_dir(tmp, out, option, keep, old_name)
    except OSError as err:
        raise MscmtError(f"{option} {out}: cannot write ({err.strerror or err})") from None
    finally:
        remove_tree(tmp)


def replace_dir(
    tmp: Path, out: Path, option: str = "--out", keep: Callable[[str], bool] | None = None, old_name: str | None = None
) -> None:
    """Put the finished directory ``tmp`` at ``out`` (absent, empty, or an earlier version of it).

    An earlier ``out`` is replaced only when every file in it is one ``tmp`` holds too (or one ``keep``
    accepts): a file of the user's anywhere inside is refused, nothing deleted. A symbolic link to a
    directory stays a link (the directory it names is replaced); nothing of the old version is left behind.
    ``old_name``: where the old version waits between the two renames (:func:`recover_dir` finds it there).
    """
    out = Path(out)
    real = _real_dir(out)
    new = _files(tmp)
    if real.is_dir():
        foreign = foreign_files(real, lambda name: name in new or (keep is not None and keep(name)))
        if foreign:
            raise MscmtError(
                f"{option} {out}: holds {listing(foreign)}, which mscmt did not write there; move it out or pass another {option}"
            )
    old = real.with_name(old_name or f".{real.name}.old.{os.getpid()}") if real.exists() else None
    if old is not None:
        remove_tree(old)
        os.replace(real, old)
    os.replace(tmp, real)
    if old is not None:
        remove_tree(old)


def recover_dir(out: Path, old: Path) -> None:
    """Put ``old`` back at ``out`` when a kill fell between the two renames of :func:`replace_dir`."""
    if not Path(out).exists() and Path(old).exists():
        os.replace(old, out)


def save_tensors(path: Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically."""
    from safetensors.torch import save_file

    with atomic_file(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def save_torch(path: Path, obj: Any) -> None:
    """Write ``torch.save(obj)`` atomically (a checkpoint's optimizer and progress state)."""
    import torch

    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def save_figure(figure: Any, path: Path, **options: Any) -> None:
    """Write a matplotlib figure atomically (its format from ``path``'s suffix)."""
    suffix = Path(path).suffix.lstrip(".") or "png"
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format=suffix, **options)


def save_pretrained(obj: Any, directory: Path) -> None:
    """``obj.save_pretrained(directory)`` (a Hugging Face config, tokenizer or model) into a directory mscmt is
    building (:func:`atomic_dir`) or a temporary one."""
    make_dir(directory)
    obj.save_pretrained(directory)


def move_file(source: Path, target: Path) -> None:
    """Rename a finished file of mscmt's own (a shard written as ``.NAME.partial``) to its name."""
    os.replace(source, target)


#: Any existing file (an output option without a kind of its own).
ANY_FILE = FileKind("a file", lambda path: True)


def check_out_dir(out: str | os.PathLike[str], option: str = "--out") -> Path:
    """``out`` as a Path: a file whose directory exists, not an existing directory."""
    out = Path(out)
    if out.is_dir():
        raise MscmtError(f"{option} {out}: is a directory (give a file name)")
    if not out.parent.is_dir():
        raise MscmtError(f"{option} {out}: directory {out.parent} does not exist")
    return out


def check_output(out: str | os.PathLike[str], reads: Reads, option: str = "--out", kind: FileKind | None = None) -> Path:
    """Refuse an output that is an existing directory, one of ``reads`` (any path to it), a model file, a run's
    record, a data split, an image file, or (with ``kind``) an existing file that is not one of that kind."""
    if stream_kind(out) is None and not os.path.lexists(out):  # (an existing file is judged by check_write)
        _refuse_inside_saved_model(Path(out), option)
    out = check_out_dir(out, option)
    return check_write(out, option, kind or ANY_FILE, reads, streams=True)


def missing_local_copy(path: str | os.PathLike[str]) -> str | None:
    """``"no such directory: PATH"`` (``file`` for a path with a suffix: a few components take a weights file) when
    a local copy given by ``--model-path NAME=PATH`` does not exist, else None."""
    local = Path(path).expanduser()
    if local.exists():
        return None
    return f"no such {'file' if local.suffix else 'directory'}: {local}"
