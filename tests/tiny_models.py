"""Builders of tiny, randomly initialised Hugging Face models for the test suite.

Every builder writes a complete, self-contained checkpoint (config, weights and
tokenizer / image processor) into the directory the caller passes, so that the
code under test can load it with the ordinary ``from_pretrained(path)`` calls.
Nothing is ever fetched from a model hub.

All builders are deterministic (``torch.manual_seed(0)``) and fast (well under
two seconds each); the tokenizer vocabularies are learned once per process with
a tiny BPE learner and cached.

Builders:

* :func:`make_tiny_bertweet`  - ``RobertaModel`` + ``BertweetTokenizer`` (fairseq ``vocab.txt`` + ``bpe.codes``)
* :func:`make_tiny_bert`      - ``BertModel`` + ``BertTokenizerFast`` (WordPiece, uncased)
* :func:`make_tiny_clip_vision` - ``CLIPVisionModelWithProjection`` + ``CLIPImageProcessor``
* :func:`make_tiny_clip`      - full ``CLIPModel`` + ``CLIPTokenizer`` + ``CLIPImageProcessor``
* :func:`make_images`         - small deterministic RGB JPEGs named ``<id>.jpg``
"""

from __future__ import annotations

import hashlib
import itertools
import json
import string
from collections import Counter
from functools import lru_cache
from pathlib import Path

import torch

# ---------------------------------------------------------------------------
# tiny sizes shared by the builders
# ---------------------------------------------------------------------------
HIDDEN_SIZE = 32
NUM_LAYERS = 2
NUM_HEADS = 4
INTERMEDIATE_SIZE = 37
BERTWEET_MAX_POSITIONS = 130  # 128 sub-words + 2 (RoBERTa offsets positions by pad_token_id + 1)
BERT_MAX_POSITIONS = 64
CLIP_IMAGE_SIZE = 32
CLIP_PATCH_SIZE = 8
CLIP_PROJECTION_DIM = 24
CLIP_TEXT_MAX_POSITIONS = 77
#: The transformer sizes of every tiny encoder (text, vision, Q-Former): ``Config(**LAYERS, ...)``.
LAYERS = dict(hidden_size=HIDDEN_SIZE, intermediate_size=INTERMEDIATE_SIZE, num_hidden_layers=NUM_LAYERS, num_attention_heads=NUM_HEADS)

# ---------------------------------------------------------------------------
# word lists used to learn the tiny BPE / WordPiece vocabularies
# ---------------------------------------------------------------------------
_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

_COMMON_WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "but",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "with",
    "from",
    "by",
    "about",
    "as",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "it",
    "its",
    "this",
    "that",
    "these",
    "those",
    "i",
    "you",
    "he",
    "she",
    "we",
    "they",
    "me",
    "him",
    "her",
    "us",
    "them",
    "my",
    "your",
    "his",
    "our",
    "their",
    "rt",
    "new",
    "day",
    "today",
    "tonight",
    "tomorrow",
    "yesterday",
    "week",
    "weekend",
    "year",
    "time",
    "now",
    "just",
    "so",
    "very",
    "really",
    "love",
    "like",
    "good",
    "great",
    "best",
    "happy",
    "sad",
    "big",
    "little",
    "live",
    "game",
    "show",
    "news",
    "video",
    "photo",
    "pics",
    "can't",
    "don't",
    "won't",
    "it's",
    "i'm",
    "that's",
    "not",
    "no",
    "yes",
    "all",
    "more",
    "out",
    "up",
    "down",
    "get",
    "got",
    "go",
    "going",
    "gone",
    "see",
    "seen",
    "watch",
    "watching",
    "visit",
    "visits",
    "visited",
    "meet",
    "meets",
    "met",
    "win",
    "wins",
    "won",
    "lose",
    "lost",
    "play",
    "plays",
    "says",
    "said",
    "say",
    "thank",
    "thanks",
    "please",
    "lol",
    "omg",
    "wow",
    "amazing",
    "awesome",
    "cool",
    "nice",
    "fun",
    "team",
    "city",
    "world",
    "people",
    "man",
    "woman",
    "men",
    "women",
    "president",
    "new",
    "york",
    "north",
    "south",
    "east",
    "west",
    "river",
    "park",
    "street",
    "just",
    "what",
    "when",
    "where",
    "who",
    "why",
    "how",
    "will",
    "would",
    "should",
    "could",
    "one",
    "two",
    "three",
    "first",
    "last",
]

