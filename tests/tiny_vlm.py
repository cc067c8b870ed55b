"""Tiny random checkpoints of the VLM baselines (BLIP-2, timm), built offline for tests.

* :func:`make_tiny_blip2` - a ``Blip2ForImageTextRetrieval`` (ViT + Q-Former, 32x32 images,
  4 query tokens, 16-d projections) with the tiny BERT WordPiece tokenizer and a
  ``BlipImageProcessor``; ``Blip2TextModelWithProjection`` and
  ``Blip2VisionModelWithProjection`` both load from it, as from ``Salesforce/blip2-itm-vit-g``.
* :func:`make_tiny_blip_captioner` - a ``BlipForConditionalGeneration`` captioner (ViT + BERT
  decoder, 32x32 images) with a ``BlipProcessor``; ``AutoModelForImageTextToText`` and
  ``AutoProcessor`` load it, as they load ``Salesforce/blip2-opt-2.7b``.
* :func:`make_timm_weights` - a timm model's random weights as one safetensors file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from tests.tiny_models import HIDDEN_SIZE, LAYERS, make_tiny_bert

BLIP2_IMAGE_SIZE = 32
BLIP2_QUERY_TOKENS = 4
BLIP2_PROJECTION = 16
BLIP2_MAX_POSITIONS = 64


def make_tiny_blip2(path: Path) -> Path:
    """Save a tiny BLIP-2 image-text-retrieval checkpoint, tokenizer and image processor into ``path``."""
    from transformers import AutoTokenizer, Blip2Config, Blip2ForImageTextRetrieval, BlipImageProcessor

    path = Path(path)
    make_tiny_bert(path / "_bert")
    tokenizer = AutoTokenizer.from_pretrained(path / "_bert")
    tokenizer.model_max_length = BLIP2_MAX_POSITIONS
    shutil.rmtree(path / "_bert")
    config = Blip2Config(
        vision_config=dict(**LAYERS, image_size=BLIP2_IMAGE_SIZE, patch_size=8),
        qformer_config=dict(
            **LAYERS,
            vocab_size=len(tokenizer),
            max_position_embeddings=BLIP2_MAX_POSITIONS,
            encoder_hidden_size=HIDDEN_SIZE,
            cross_attention_frequency=1,
            pad_token_id=tokenizer.pad_token_id,
            use_qformer_text_input=True,
        ),  # as in blip2-itm-vit-g: the Q-Former's text layers
        num_query_tokens=BLIP2_QUERY_TOKENS,
        image_text_hidden_size=BLIP2_PROJECTION,
    )
    torch.manual_seed(0)
    Blip2ForImageTextRetrieval(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    BlipImageProcessor(size={"height": BLIP2_IMAGE_SIZE, "width": BLIP2_IMAGE_SIZE}).save_pretrained(path)
    return path


#: Weights drawn wider than BERT's 0.02, so that different images get different greedy captions.
BLIP_INIT_RANGE = 0.2


def make_tiny_blip_captioner(path: Path) -> Path:
    """Save a tiny random BLIP image captioner and its processor (tiny BERT tokenizer) into ``path``."""
    from transformers import AutoTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    path = Path(path)
    make_tiny_bert(path / "_bert")
    tokenizer = AutoTokenizer.from_pretrained(path / "_bert")
    shutil.rmtree(path / "_bert")
    layers = dict(**LAYERS, initializer_range=BLIP_INIT_RANGE)
    config = BlipConfig(
        text_config=dict(
            **layers,
            vocab_size=len(tokenizer),
            max_position_embeddings=BLIP2_MAX_POSITIONS,
            encoder_hidden_size=HIDDEN_SIZE,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=dict(**layers, image_size=BLIP2_IMAGE_SIZE, patch_size=8),
        projection_dim=BLIP2_PROJECTION,
        initializer_range=BLIP_INIT_RANGE,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).eval().save_pretrained(path)
    image_processor = BlipImageProcessor(size={"height": BLIP2_IMAGE_SIZE, "width": BLIP2_IMAGE_SIZE})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def make_timm_weights(path: Path, model_name: str = "test_resnet") -> Path:
    """Random (seeded) weights of ``model_name``, classifier included, as ``path`` (safetensors)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(model_name, pretrained=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path
