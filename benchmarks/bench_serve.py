"""Service throughput: ``mscmt serve`` batching concurrent requests, against one request per forward pass.

Two services run side by side, each ``python -m mscmt_cli serve`` in a
subprocess on 127.0.0.1 (a free port, ``--device``, ``--threads`` torch threads): the
batching one (``--batch-max 32 --batch-wait-ms 5``, the defaults) and one with
``--batch-max 1`` (one request per forward pass, as the service was before
batching). Each is driven by 1 and by 32 concurrent clients (asyncio + httpx,
one keep-alive connection each), every client posting ``/tag`` requests
(``{"tokens": [...]}``) one after another until ``--requests`` requests or
``--seconds`` seconds in all, whichever comes first; the arms take turns. Every
answer is checked: its tokens must be the request's own (``wrong`` counts the
others, and a failed request, and makes the exit status 1).

The model: ``--model RUN`` or, by default, an untrained minilm + crf text model
(speed does not depend on training), run by ``--backend torch`` or ``onnx``
(both services and the ceiling; a run is exported into ``RUN/onnx/`` once). The tweets: the TWITTER-2015 test split
(``--texts twitter2015``) or generated ones (``--texts synthetic``).

Target: the batching service at 32 clients at least 4x its own 1-client throughput.

The ceiling: batching can only gain what one forward pass over many tweets
gains over one tweet at a time. Before the services start, the same model is
loaded in this process and ``Tagger.tag_batch`` tags the same tweets in calls
of 1 and of ``--batch-max`` tweets, taking turns (``common.interleaved``,
``--repeats`` rounds); the ratio of the two throughputs is the most any
batching service can reach on this machine, and the report shows how much of
it the service reaches. On a CPU where one tweet already keeps the cores busy
the ceiling is small; on a GPU, where a pass of one tweet leaves it mostly idle,
it is large (``--device cuda``, run by ``benchmarks/gpu.sh``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: become python -m benchmarks.<name> (see _script.py)
    __import__("_script").run_as_module(__file__)

from benchmarks.common import REPO, Stopwatch, base_parser, chunks, corpus_tweets, interleaved, machine_line, save_text_model, set_threads


@dataclass
class Run:
    """One arm with one number of clients: latencies (s), wall seconds, answers not the request's own."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    wrong: int = 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(model: Path, batch_max: int, batch_wait_ms: float, threads: int, extra: list[str], timeout: float, device: str = "cpu"):
    """A ``mscmt serve`` subprocess and its base URL, once ``/health`` answers."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "mscmt_cli", "serve", "--model", str(model), "--port", str(port), "--device", device]
    command += ["--batch-max", str(batch_max), "--batch-wait-ms", str(batch_wait_ms), *extra]
    env = os.environ.copy()
    if threads > 0:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"error: {' '.join(command[:5])} ... exited {proc.returncode}:\n{proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"error: the service did not answer /health within {timeout:.0f} s")


async def drive(url: str, clients: int, bodies: list[dict], max_requests: int, max_seconds: float) -> Run:
    """``clients`` concurrent clients posting ``bodies`` in turn until ``max_requests`` or ``max_seconds``."""
    import httpx

    run, counter = Run(), itertools.count()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*[http.get("/health") for _ in range(clients)])  # open the connections, untimed
        start = time.perf_counter()
        stop_at = start + max_seconds

        async def client() -> None:
            while (k := next(counter)) < max_requests and time.perf_counter() < stop_at:
                body = bodies[k % len(bodies)]
                t0 = time.perf_counter()
                resp = await http.post("/tag", json=body)
                run.latencies.append(time.perf_counter() - t0)
                if resp.status_code != 200 or resp.json().get("tokens") != body["tokens"]:
                    run.wrong += 1

        await asyncio.gather(*[client() for _ in range(clients)])
        run.seconds = time.perf_counter() - start
    return run


def batching_ceiling(
    model: Path, tweets: list[list[str]], batch_max: int, device: str, repeats: int, model_paths: dict[str, str], backend: str = "torch"
) -> float:
    """Throughput of ``Tagger.tag_batch`` in calls of ``batch_max`` tweets over calls of 1 tweet, in this
    process (no HTTP), with the services' backend: the most a batching service can gain here."""
    from mscmt_cli import Tagger

    tagger = Tagger.from_pretrained(model, device=device, model_paths=model_paths, batch_size=batch_max, backend=backend)
    tagger.tag_batch(tweets[:batch_max])  # warm-up
    sizes = {"calls of 1 tweet": 1, f"calls of {batch_max} tweets": batch_max}

    def segments(size: int):
        """One segment per ``batch_max`` tweets, tagged in calls of ``size``; both arms get the same segments."""

        def timed(group: list[list[str]]):
            def run() -> float:
                with Stopwatch() as sw:
                    for part in chunks(group, size):
                        tagger.tag_batch(part)
                return sw.seconds

            return run

        return lambda: [timed(group) for group in chunks(tweets, batch_max)]

    times = interleaved({name: segments(size) for name, size in sizes.items()}, repeats)
    one, many = (statistics.median(times[name]) for name in sizes)
    return one / many