_PROPER_WORDS = [
    "Obama",
    "Paris",
    "London",
    "Jordan",
    "Washington",
    "Apple",
    "Amazon",
    "Phoenix",
    "Victoria",
    "Chelsea",
    "Madison",
    "Georgia",
    "Austin",
    "Florence",
    "Sydney",
    "Boston",
    "Chicago",
    "Texas",
    "California",
    "America",
    "England",
    "France",
    "Google",
    "Microsoft",
    "Twitter",
    "Facebook",
    "Nike",
    "Adidas",
    "NBA",
    "NFL",
    "BBC",
    "CNN",
    "Trump",
    "Clinton",
    "Taylor",
    "Swift",
    "Justin",
    "Bieber",
    "Michael",
    "Lebron",
    "James",
    "John",
    "Mary",
    "David",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Christmas",
    "Super",
    "Bowl",
    "iPhone",
]

_SPECIAL_WORDS = ["@USER", "HTTPURL"]


def _word_counts() -> Counter:
    counts: Counter = Counter()
    for w in _COMMON_WORDS:
        counts[w] += 20
        counts[w.capitalize()] += 3
    for w in _PROPER_WORDS:
        counts[w] += 10
        counts[w.lower()] += 2
    for w in _SPECIAL_WORDS:
        counts[w] += 100
    for c in _PUNCT:
        counts[c] += 30
    for d in string.digits:
        counts[d] += 10
    for c in string.ascii_letters:
        counts[c] += 1
    return counts


