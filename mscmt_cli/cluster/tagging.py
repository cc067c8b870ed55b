"""``mscmt tag INPUT --ray ADDRESS``: JSON Lines and Parquet shards tagged by a pool of Ray actors.

Each actor (:class:`TagWorker`) loads the model once and tags one
:class:`~mscmt_cli.tagging.shards.Chunk` at a time with
:func:`~mscmt_cli.tagging.shards.tag_chunk`, the one-process parsing and
tagging path, so its memory stays that of one window. This machine (the
driver) reads the shards chunk by chunk, keeps at most two chunks per worker
in flight, takes the results back in input order and writes them: one JSON
Lines file (or stdout), or one output shard per input shard when ``--out`` is
a directory. Bad lines are reported as in one process, ``shard:line:
message``, and never stop the job (unless ``--strict``).

Why actors and not Ray Data's ``map_batches``: a bad line must come back as a
value with its shard and line number, the output must keep the input's
order, and memory must stay bounded on both sides; an ordered window of actor
calls gives all three in a few lines, where Ray Data would need its own
readers (which stop at a malformed line) and ordered execution.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from mscmt_cli.cluster.connect import check_address, connected, gpus_per_task, require_ray, task_error, worker_settings
from mscmt_cli.console import progress
from mscmt_cli.errors import DataError, MscmtError
from mscmt_cli.paths import check_dir_target, check_output, make_dir, move_file, open_stream
from mscmt_cli.settings import Settings
from mscmt_cli.tagging.inputs import BadRecord
from mscmt_cli.tagging.jobs import NO_MODEL, Sink, load_tagger, open_output, tag_reads
from mscmt_cli.tagging.outputs import TAG_OUTPUT, check_stdout
from mscmt_cli.tagging.shards import Chunk, Shard, find_shards, ignored_note, read_chunks, tag_chunk
from mscmt_cli.tagging.stream import Tally

IN_FLIGHT_PER_WORKER = 2  # one chunk tagged, one waiting: no worker idles while the driver reads and writes


class TagWorker:
    """A Ray actor's state: the settings, and the tagger once loaded (by :meth:`load`, or by the first chunk after a restart)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tagger: Any = None

    def load(self) -> str:
        """Load the model (errors come back to the driver as they are); the device it runs on."""
        if self.tagger is None:
            self.tagger = load_tagger(self.settings)
        return str(self.tagger.device)

    def tag(self, chunk: Chunk) -> list[bytes | BadRecord]:
        """Each non-blank line of ``chunk``: its output line, or why it is bad."""
        self.load()
        return tag_chunk(self.tagger, chunk)

    def report(self) -> list[str]:
        """The end-of-run lines about missing images and captions (:meth:`Tagger.reports`)."""
        return [] if self.tagger is None else self.tagger.reports()


@dataclass
class Layout:
    """Where the output goes: ``directory`` (one shard per input shard), else ``file`` (None: stdout)."""

    file: Path | None = None
    directory: Path | None = None


def plan_output(out: str | os.PathLike[str] | None, shards: list[Shard], reads: Sequence[tuple[str, Path]]) -> Layout:
    """``--out`` checked before anything is read: a directory (an existing one, or a name ending in ``/``)
    gets ``<shard name>.jsonl`` per input shard, anything else is one file; nothing replaces a file the run reads."""
    if out is None:
        check_stdout(reads)
        return Layout()
    if not (Path(out).is_dir() or os.fspath(out).endswith(("/", os.sep))):
        return Layout(file=check_output(out, reads, kind=TAG_OUTPUT))
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise MscmtError(f"--out {out}: exists and is not a directory")
    check_dir_target(directory, "--out")  # nothing inside a saved model, an export or a checkpoint
    seen: dict[str, Path] = {}
    for shard in shards:
        if shard.out_name in seen:
            raise MscmtError(f"--out {out}: {seen[shard.out_name]} and {shard.path} would both be written to {shard.out_name}")
        seen[shard.out_name] = shard.path
        if directory.is_dir():
            check_output(directory / shard.out_name, reads, kind=TAG_OUTPUT)
    return Layout(directory=directory)