def ratio_of(results: dict[tuple[str, int], Run], name: str, low: int, high: int) -> float:
    """Throughput of arm ``name`` with ``high`` clients over its throughput with ``low``."""
    a, b = results[name, low], results[name, high]
    return (len(b.latencies) / b.seconds) / (len(a.latencies) / a.seconds)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * q // 100) - 1))] if ordered else float("nan")


def synthetic_tweets(n: int, seed: int = 13) -> list[list[str]]:
    words = [
        "Obama",
        "visits",
        "Paris",
        "with",
        "the",
        "team",
        "today",
        "RT",
        "@nba",
        "LeBron",
        "wins",
        "New",
        "York",
        "game",
        "#NBA",
        "great",
        "news",
        "from",
        "London",
        "and",
        "Berlin",
    ]
    rng = random.Random(seed)
    return [[f"t{k}"] + rng.choices(words, k=rng.randint(5, 25)) for k in range(n)]


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--model", type=Path, default=None, help="run directory to serve (default: an untrained minilm + crf model)")
    parser.add_argument("--model-path", action="append", default=[], metavar="NAME=PATH", help="a component's local weights (repeatable)")
    parser.add_argument("--serve-arg", action="append", default=[], help="one more argument for both services (repeatable)")
    parser.add_argument("--texts", choices=("twitter2015", "synthetic"), default="twitter2015", help="tweets to send [%(default)s]")
    parser.add_argument("--clients", default="1,32", help="numbers of concurrent clients, comma-separated [%(default)s]")
    parser.add_argument("--requests", type=int, default=1000, help="most requests per arm and number of clients [%(default)s]")
    parser.add_argument("--seconds", type=float, default=30.0, help="most seconds per arm and number of clients [%(default)s]")
    parser.add_argument("--batch-max", type=int, default=32, help="the batching service's --batch-max [%(default)s]")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="the batching service's --batch-wait-ms [%(default)s]")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where both services run the model [%(default)s]")
    parser.add_argument(
        "--backend", choices=("torch", "onnx"), default="torch", help="both services' and the ceiling's backend [%(default)s]"
    )
    parser.add_argument("--ceiling-tweets", type=int, default=256, help="tweets of the in-process ceiling measurement [%(default)s]")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds a service may take to start [%(default)s]")
    args = parser.parse_args()
    set_threads(args.threads)
    print(machine_line())
    if args.texts == "synthetic":
        tweets = synthetic_tweets(max(args.requests, 64))
    else:
        tweets = [list(t.tokens) for t in corpus_tweets(args.data_dir, "twitter2015", ("test",))]
    bodies = [{"tokens": tokens} for tokens in tweets]
    clients = [int(c) for c in args.clients.split(",")]
    arms = {
        f"batching (max {args.batch_max}, {args.batch_wait_ms:g} ms)": (args.batch_max, args.batch_wait_ms),
        "one at a time (max 1)": (1, 0.0),
    }
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        model = args.model
        if model is None:
            save_text_model(Path(tmp) / "run" / "model")
            model = Path(tmp) / "run"
        print(f"in-process ceiling: Tagger.tag_batch, {args.ceiling_tweets} tweets in calls of {args.batch_max} vs of 1")
        paths = dict(item.split("=", 1) for item in args.model_path)
        ceiling = batching_ceiling(model, tweets[: args.ceiling_tweets], args.batch_max, args.device, args.repeats, paths, args.backend)
        serve_args = [f"--model-path={item}" for item in args.model_path] + [f"--backend={args.backend}", *args.serve_arg]
        services = {
            name: start_service(model, bm, bw, args.threads, serve_args, args.start_timeout, args.device) for name, (bm, bw) in arms.items()
        }
        try:
            for _, url in services.values():
                asyncio.run(drive(url, 2, bodies[:8], 8, 60))  # warm-up: first forward passes, caches
            results: dict[tuple[str, int], Run] = {}
            for n in clients:
                for name, (_, url) in services.items():
                    results[name, n] = asyncio.run(drive(url, n, bodies, args.requests, args.seconds))
        finally:
            for proc, _ in services.values():
                proc.terminate()
                proc.wait(30)
    threads = f"{args.threads or 'default'} {'torch' if args.backend == 'torch' else 'intra-op'} thread(s)"
    print(f"/tag with {len(bodies)} {args.texts} tweets, {args.device}, {args.backend} backend, {threads} per service")
    print(f"{'arm':<34} {'clients':>7} {'requests':>8} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'wrong':>6}")
    for (name, n), run in results.items():
        rate = len(run.latencies) / run.seconds
        p50, p99 = 1000 * percentile(run.latencies, 50), 1000 * percentile(run.latencies, 99)
        print(f"{name:<34} {n:>7} {len(run.latencies):>8} {run.seconds:>8.2f} {rate:>8.1f} {p50:>8.1f} {p99:>8.1f} {run.wrong:>6}")
    low, high = min(clients), max(clients)
    for name in arms:
        ratio = ratio_of(results, name, low, high)
        print(f"{name}: {high} clients / {low} client(s) throughput = {ratio:.2f}x")
    print(
        f"ceiling (in process, {args.batch_max} tweets per call / 1): {ceiling:.2f}x; "
        f"the batching service reaches {ratio_of(results, next(iter(arms)), low, high) / ceiling:.0%} of it"
    )
    if any(run.wrong for run in results.values()):
        raise SystemExit("error: some requests failed or were answered with another request's tokens")


if __name__ == "__main__":
    main()