def _learn_bpe(words: Counter, alphabet: list[str], eow: str = "</w>") -> tuple[list[tuple[str, str, int]], list[str]]:
    """Minimal subword-nmt style BPE learner.

    Returns the merges (``(left, right, count)`` in rank order) and the list of
    symbols created by those merges (in creation order).  Every word in
    ``words`` ends up as a single symbol, so encoding a training word with the
    learned merges returns the whole word.
    """
    alph = set(alphabet)
    vocab: dict[tuple[str, ...], int] = {}
    for w, c in words.items():
        chars = [ch for ch in w if ch in alph]
        if not chars:
            continue
        sym = tuple(chars[:-1] + [chars[-1] + eow])
        vocab[sym] = vocab.get(sym, 0) + c
    merges: list[tuple[str, str, int]] = []
    new_symbols: list[str] = []
    while True:
        pairs: Counter = Counter()
        for sym, c in vocab.items():
            for a, b in itertools.pairwise(sym):
                pairs[(a, b)] += c
        if not pairs:
            break
        (a, b), cnt = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b, cnt))
        new_symbols.append(a + b)
        new_vocab: dict[tuple[str, ...], int] = {}
        for sym, c in vocab.items():
            out: list[str] = []
            i = 0
            while i < len(sym):
                if i < len(sym) - 1 and sym[i] == a and sym[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            t = tuple(out)
            new_vocab[t] = new_vocab.get(t, 0) + c
        vocab = new_vocab
    return merges, new_symbols


# ---------------------------------------------------------------------------
# BERTweet (fairseq dict + fastBPE codes with "@@" continuation markers)
# ---------------------------------------------------------------------------
_BERTWEET_ALPHABET = list(string.ascii_letters) + list(string.digits) + _PUNCT


@lru_cache(maxsize=1)
def _bertweet_vocab_and_codes() -> tuple[str, str]:
    words = _word_counts()
    merges, new_symbols = _learn_bpe(words, _BERTWEET_ALPHABET)
    entries: list[tuple[str, int]] = []
    seen: set[str] = set()

    def add(tok: str, cnt: int) -> None:
        if tok not in seen:
            seen.add(tok)
            entries.append((tok, cnt))

    char_counts: Counter = Counter()
    for w, c in words.items():
        for ch in w:
            char_counts[ch] += c
    # merged symbols: "xy</w>" is a word-final piece "xy", "xy" a continued piece "xy@@"
    for (_, _, cnt), sym in zip(merges, new_symbols):
        add(sym[: -len("</w>")] if sym.endswith("</w>") else sym + "@@", cnt)
    # every single character, both word-final and continued, so nothing in the
    # alphabet ever maps to <unk>
    for ch in _BERTWEET_ALPHABET:
        add(ch, char_counts.get(ch, 1))
        add(ch + "@@", char_counts.get(ch, 1))
    # fairseq dicts are sorted by count (descending); keep ties in insertion order
    entries.sort(key=lambda e: -e[1])
    vocab_txt = "".join(f"{tok} {cnt}\n" for tok, cnt in entries)
    codes_txt = "".join(f"{a} {b} {cnt}\n" for a, b, cnt in merges)
    return vocab_txt, codes_txt


def make_tiny_bertweet(path: Path) -> Path:
    """Tiny RoBERTa encoder + ``BertweetTokenizer`` saved into ``path``.

    Reload with ``AutoTokenizer.from_pretrained(path)`` (gives a
    ``BertweetTokenizer``) and ``AutoModel.from_pretrained(path)`` (gives a
    ``RobertaModel``).  128 sub-words fit (max_position_embeddings=130).
    """
    from transformers import BertweetTokenizer, RobertaConfig, RobertaModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_txt, codes_txt = _bertweet_vocab_and_codes()
    (path / "vocab.txt").write_text(vocab_txt, encoding="utf-8")
    (path / "bpe.codes").write_text(codes_txt, encoding="utf-8")
    tok = BertweetTokenizer(
        vocab_file=str(path / "vocab.txt"),
        merges_file=str(path / "bpe.codes"),
        model_max_length=128,
    )
    torch.manual_seed(0)
    config = RobertaConfig(
        **LAYERS,
        vocab_size=len(tok),
        max_position_embeddings=BERTWEET_MAX_POSITIONS,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        tokenizer_class="BertweetTokenizer",
    )
    model = RobertaModel(config).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    # BertweetTokenizer.save_vocabulary writes bpe.codes without the trailing
    # count column, but its loader drops the last column of every line; put back
    # the fastBPE-format codes (``a b count``) so the reloaded tokenizer keeps
    # its merges.  vocab.txt is rewritten for the same reason (fairseq format).
    (path / "bpe.codes").write_text(codes_txt, encoding="utf-8")
    (path / "vocab.txt").write_text(vocab_txt, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# BERT (WordPiece, uncased)
# ---------------------------------------------------------------------------
_BERT_SUFFIXES = ["s", "es", "ed", "ing", "er", "ers", "ly", "tion", "ment", "ness", "est", "y", "al", "ic", "ful"]


def _bert_vocab() -> list[str]:
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += list(string.ascii_lowercase) + list(string.digits) + _PUNCT
    toks += ["##" + c for c in string.ascii_lowercase + string.digits]
    toks += ["##" + s for s in _BERT_SUFFIXES if len(s) > 1]
    words = [w.lower() for w in _COMMON_WORDS + _PROPER_WORDS]
    words += ["user", "httpurl", "don", "won", "can", "t", "m"]
    seen: set[str] = set()
    out = []
    for t in toks + words:
        # WordPiece splits punctuation off, so only alphanumeric words are useful
        if t in seen or (not t.startswith("[") and not t.startswith("##") and len(t) > 1 and not t.isalnum()):
            continue
        seen.add(t)
        out.append(t)
    return out


def make_tiny_bert(path: Path) -> Path:
    """Tiny ``BertModel`` + ``BertTokenizerFast`` (uncased WordPiece) saved into ``path``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _bert_vocab()
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=BERT_MAX_POSITIONS)
    torch.manual_seed(0)
    config = BertConfig(
        **LAYERS,
        vocab_size=len(tok),
        max_position_embeddings=BERT_MAX_POSITIONS,
        type_vocab_size=2,
        pad_token_id=0,
    )
    model = BertModel(config).eval()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------
def _image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": CLIP_IMAGE_SIZE},
        crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE},
        do_resize=True,
        do_center_crop=True,
    )


def _vision_config_kwargs() -> dict:
    return dict(
        **LAYERS,
        image_size=CLIP_IMAGE_SIZE,
        patch_size=CLIP_PATCH_SIZE,
        projection_dim=CLIP_PROJECTION_DIM,
    )


def make_tiny_clip_vision(path: Path) -> Path:
    """Tiny ``CLIPVisionModelWithProjection`` + ``CLIPImageProcessor`` (32x32) saved into ``path``.

    ``image_embeds`` has shape ``(n, 24)``.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = CLIPVisionConfig(**_vision_config_kwargs())
    model = CLIPVisionModelWithProjection(config).eval()
    model.save_pretrained(path)
    _image_processor().save_pretrained(path)
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    byte_chars = list(_bytes_to_unicode().values())
    counts: Counter = Counter()
    for w, c in _word_counts().items():
        w = w.lower()
        # CLIP's pre-tokenizer splits letters, single digits and punctuation runs
        if w.isalpha() or len(w) == 1:
            counts[w] += c
        else:
            for part in ("".join(ch if ch.isalpha() else " " for ch in w)).split():
                counts[part] += c
    merges, new_symbols = _learn_bpe(counts, byte_chars)
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars]
    seen = set(vocab_list)
    for sym in new_symbols:
        if sym not in seen:
            seen.add(sym)
            vocab_list.append(sym)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(vocab_list)}
    merge_lines = [f"{a} {b}" for a, b, _ in merges]
    return vocab, merge_lines


