"""The codebase's shape: every module imports on its own, and no two modules import each other (directly or not)."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("mscmt_cli", "plugins")


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    out = {}
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Edges to every project module a module imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_the_projects_modules():
    assert cycles(import_graph(project_modules())) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(m for m in project_modules() if not m.endswith("__main__")))
def test_every_module_imports_on_its_own(module):
    """Imported first, in a clean state of the project's modules (as ``python -c 'import X'`` would)."""
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ROOTS}
    for key in saved:
        del sys.modules[key]
    try:
        importlib.import_module(module)
    finally:
        for key in [k for k in sys.modules if k.split(".")[0] in ROOTS]:
            del sys.modules[key]
        sys.modules.update(saved)


# --- the floors (issue 25) --------------------------------------------------------------------------------------------

#: The project's floors, lowest first. A module imports modules of its own floor and of the floors below, never one
#: above (anywhere: top level, in functions, under TYPE_CHECKING). A module belongs to the entry naming the longest
#: prefix of its dotted name; the package root ``mscmt_cli`` (its lazy ``Tagger``) is the top.
FLOORS: tuple[tuple[str, ...], ...] = (
    # foundations: errors, settings, registry, paths, JSON, console
    (
        "mscmt_cli.errors",
        "mscmt_cli.version",
        "mscmt_cli.labels",
        "mscmt_cli.strict_json",
        "mscmt_cli.paths",
        "mscmt_cli.console",
        "mscmt_cli.registry",
        "mscmt_cli.settings",
    ),
    ("mscmt_cli.model",),  # component contracts, their composition, saved model directories, BIO table
    # the built-in components; corpora, images, captions, and the pure tweet layer the data readers share with
    # tagging (data.doc, data.entities, data.tweet_tokenize: a tweet's tokens and offsets, entity spans, the tokenizer)
    ("plugins", "mscmt_cli.data"),
    ("mscmt_cli.features",),  # image features and their cache
    ("mscmt_cli.backends",),  # what runs a model: device, batches, the Backend protocol, the torch backend, numpy decoding
    ("mscmt_cli.export", "mscmt_cli.captioning", "mscmt_cli.contracts"),  # the ONNX backend; the captioner; contract checks
    ("mscmt_cli.tagging",),  # the Tagger, the one predictor: tag, serve, explain
    ("mscmt_cli.engine",),  # training and evaluation, which tag through the Tagger
    ("mscmt_cli.studies",),
    ("mscmt_cli.cluster",),
    ("mscmt_cli.cli", "mscmt_cli.__main__", "mscmt_cli"),
)


def floor_of(module: str, floors: tuple[tuple[str, ...], ...] = FLOORS) -> int:
    """The floor of a dotted module name: that of the entry naming its longest prefix (KeyError for none)."""
    best = max(
        ((len(entry), k) for k, entries in enumerate(floors) for entry in entries if module == entry or module.startswith(entry + ".")),
        default=None,
    )
    if best is None:
        raise KeyError(module)
    return best[1]


def up_imports(graph: dict[str, set[str]], floors: tuple[tuple[str, ...], ...] = FLOORS) -> set[tuple[str, str]]:
    """Every import ``(importer, imported)`` from a lower floor to a higher one."""
    return {(a, b) for a, targets in graph.items() for b in targets if floor_of(a, floors) < floor_of(b, floors)}


def test_every_module_has_a_floor_of_its_own():
    """A new package is placed on a floor when it is added (the root entry is for ``mscmt_cli/__init__.py`` only)."""
    for module in project_modules():
        if module != "mscmt_cli":
            assert any(module == e or module.startswith(e + ".") for floor in FLOORS for e in floor if e != "mscmt_cli"), module


def test_nothing_imports_up_a_floor():
    found = up_imports(import_graph(project_modules()))
    assert found == set()


def test_the_never_rules_the_floors_give():
    """Spelled out: tagging never imports the engine, the backends and export never import tagging or the engine."""
    graph = import_graph(project_modules())

    def imports(low: str, high: str) -> set[tuple[str, str]]:
        return {(a, b) for a, bs in graph.items() if a.startswith(low) for b in bs if b.startswith(high)}

    assert imports("mscmt_cli.tagging", "mscmt_cli.engine") == set()
    for low in ("mscmt_cli.backends", "mscmt_cli.export"):
        for high in ("mscmt_cli.tagging", "mscmt_cli.engine"):
            assert imports(low, high) == set(), (low, high)