class Outputs:
    """Where each shard's lines go: one sink for every shard (a file, stdout), or a file per shard in a directory.

    Shards arrive in order; in a directory each is written to ``.<name>.partial`` and renamed
    to ``<name>`` when the next shard starts or the run ends, so a name is always a whole shard.
    """

    def __init__(self, shards: list[Shard], shared: Sink | None = None, directory: Path | None = None) -> None:
        self.shards, self.shared, self.directory = shards, shared, directory
        self.current: tuple[int, Sink, Path, Path] | None = None  # shard, its sink, partial file, final file

    def sink(self, shard: int) -> Sink:
        """Where shard ``shard``'s lines go (in a directory, the shard before it is finished first)."""
        if self.shared is not None:
            return self.shared
        if self.current is not None and self.current[0] == shard:
            return self.current[1]
        self.finish()
        assert self.directory is not None
        final = self.directory / self.shards[shard].out_name
        partial = final.with_name(f".{final.name}.partial")
        stream = open_stream(partial, f"--out {self.directory}: shard")
        self.current = (shard, Sink(stream, f"--out {final}"), partial, final)
        return self.current[1]

    def finish(self, complete: bool = True) -> None:
        """Close the open output shard; renamed to its name when ``complete``, else left as ``.partial``."""
        if self.current is None:
            return
        _, sink, partial, final = self.current
        self.current = None
        try:
            sink.close()
        except MscmtError:
            if complete:
                raise
            return  # the run already failed: keep its error, not this one
        if complete:
            move_file(partial, final)


@contextmanager
def run_outputs(layout: Layout, shards: list[Shard]) -> Iterator[Outputs]:
    """The outputs of a run (see :class:`Outputs`)."""
    if layout.directory is None:
        with open_output(layout.file) as sink:
            yield Outputs(shards, shared=sink)
        return
    make_dir(layout.directory, "--out")
    outputs = Outputs(shards, directory=layout.directory)
    try:
        yield outputs
    except BaseException:
        outputs.finish(complete=False)
        raise
    outputs.finish()


def ordered_results(
    ray: Any, actors: list[Any], chunks: Iterator[Chunk], shards: list[Shard]
) -> Generator[tuple[Chunk, list[bytes | BadRecord]], None, None]:
    """Each chunk (its lines dropped) with its result, in input order.

    At most ``IN_FLIGHT_PER_WORKER`` chunks per actor are sent and not yet taken back, so the
    driver holds a bounded number of chunks and results however long the input is; each chunk
    goes to the actor with the fewest in flight. A chunk that fails (a worker lost for good,
    a bug) stops the run with one error naming its shard and lines.
    """
    in_flight: deque[tuple[Chunk, int, Any, int]] = deque()
    load = [0] * len(actors)

    def submit() -> bool:
        chunk = next(chunks, None)
        if chunk is None:
            return False
        k = min(range(len(actors)), key=load.__getitem__)
        in_flight.append((Chunk(chunk.shard, chunk.first_line, [], chunk.size), len(chunk.lines), actors[k].tag.remote(chunk), k))
        load[k] += 1
        return True

    while len(in_flight) < IN_FLIGHT_PER_WORKER * len(actors) and submit():
        pass
    try:
        while in_flight:
            chunk, count, ref, k = in_flight.popleft()
            try:
                result = ray.get(ref)
            except Exception as err:
                lines = f"{chunk.first_line}-{chunk.first_line + count - 1}"
                raise MscmtError(f"{shards[chunk.shard].path}: lines {lines} could not be tagged: {task_error(err)}") from None
            load[k] -= 1
            submit()
            yield chunk, result
    finally:
        for _, _, ref, _ in in_flight:
            ray.cancel(ref)


def default_workers(ray: Any, gpus: float) -> int:
    """One worker per GPU share the cluster has (``gpus`` each), else one per CPU."""
    resources = ray.cluster_resources()
    total = float(resources.get("GPU", 0)) / gpus if gpus > 0 else float(resources.get("CPU", 1))
    return max(1, int(total))


def check_workers(ray: Any, workers: int, gpus: float) -> None:
    """Refuse a pool the cluster cannot hold at once (its last actors would wait forever)."""
    resources = ray.cluster_resources()
    cpus, total_gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if workers > cpus:
        raise MscmtError(f"--workers {workers}: the cluster has {cpus:g} CPU(s), and each worker takes one")
    if workers * gpus > total_gpus + 1e-9:
        raise MscmtError(f"--workers {workers} with {gpus:g} GPU(s) each needs {workers * gpus:g} GPUs; the cluster has {total_gpus:g}")


