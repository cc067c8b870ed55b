"""The training loop: AdamW with two learning rates, early stopping, checkpoints.

``train(settings)`` builds the model from registered components, trains it,
keeps the best epoch (validation weighted F1) as a self-describing model
directory in ``<out>/model``, and scores it on the test split. With
``resume=True`` it continues a run directory from its last completed epoch,
and ends with exactly the weights and metrics an uninterrupted run has.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR

from mscmt_cli.backends.device import autocast, resolve_device
from mscmt_cli.console import make_console, progress
from mscmt_cli.data.sampler import balanced_weights
from mscmt_cli.engine.batching import EncodedDataset, epoch_indices, iter_batches, length_batches
from mscmt_cli.engine.checkpoint import CHECKPOINT_DIR, check_resumable, deferred_sigint, load_checkpoint, save_checkpoint
from mscmt_cli.engine.data import (
    CorpusData,
    DataFiles,
    TweetReader,
    check_context_inputs,
    check_image_inputs,
    data_labels,
    imageless_note,
    training_processor,
)
from mscmt_cli.engine.distributed import DistContext, device_for, init_distributed
from mscmt_cli.engine.evaluate import tag_split
from mscmt_cli.engine.finish import TrainOutcome, finish_run
from mscmt_cli.engine.metrics import score
from mscmt_cli.engine.rundir import RUN_FILE, RunInfo, append_metrics, check_fresh_run_dir, rewrite_metrics
from mscmt_cli.errors import MscmtError, TrainingInterrupted
from mscmt_cli.features import check_cache_dir
from mscmt_cli.labels import LABELS, types_of
from mscmt_cli.model.build import Assembled, Components, ModelSpec, build_model, new_spec, save_model, weights_mismatch
from mscmt_cli.paths import listing, make_dir
from mscmt_cli.registry import Registry
from mscmt_cli.settings import Settings, identity_fields
from mscmt_cli.tagging.tagger import Tagger

POOL_BATCHES = 50  # batches per length-sorted pool
STATE_KEYS = ("optimizer", "scheduler", "torch_rng", "python_rng", "progress")  # what checkpoint() writes into state.pt


@dataclass
class Progress:
    """Early-stopping counters and the metrics so far (stored in checkpoints)."""

    epoch: int = 0
    best_f1: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def record(self, row: dict[str, Any], monitor: str) -> bool:
        """Count epoch ``row`` in; True when its validation ``monitor`` F1 beats every earlier epoch's."""
        watched = row[f"valid_{monitor}_f1"]
        improved = bool(watched > self.best_f1)
        self.best_f1 = max(self.best_f1, watched)
        self.best_epoch = row["epoch"] if improved else self.best_epoch
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        self.epoch = row["epoch"]
        self.metrics.append(row)
        return improved


SEED_SPACE = 2**64  # torch takes seeds in [-2**63, 2**64) and wraps negatives mod 2**64; Python's random takes any int


def torch_seed(seed: int) -> int:
    """``seed`` as a torch seed: unchanged in [0, 2**64), wrapped mod 2**64 (as torch wraps negatives) otherwise.

    So every integer ``--seed`` works, and seeds torch already accepted give
    exactly the generators they gave before.
    """
    return seed % SEED_SPACE


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch``'s batch generator."""
    return torch_seed(seed * 1000 + epoch)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(torch_seed(seed))