def test_the_floor_checker_finds_an_import_up_a_floor():
    floors = (("a.low",), ("a.mid",), ("a.high", "a"))
    graph = {"a.low.x": {"a.mid.y"}, "a.mid.y": {"a.low.z"}, "a.high": {"a.mid.y"}, "a.low.z": set(), "a": {"a.high"}}
    assert up_imports(graph, floors) == {("a.low.x", "a.mid.y")}
    assert floor_of("a.mid.y.deep", floors) == 1 and floor_of("a", floors) == 2


def test_the_onnx_tagging_road_imports_no_torch():
    """What tagging with ``--backend onnx`` imports (the CLI, the Tagger and its processor, the export's served model and
    loader, the backend protocol, numpy batch and decoding, the graph's feeds, the ONNX Runtime backend, the feature
    store and the exported image encoder with its caption tokenizer side, its pixel recipe and resampler) imports no
    torch; ``tests/test_onnx_without_torch.py`` tags through them without it."""
    modules = (
        "mscmt_cli.backends.base, mscmt_cli.backends.decoding, mscmt_cli.backends.arrays, mscmt_cli.export.runtime, "
        "mscmt_cli.export.layout, mscmt_cli.export.loading, mscmt_cli.export.served, mscmt_cli.tagging.tagger, "
        "mscmt_cli.tagging.jobs, mscmt_cli.cli.main, plugins.bertweet_words, mscmt_cli.features, mscmt_cli.model.image_side, "
        "mscmt_cli.model.caption_inputs, mscmt_cli.export.image_graph, mscmt_cli.model.pixel_inputs, mscmt_cli.model.resample"
    )
    code = f"import sys; import {modules}; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# --- one prediction function, one predictor, one encode path ----------------------------------------------------------


def _functions(path: Path) -> dict[str, ast.AST]:
    """Every function of a module by qualified name (``Class.method``, ``outer.inner``)."""
    found: dict[str, ast.AST] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found[name] = child
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def _calls(node: ast.AST, attr: str, owner: str | None = None, by_name: bool = True) -> list[ast.Call]:
    """Calls ``<x>.attr(...)`` (with ``owner``: ``<x>.owner.attr(...)``) inside ``node``; without ``owner`` (and with
    ``by_name``) also calls of a function imported by that name, ``attr(...)``."""
    out = []
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Attribute) and call.func.attr == attr:
            value = call.func.value
            if owner is None or (isinstance(value, ast.Attribute) and value.attr == owner):
                out.append(call)
        elif by_name and owner is None and isinstance(call.func, ast.Name) and call.func.id == attr:
            out.append(call)
    return out


SCANNED = ("mscmt_cli", "plugins", "benchmarks")


def _outside_functions(tree: ast.Module) -> ast.Module:
    """The module with every function and method body left out: what runs when it is imported or run as a script."""

    class Strip(ast.NodeTransformer):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            return None

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
            return None

    return Strip().visit(tree)


def _where_called(
    attr: str, owner: str | None = None, roots: tuple[str, ...] = SCANNED, repo: Path = REPO, by_name: bool = True
) -> set[str]:
    """``module:function`` of every function in ``roots`` calling ``.attr(...)`` or ``attr(...)`` (innermost function),
    ``module:<module>`` for a call at a module's top level (a script's body, a module-level constant)."""
    places = set()
    for path in sorted(p for root in roots for p in (repo / root).rglob("*.py")):
        functions = _functions(path)
        where = path.relative_to(repo).as_posix()
        for name, node in functions.items():
            inner = {n for n in functions if n.startswith(name + ".")}
            own = len(_calls(node, attr, owner, by_name)) - sum(
                len(_calls(functions[n], attr, owner, by_name)) for n in inner if n.count(".") == name.count(".") + 1
            )
            if own > 0:
                places.add(f"{where}:{name}")
        if _calls(_outside_functions(ast.parse(path.read_text(encoding="utf-8"))), attr, owner, by_name):
            places.add(f"{where}:<module>")
    return places


def _defined(name: str, roots: tuple[str, ...] = SCANNED) -> set[str]:
    """``module:function`` of every function or method called ``name`` in ``roots``."""
    return {
        f"{path.relative_to(REPO).as_posix()}:{qual}"
        for path in sorted(p for root in roots for p in (REPO / root).rglob("*.py"))
        for qual in _functions(path)
        if qual.rpartition(".")[2] == name
    }


