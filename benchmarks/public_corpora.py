"""Tables of out_of_domain.md: mscmt against the Hugging Face recipe on WNUT-17, and TWITTER-2017 models on Tweebank-NER.

Reads the run directories under ``--runs`` (named as out_of_domain.md's
commands name them) and prints Markdown:

* WNUT-17: ``wnut-mscmt-s<seed>/test_scores.json`` (``mscmt train``) and
  ``wnut-recipe-s<seed>/test_scores.json`` (``hf_recipe.py train``), test
  entity micro P/R/F1 per seed, mean ± sample std, mscmt minus recipe per
  seed pair.
* Out of domain: ``t17-mscmt-s<seed>/`` and ``t17-recipe-s<seed>/``, each with
  its in-domain ``test_scores.json`` and ``tweebank_scores.json`` (``mscmt
  evaluate --json`` / ``hf_recipe.py evaluate --name tweebank``), side by side
  with the drop from in-domain to out-of-domain and per-type Tweebank F1.

Seeds are paired in order (the i-th mscmt seed with the i-th recipe seed):
the two programs share no random stream, so a pair is two independent runs;
pairing only fixes which differences are listed.

    python benchmarks/public_corpora.py --runs RUNS
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mscmt_cli.studies.tables import PairedDeltas, average_cells, markdown_table, mean_std, type_f1_cells

SEEDS = {("wnut", "mscmt"): "13,14,15", ("wnut", "recipe"): "13,14,15", ("t17", "mscmt"): "1,2,3", ("t17", "recipe"): "13,14,15"}


def load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def micro(scores: dict | None, key: str = "f1") -> float | None:
    return None if scores is None else float(scores["micro"][key])


def runs(root: Path, corpus: str, system: str, seeds: str, name: str) -> list[tuple[int, dict | None]]:
    """(seed, scores or None) of every seed of one system."""
    return [(int(s), load(root / f"{corpus}-{system}-s{s}" / name)) for s in seeds.split(",")]


def paired(a: list[tuple[int, dict | None]], b: list[tuple[int, dict | None]]) -> list[str]:
    """Per seed pair: mscmt P/R/F1, recipe P/R/F1, difference of F1 in points; then means."""
    header = [
        "pair",
        "mscmt seed",
        "mscmt P",
        "mscmt R",
        "mscmt F1",
        "recipe seed",
        "recipe P",
        "recipe R",
        "recipe F1",
        "Δ F1 (mscmt − recipe)",
    ]
    rows, deltas = [], {}
    for i, ((sa, ra), (sb, rb)) in enumerate(zip(a, b), 1):
        delta = None if ra is None or rb is None else 100 * (micro(ra) - micro(rb))  # type: ignore[operator]
        if delta is not None:
            deltas[i] = delta
        cells = [pct(micro(ra, "precision")), pct(micro(ra, "recall")), pct(micro(ra))]
        other = [pct(micro(rb, "precision")), pct(micro(rb, "recall")), pct(micro(rb))]
        rows.append([str(i), str(sa), *cells, str(sb), *other, "—" if delta is None else f"{delta:+.2f}"])
    done_a = [r for _, r in a if r is not None]
    done_b = [r for _, r in b if r is not None]
    pairs = PairedDeltas(deltas)
    summary = "—" if not deltas else f"{pairs.mean()} (mscmt ahead in {pairs.better} of {len(deltas)})"
    rows.append(
        [
            "mean ± std",
            f"{len(done_a)} seeds",
            *average_cells(done_a, "micro"),
            f"{len(done_b)} seeds",
            *average_cells(done_b, "micro"),
            summary,
        ]
    )
    return markdown_table(header, rows)


def out_of_domain(root: Path) -> list[str]:
    """Per seed pair: in-domain and Tweebank micro F1 of both systems, the differences and each system's drop."""
    names = ("test_scores.json", "tweebank_scores.json")
    m = {n: runs(root, "t17", "mscmt", SEEDS["t17", "mscmt"], n) for n in names}
    r = {n: runs(root, "t17", "recipe", SEEDS["t17", "recipe"], n) for n in names}
    header = [
        "pair",
        "mscmt seed",
        "mscmt T17 test F1",
        "mscmt Tweebank F1",
        "recipe seed",
        "recipe T17 test F1",
        "recipe Tweebank F1",
        "Δ T17 (mscmt − recipe)",
        "Δ Tweebank (mscmt − recipe)",
    ]
    rows = []
    columns: dict[str, list[float]] = {k: [] for k in ("m_in", "m_out", "r_in", "r_out", "d_in", "d_out")}
    for i in range(3):
        (sm, m_in), (_, m_out) = m[names[0]][i], m[names[1]][i]
        (sr, r_in), (_, r_out) = r[names[0]][i], r[names[1]][i]
        values = {"m_in": micro(m_in), "m_out": micro(m_out), "r_in": micro(r_in), "r_out": micro(r_out)}
        for k, v in values.items():
            if v is not None:
                columns[k].append(v)
        diffs = []
        for a, b, key in (("m_in", "r_in", "d_in"), ("m_out", "r_out", "d_out")):
            va, vb = values[a], values[b]
            if va is None or vb is None:
                diffs.append("—")
            else:
                columns[key].append(va - vb)
                diffs.append(f"{100 * (va - vb):+.2f}")
        rows.append(
            [str(i + 1), str(sm), pct(values["m_in"]), pct(values["m_out"]), str(sr), pct(values["r_in"]), pct(values["r_out"]), *diffs]
        )
    spread = [mean_std(columns[k]) for k in ("m_in", "m_out", "r_in", "r_out")]
    rows.append(["mean ± std", "", *spread[:2], "", *spread[2:], signed(columns["d_in"]), signed(columns["d_out"])])
    lines = markdown_table(header, rows)
    lines += ["", "Per-type Tweebank test F1 (%), mean ± std over the finished seeds (Tweebank MISC scored as mscmt's OTHER):", ""]
    per_type = []
    for system, found, misc in (("mscmt", m[names[1]], "OTHER"), ("recipe", r[names[1]], "MISC")):
        done = [s for _, s in found if s is not None]
        per_type.append(
            [
                f"{system} ({len(done)} seeds)",
                *type_f1_cells(done, ("PER", "LOC", "ORG", misc)),
                *average_cells(done, "micro", ("precision", "recall")),
            ]
        )
    return lines + markdown_table(["system", "PER", "LOC", "ORG", "MISC / OTHER", "micro P", "micro R"], per_type)


def signed(deltas: list[float]) -> str:
    """Mean difference in points and how many pairs favour mscmt."""
    if not deltas:
        return "—"
    pairs = PairedDeltas({i: 100 * d for i, d in enumerate(deltas)})
    return f"{pairs.mean()} ({pairs.better} of {len(deltas)} pairs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="directory holding the run directories")
    args = parser.parse_args()
    wnut = [runs(args.runs, "wnut", system, SEEDS["wnut", system], "test_scores.json") for system in ("mscmt", "recipe")]
    print("## WNUT-17 test, entity micro (seqeval default mode), %\n")
    print("\n".join(paired(*wnut)))
    print("\n## TWITTER-2017 models on Tweebank-NER v1.0 test, entity micro F1, %\n")
    print("\n".join(out_of_domain(args.runs)))


if __name__ == "__main__":
    main()
