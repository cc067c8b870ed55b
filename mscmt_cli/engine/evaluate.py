"""Prediction over an encoded dataset, and scoring against gold tags."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch

from mscmt_cli.engine.batching import EncodedDataset, eval_batches, iter_batches
from mscmt_cli.model.mner import MNERModel


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from mscmt_cli.errors import MscmtError

        raise MscmtError("--device cuda: no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.inference_mode()
def predict(model: MNERModel, dataset: EncodedDataset, batch_size: int, device: torch.device) -> list[list[int]]:
    """Best label ids per tweet, in the dataset's order."""
    model.eval()
    out: list[list[int] | None] = [None] * len(dataset)
    for idx, batch in iter_batches(dataset, eval_batches(dataset.lengths, batch_size), model.text.pad_id):
        with autocast(device):
            output = model(batch.to(device))
        for i, path in zip(idx, model.decode(output)):
            out[i] = path
    return out  # type: ignore[return-value]


def evaluate(
    model: MNERModel, dataset: EncodedDataset, gold: Sequence[Sequence[str]], labels: Sequence[str], batch_size: int, device: torch.device
) -> dict:
    """seqeval scores of the model's predictions on ``dataset`` (see :func:`score`)."""
    from mscmt_cli.engine.metrics import score  # seqeval pulls in scikit-learn; tagging never needs it
    from mscmt_cli.labels import types_of

    predicted = [[labels[i] for i in path] for path in predict(model, dataset, batch_size, device)]
    return score(gold, predicted, types_of(labels))