class NonFiniteStep(MscmtError):
    """A training step produced a loss or gradient norm that is NaN or infinite (the step was not taken)."""

    def __init__(self, step: int, what: str, value: float) -> None:
        super().__init__(f"step {step}: the {what} is {value}")
        self.step, self.what, self.value = step, what, value


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters holding a NaN or an infinity (one device sync for all of them)."""
    named = list(model.named_parameters())
    if not named:
        return []
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def linear_schedule(optimizer: AdamW, total_steps: int, warmup: float) -> LambdaLR:
    """Linear warm-up over ``warmup * total`` steps, then linear decay to 0."""
    warm = max(1, int(total_steps * warmup)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return LambdaLR(optimizer, factor)


def train_epoch(
    step_model: torch.nn.Module,
    pad_id: int,
    dataset: EncodedDataset,
    batches: list[list[int]],
    optimizer: AdamW,
    scheduler: LambdaLR,
    max_grad_norm: float,
    device: torch.device,
    on_step=None,
) -> float:
    """One pass over ``batches`` with ``step_model`` (the model or its DDP wrapper); mean loss.

    Raises :class:`NonFiniteStep` before the optimiser step when the loss or
    the gradient norm is not finite, so the weights never take a NaN step.
    Under DDP the gradients are averaged first, so every rank stops together.
    """
    step_model.train()
    total, count = 0.0, 0
    for step, (_, batch) in enumerate(iter_batches(dataset, batches, pad_id), 1):
        with autocast(device):
            loss = step_model(batch.to(device)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(step_model.parameters(), max_grad_norm))
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteStep(step, "loss", value)
        if not math.isfinite(norm):
            raise NonFiniteStep(step, "gradient norm", norm)
        optimizer.step()
        scheduler.step()
        total, count = total + value, count + 1
        if on_step is not None:
            on_step(total / count)
    return total / max(1, count)


class Run:
    """One training run: assembled model, encoded data, optimiser, state."""

    def __init__(self, settings: Settings, registry: Registry, console: Console) -> None:
        if settings.out is None:
            raise MscmtError("no run directory: pass --out DIR")
        self.settings, self.console = settings, console
        self.run_dir = Path(settings.out)
        spec = model_spec(settings, registry)  # components, pairing and parameters checked before anything loads
        check_context_inputs(spec.context, settings.captions)
        self.dist = init_distributed(settings.device)
        if not self.dist.is_main:
            self.console = make_console(quiet=True)
        self.device = device_for(self.dist, resolve_device(settings.device))
        seed_everything(settings.seed)
        files = DataFiles.of(settings)
        self.data = CorpusData.from_files(files)
        self.labels, unseen = data_labels(files, settings.labels, self.data)
        spec = model_spec(settings, registry, self.labels)
        check_image_inputs(settings.image, registry.resolve("image", settings.image)[0].input_kind, settings.captions, settings.images_dir)
        self.assembled: Assembled = build_model(spec, registry, settings.model_paths)
        processor = training_processor(
            self.assembled.image,
            spec.context,
            images_dir=settings.images_dir,
            captions=settings.captions,
            policy=settings.missing_images,
            cache_dir=None if settings.no_cache else settings.cache_dir,
        )
        #: The corpus through the one processor: captions, images, image tokens.
        self.reader = TweetReader(processor)
        imageless = imageless_note(self.data.all_tweets(), self.assembled.image.input_kind, settings.missing_images)
        self.reader.process(self.data.all_tweets())  # a missing caption under --missing-images error stops here
        # the data notes only once every up-front check has passed: a refused run prints its one error line alone
        for note in [*self.data.notes(), *(n for n in (unseen, imageless) if n)]:
            self.console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)  # one line each, a path as it is
        self._precompute()
        text = self.assembled.model.text
        self.train_set, self.valid_set = (self.reader.encode(s, text, self.labels) for s in (self.data.train, self.data.valid))
        self.model = self.assembled.model.to(self.device)
        self.step_model = wrap_ddp(self.model, self.dist, self.device)
        self.weights = balanced_weights([t.tags for t in self.data.train.tweets]) if settings.balance else None
        steps = settings.epochs * math.ceil(len(self.train_set) / settings.batch_size)
        # fused: one kernel for all tensors (on the CPU ~8x faster than the per-tensor loop)
        self.optimizer = AdamW(self.model.parameter_groups(settings.lr, settings.head_lr, settings.weight_decay), fused=True)
        self.scheduler = linear_schedule(self.optimizer, steps, settings.warmup)
        self.state = Progress()

    def _precompute(self) -> None:
        """Image features: rank 0 fills the cache first, the other ranks then read it."""
        if not self.dist.is_main:
            self.dist.barrier()
        console = self.console if self.dist.is_main else make_console(quiet=True)
        self.reader.precompute(self.data.all_tweets(), console, self.settings.progress_every)
        if self.dist.is_main:
            self.dist.barrier()

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``: a pure function of seed and epoch (resume-safe)."""
        g = torch.Generator().manual_seed(epoch_seed(self.settings.seed, epoch))
        indices = epoch_indices(len(self.train_set), self.weights, g)
        batches = length_batches(indices, self.train_set.lengths, self.settings.batch_size, POOL_BATCHES, g)
        return [self.dist.shard(b) for b in self.dist.usable(batches)]

    def resume(self) -> None:
        """Restore weights, optimiser, scheduler, RNGs and counters of the last finished epoch.

        A checkpoint that does not fit the model run.json describes (another
        architecture's, or a state without optimiser) is refused, naming the file.
        """
        weights, state = load_checkpoint(self.run_dir)
        where = self.run_dir / CHECKPOINT_DIR
        mismatch = weights_mismatch(self.model, weights)
        if mismatch:
            raise MscmtError(
                f"{where / 'model.safetensors'}: the checkpoint's weights do not fit the model in "
                f"{self.run_dir / RUN_FILE} ({mismatch}); was it copied from another run?"
            )
        missing = [k for k in STATE_KEYS if k not in state] if isinstance(state, dict) else list(STATE_KEYS)
        if missing:
            raise MscmtError(
                f"{where / 'state.pt'}: not a whole training state (no {', '.join(missing)}); "
                f"it was not written by mscmt train, so this run cannot be resumed"
            )
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            random.setstate(_to_tuple(state["python_rng"]))
            if torch.cuda.is_available() and state.get("cuda_rng") is not None:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self.state = Progress(**state["progress"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise MscmtError(
                f"{where / 'state.pt'}: the training state does not fit this run "
                f"({type(err).__name__}: {first}); was it copied from another run?"
            ) from None
        if self.dist.is_main:
            rewrite_metrics(self.run_dir, self.state.metrics)

    def checkpoint(self) -> None:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": list(_to_list(random.getstate())),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "progress": asdict(self.state),
        }
        save_checkpoint(self.run_dir, self.model, state)

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        s = self.settings
        batches = self.epoch_batches(epoch)
        with progress(self.console, s.progress_every, enabled=self.dist.is_main) as bar:
            task = bar.add_task(f"epoch {epoch}/{s.epochs}", total=len(batches), unit="steps", info="")
            try:
                loss = train_epoch(
                    self.step_model,
                    self.model.text.pad_id,
                    self.train_set,
                    batches,
                    self.optimizer,
                    self.scheduler,
                    s.max_grad_norm,
                    self.device,
                    lambda mean: bar.update(task, advance=1, info=f"loss {mean:.4f}"),
                )
            except NonFiniteStep as err:
                raise self.diverged(f"epoch {epoch}, {err}") from None
        bad = non_finite_parameters(self.model)
        if bad:
            raise self.diverged(f"epoch {epoch}: {len(bad)} weight tensor(s) hold NaN or infinity ({listing(bad, 2)})")
        loss = sum(self.dist.gather(loss)) / self.dist.world
        valid = self.validate()
        row = {
            "epoch": epoch,
            "train_loss": loss,
            "valid_micro_f1": valid["micro"]["f1"],
            "valid_weighted_f1": valid["weighted"]["f1"],
            "valid_micro_precision": valid["micro"]["precision"],
            "valid_micro_recall": valid["micro"]["recall"],
            "lr": self.scheduler.get_last_lr()[0],
        }
        odd = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if odd:
            raise self.diverged(f"epoch {epoch}: {', '.join(f'{k} is {row[k]}' for k in odd)}")
        return row

    def diverged(self, where: str) -> MscmtError:
        """The one-line error for a non-finite loss, gradient, weight or metric: nothing of that epoch is kept."""
        s = self.settings
        if self.state.epoch:
            kept = f"{self.run_dir} keeps epoch {self.state.epoch} in its checkpoint and the best epoch ({self.state.best_epoch}) in model/"
            again = "train again into another --out"
        else:
            kept, again = "no epoch was saved", "train again"
        return MscmtError(
            f"training diverged in {where}; {kept}. Likely too high a learning rate or weight decay "
            f"(--lr {s.lr:g}, --head-lr {s.head_lr:g}, --weight-decay {s.weight_decay:g}): lower them and {again}"
        )

    def validate(self) -> dict:
        """Validation scores: the valid split tagged by :meth:`tagger`, then scored; under DDP each rank tags a shard
        and the shards are gathered."""
        mine = list(range(self.dist.rank, len(self.valid_set), self.dist.world))
        tweets = self.data.valid.tweets
        tags = tag_split(self.tagger(), [tweets[i] for i in mine], EncodedDataset([self.valid_set[i] for i in mine]))
        merged: dict[int, list[str]] = {}
        for indices, part in self.dist.gather((mine, tags)):
            merged.update(zip(indices, part))
        return score([t.tags for t in tweets], [merged[k] for k in range(len(self.valid_set))], types_of(self.labels))

    def tagger(self) -> Tagger:
        """The model in training as a :class:`Tagger` (in eval mode, on the run's device), batching as ``mscmt evaluate``."""
        return Tagger(self.assembled, self.device, batch_size=self.settings.eval_batch_size, max_batch_subwords=None)

    def fit(self) -> None:
        s = self.settings
        while self.state.epoch < s.epochs and self.state.bad_epochs < s.patience:
            epoch = self.state.epoch + 1
            row = self.run_epoch(epoch)
            improved = self.state.record(row, s.monitor)
            if self.dist.is_main:
                with deferred_sigint():
                    if improved:
                        save_model(self.run_dir / "model", self.model, self.assembled.spec)
                    self.checkpoint()
                    append_metrics(self.run_dir, row)
            self.dist.barrier()
            self.console.print(
                f"epoch {epoch}: loss {row['train_loss']:.4f}  valid micro F1 {100 * row['valid_micro_f1']:.2f}  weighted F1 {100 * row['valid_weighted_f1']:.2f}"
                + ("  (best)" if improved else "")
            )
        if self.state.epoch < s.epochs and self.state.bad_epochs >= s.patience:
            self.console.print(early_stop_line(self.state, s), markup=False, highlight=False, soft_wrap=True)


def early_stop_line(state: Progress, settings: Settings) -> str:
    """``stopped early after epoch 5 of 20: ...``: why training ended before ``--epochs``, and which epoch is kept."""
    return (
        f"stopped early after epoch {state.epoch} of {settings.epochs}: no gain in validation {settings.monitor} F1 for "
        f"{state.bad_epochs} epoch(s) (--patience {settings.patience}); best epoch {state.best_epoch} "
        f"({settings.monitor} F1 {100 * state.best_f1:.2f}) is the saved model"
    )


def model_spec(settings: Settings, registry: Registry, labels: Sequence[str] = LABELS) -> ModelSpec:
    """The spec of the model ``settings`` describe over ``labels`` (checked; nothing loaded), with the training settings recorded.

    Before the data is read the bundled label set stands in, so components and parameters are checked first.
    """
    components = Components(text=settings.text, image=settings.image, fusion=settings.fusion, decoder=settings.decoder)
    spec = new_spec(registry, components, labels, settings.model_paths, settings.params, settings.dropout, settings.context)
    return spec.model_copy(update={"training": settings.model_dump(mode="json", include=set(identity_fields()))})


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """The DDP wrapper used for training steps under torchrun, else the model itself."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # Encoders carry parts NER never uses (e.g. BERT's pooler), hence find_unused_parameters.
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def _to_list(state: Any) -> Any:
    return [_to_list(x) for x in state] if isinstance(state, tuple) else state


def _to_tuple(state: Any) -> Any:
    return tuple(_to_tuple(x) for x in state) if isinstance(state, list) else state


def train(settings: Settings, registry: Registry | None = None, console: Console | None = None, resume: bool = False) -> TrainOutcome:
    """Train (or resume) a run and score its best epoch on the test split."""
    console = console or make_console()
    registry = registry or Registry.from_entry_points()
    # before any model or data loads: never train over a run or a folder that is not ours
    if resume:
        check_resumable(settings.out)
    else:
        check_fresh_run_dir(settings.out)
    if not settings.no_cache:
        check_cache_dir(settings.cache_dir)
    run = Run(settings, registry, console)
    if resume:
        run.resume()
        run.console.print(f"resuming {run.run_dir} after epoch {run.state.epoch}")
    elif run.dist.is_main:
        make_dir(run.run_dir, "--out")
        RunInfo.create(settings, run.data).write(run.run_dir)
        rewrite_metrics(run.run_dir, [])
    try:
        run.fit()
    except KeyboardInterrupt:
        raise TrainingInterrupted(run.state.epoch, run.run_dir) from None
    return finish_run(run)