def test_every_tagging_entry_point_calls_the_one_prediction_function():
    assert _where_called("tag_outcomes", roots=("mscmt_cli",)) == {
        "mscmt_cli/tagging/tagger.py:Tagger.tag_batch",
        "mscmt_cli/tagging/stream.py:tag_window",
        "mscmt_cli/tagging/server.py:create_app.run",
    }
    # each on what the one processor made of its records
    assert _where_called("process", owner="processor", roots=("mscmt_cli",)) == {
        "mscmt_cli/tagging/tagger.py:Tagger.tag_batch",
        "mscmt_cli/tagging/stream.py:tag_window",
        "mscmt_cli/tagging/server.py:create_app.run",
        "mscmt_cli/engine/data.py:TweetReader.process",  # training, cache build, evaluation
    }


def test_only_the_processor_calls_the_token_store_the_caption_source_and_the_captioner():
    """Every caption and image lookup of every road goes through the processor (issue 25): it alone reads the
    token store, the caption source and the captioner; its own tokens are asked for by the Tagger and the reader."""
    processor = "mscmt_cli/tagging/processor.py"
    assert _where_called("features", owner="tokens", roots=("mscmt_cli",)) == {f"{processor}:Processor.features"}
    assert _where_called("read", owner="captions", roots=("mscmt_cli",)) == {f"{processor}:Processor._read_caption"}
    assert _where_called("captions", owner="captioner", roots=("mscmt_cli",)) == {f"{processor}:Processor._captions"}
    assert _where_called("resolve", owner="resolver", roots=("mscmt_cli",)) == {f"{processor}:Processor.image_file"}
    assert _where_called("features", owner="processor", roots=("mscmt_cli",)) == {
        "mscmt_cli/tagging/tagger.py:Tagger.tag_outcomes",
        "mscmt_cli/engine/data.py:TweetReader.features",
    }


def test_the_tagger_is_the_only_predictor():
    """One ``predict`` in the source tree (the Tagger's), called by tagging and by evaluation only (issue 25)."""
    assert _defined("predict") == {"mscmt_cli/tagging/tagger.py:Tagger.predict"}
    assert _where_called("predict", roots=("mscmt_cli", "plugins")) == {
        "mscmt_cli/tagging/tagger.py:Tagger.tag_outcomes",  # mscmt tag, serve, explain, the Tagger API
        "mscmt_cli/engine/evaluate.py:tag_split",  # validation, test scores, mscmt evaluate, backend_f1, count_invalid
    }
    assert _where_called("predict", roots=("benchmarks",)) == {"benchmarks/bench_gpu.py:measure_inference"}  # times it


def test_the_call_finder_sees_calls_by_name_at_module_level_in_functions_and_methods(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "script.py").write_text(
        "from x import predict\n"
        "import x\n"
        "scores = predict(model, data)\n"
        "if __name__ == '__main__':\n"
        "    x.predict(model)\n"
        "def run():\n"
        "    def inner():\n"
        "        return predict(1)\n"
        "    return inner\n"
        "class Job:\n"
        "    def go(self):\n"
        "        return self.tagger.predict(2)\n"
        "def quiet():\n"
        "    return predicted(3)\n",
        encoding="utf-8",
    )
    found = _where_called("predict", roots=("pkg",), repo=tmp_path)
    assert found == {"pkg/script.py:<module>", "pkg/script.py:run.inner", "pkg/script.py:Job.go"}


def test_one_encode_path_writes_the_feature_cache():
    encode = "mscmt_cli/features.py:CachedEncoder.encode"
    assert _where_called("put", owner="cache", roots=("mscmt_cli",)) == {encode}
    assert _where_called("encode_checked", roots=("mscmt_cli",)) == {encode}


def test_one_meaning_per_name_of_the_input_road():
    """Issue 25, item 6: one ``Feature*`` class (the cache); the near-synonyms of the old roads are gone."""
    classes = {
        node.name
        for root in ("mscmt_cli", "plugins")
        for path in (REPO / root).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
    }
    assert {c for c in classes if c.startswith("Feature")} == {"FeatureCache"}
    gone = {"ImageFeatures", "FeatureStore", "FeatureEncoder", "OnFeatureEncoder", "CaptionStore", "CaptionReader", "ImageStore", "BadLine"}
    assert classes & gone == set()
    for name in ("read_inputs", "input_for", "inputs_for", "image_ref", "context_ref", "image_resolver", "load_caption"):
        assert _defined(name, roots=("mscmt_cli", "plugins")) == set(), name