def run_tag_cluster(
    settings: Settings,
    input_name: str,
    out: str | os.PathLike[str] | None,
    *,
    address: str,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    strict: bool = False,
    window: int = 1024,
    console: Console,
    also_reads: Sequence[tuple[str, Path]] = (),
) -> Tally:
    """Tag every shard of ``input_name`` on the Ray cluster at ``address``; see the module docstring."""
    require_ray()
    address = check_address(address)
    if workers is not None and workers < 1:
        raise MscmtError(f"--workers must be at least 1, got {workers}")
    shards, layout = _check_paths(settings, input_name, out, also_reads, console)
    with connected(address) as ray:
        gpus = gpus_per_task(ray, gpus_per_worker, "--gpus-per-worker")
        count = workers or default_workers(ray, gpus)
        check_workers(ray, count, gpus)
        shipped = worker_settings(settings, gpus, "--gpus-per-worker")
        actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=2, max_task_retries=2)(TagWorker)
        console.print(f"{len(shards)} shard(s), {count} worker(s) on the Ray cluster at {address}, {gpus:g} GPU(s) each")
        actors = [actor.remote(shipped) for _ in range(count)]
        try:
            try:
                ray.get([a.load.remote() for a in actors])  # every worker loads the model once, before any line is sent
            except Exception as err:
                raise MscmtError(f"a worker could not load the model: {task_error(err)}") from None
            tally = _tag_all(ray, actors, shards, layout, strict, window, console, settings.progress_every)
            for line in sorted({n for notes in ray.get([a.report.remote() for a in actors]) for n in notes}):
                console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
        finally:
            for a in actors:
                ray.kill(a)
    skipped = f"; skipped {tally.bad} bad line(s) (reported above)" if tally.bad else ""
    where = f" into {layout.directory}" if layout.directory is not None else ""
    console.print(
        f"tagged {tally.tagged} tweet(s) from {len(shards)} shard(s){where}{skipped}", markup=False, highlight=False, soft_wrap=True
    )
    return tally


def _check_paths(
    settings: Settings, input_name: str, out: str | os.PathLike[str] | None, also_reads: Sequence[tuple[str, Path]], console: Console
) -> tuple[list[Shard], Layout]:
    """The shards and the output layout, checked before Ray is started (``also_reads``: e.g. ``--config``)."""
    if settings.model is None:
        raise MscmtError(NO_MODEL)
    images = settings.images_dir
    if images is not None and not Path(images).is_dir():
        raise MscmtError(f"--images {images}: " + ("is not a directory" if Path(images).exists() else "directory not found"))
    shards, ignored = find_shards(input_name)
    reads = [("the input", s.path) for s in shards] + tag_reads(settings, "-") + list(also_reads)  # "-": the shards are listed here
    layout = plan_output(out, shards, reads)
    note = ignored_note(ignored)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    return shards, layout


def _tag_all(
    ray: Any, actors: list[Any], shards: list[Shard], layout: Layout, strict: bool, window: int, console: Console, progress_every: float
) -> Tally:
    """Send every chunk, write every result in order, report the bad lines; the tally."""
    tally = Tally()
    results = ordered_results(ray, actors, read_chunks(shards, window), shards)
    with (
        closing(results),
        run_outputs(layout, shards) as outputs,
        progress(console, progress_every) as bar,
    ):  # closing: in-flight chunks cancelled
        shown = bar.add_task("tagging", total=sum(s.size for s in shards), unit="bytes", info="")
        for chunk, result in results:
            sink = outputs.sink(chunk.shard)
            source = shards[chunk.shard].path
            for line in result:
                if isinstance(line, BadRecord):
                    tally.bad += 1
                    if strict:
                        sink.flush()
                        raise DataError(source, line.line, f"{line.message} (--strict: stopped here)")
                    console.print(f"{source}:{line.line}: {line.message}", markup=False, highlight=False, soft_wrap=True)
                else:
                    tally.tagged += 1
                    sink.write(line)
            sink.flush()
            bar.update(shown, advance=chunk.size, info=f"{tally.tagged} tagged, {tally.bad} bad, shard {chunk.shard + 1}/{len(shards)}")
    return tally