def make_tiny_clip(path: Path) -> Path:
    """Tiny full ``CLIPModel`` + ``CLIPTokenizer`` + ``CLIPImageProcessor`` saved into ``path``.

    ``CLIPModel``, ``CLIPTextModel``, ``CLIPVisionModelWithProjection``,
    ``CLIPProcessor``/``AutoTokenizer``/``AutoImageProcessor`` all load from it.
    """
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab, merge_lines = _clip_vocab_and_merges()
    (path / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merge_lines) + "\n", encoding="utf-8")
    tok = CLIPTokenizer(
        vocab=dict(vocab),
        merges=[tuple(m.split(" ")) for m in merge_lines],
        model_max_length=CLIP_TEXT_MAX_POSITIONS,
    )
    torch.manual_seed(0)
    text_config = CLIPTextConfig(
        **LAYERS,
        vocab_size=len(vocab),
        max_position_embeddings=CLIP_TEXT_MAX_POSITIONS,
        projection_dim=CLIP_PROJECTION_DIM,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision_config = CLIPVisionConfig(**_vision_config_kwargs())
    config = CLIPConfig(
        text_config=text_config.to_dict(),
        vision_config=vision_config.to_dict(),
        projection_dim=CLIP_PROJECTION_DIM,
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(path)
    image_processor = _image_processor()
    CLIPProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(path)
    # also the stand-alone preprocessor_config.json, as hub CLIP checkpoints have
    image_processor.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def make_images(directory: Path, ids: list[str], size: int = 48) -> None:
    """Write ``<id>.jpg`` RGB images (deterministic; colour and shape depend on the id)."""
    from PIL import Image, ImageDraw

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        h = hashlib.sha256(str(image_id).encode("utf-8")).digest()
        bg = (h[0], h[1], h[2])
        fg = (255 - h[0], (h[1] + 128) % 256, h[3])
        img = Image.new("RGB", (size, size), bg)
        draw = ImageDraw.Draw(img)
        x0 = h[4] % (size // 2)
        y0 = h[5] % (size // 2)
        x1 = min(size - 1, x0 + size // 4 + h[6] % (size // 2))
        y1 = min(size - 1, y0 + size // 4 + h[7] % (size // 2))
        shape = h[8] % 3
        if shape == 0:
            draw.rectangle([x0, y0, x1, y1], fill=fg)
        elif shape == 1:
            draw.ellipse([x0, y0, x1, y1], fill=fg)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fg)
        img.save(directory / f"{image_id}.jpg", format="JPEG", quality=90)
