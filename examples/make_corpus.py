"""Generate the bundled example MNER corpus (TWITTER-2015 format) and its captions.

Run from anywhere::

    python examples/make_corpus.py

It writes, next to this script::

    data/tweets/train.txt   600 tweets
    data/tweets/valid.txt   150 tweets
    data/tweets/test.txt    150 tweets
    data/captions.txt       one "<id>.jpg :<caption>" line per image id (BLIP-2 caption format)

Every tweet, name and caption is invented for this project (nothing is copied
from a benchmark).  The generator is deterministic (``random.Random(7)``) and
uses the standard library only, so the committed files can be regenerated
byte for byte.

About 35% of the tweets are *image-decided*: an ambiguous name ("Jordan",
"Washington", "Amazon", "Apple", ...) sits in a neutral template ("can't stop
thinking about Jordan") where the words do not tell its type; the caption (and
the generated image, see ``make_images.py``) shows a person, a place, a
company logo/store or a product, consistent with the label.  The other tweets
are decided by their text; their captions agree with the main entity's type or
are generic.
"""

from __future__ import annotations

import random
import string
import sys
from collections import Counter
from pathlib import Path

SEED = 7
SPLIT_SIZES = (("train", 600), ("valid", 150), ("test", 150))
AMBIGUOUS_RATE = 0.35
NO_ENTITY_RATE = 0.06

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"

# ---------------------------------------------------------------------------
# entities (invented but plausible); a string may hold several tokens
# ---------------------------------------------------------------------------
PEOPLE = [
    "Marcus Delaney",
    "Priya Natarajan",
    "Tomas Ekberg",
    "Lena Okafor",
    "Daniel Voss",
    "Aisha Karimi",
    "Ruben Castellano",
    "Hannah Whitcombe",
    "Kenji Maruyama",
    "Sofia Lindqvist",
    "Grace Adebayo",
    "Oliver Pennington",
    "Mateo Ruiz",
    "Chloe Hartwell",
    "Isaac Brennan",
    "Nadia Haddad",
    "Felix Amsel",
    "Yara Benali",
    "Caleb Thornton",
    "Jonah Whitaker",
    "Elena Markovic",
    "Tessa Holloway",
    "Rafael Quintero",
    "Zoe Kavanagh",
    "Arjun Mehta",
    "Lucia Ferrante",
    "Declan Royce",
    "Mary Ellen Shaw",
    "Juan Carlos Rivera",
    "DJ Kestro",
    "Brennan",
    "Ellison",
    "Delaney",
    "Okafor",
    "Whitcombe",
    "Quintero",
    "Kavanagh",
    "Harriet Cole",
    "Lil Vantage",
    "Benji",
]
PLACES = [
    "Port Halden",
    "Eastbrook",
    "Lake Morrow",
    "Santa Veria",
    "Kelso Bay",
    "Marrowfield",
    "New Carden",
    "Ashford Hills",
    "Riverton",
    "Glenmoor",
    "Cape Lorne",
    "Bellhaven",
    "North Quarry",
    "Silverlake Valley",
    "San Aurelio",
    "Westmarch",
    "Dunmore",
    "Fairhaven",
    "Old Harrow",
    "Mount Elspeth",
    "Calder Springs",
    "Brightwater",
    "Lowell Point",
    "East Halden",
    "Harrow County",
    "Veria Coast",
    "Kelso",
]
ORGS = [
    "Northwind Airlines",
    "Halcyon Bank",
    "Brightline Media",
    "Veridian Labs",
    "Corvus Motors",
    "Eastbrook City Council",
    "Kestrel Records",
    "Pinecrest University",
    "Silverfen Capital",
    "Bluehaven Hospital",
    "Orbis Telecom",
    "Daily Ledger",
    "Tidewater News",
    "Halden Police",
    "Atlas Foods",
    "Quillon Games",
    "Greenway Party",
    "Meridian Health",
    "Lantern Studios",
    "Corbel Systems",
    "HBN",
    "Veridian",
    "Northwind",
    "Morrow FC",
    "Port Halden United",
]
# "other": products, events, films / shows, teams' nicknames, songs
OTHERS = {
    "product": ["Lumen X2", "Aero Pods", "Nimbus 7", "Vela Watch", "Tessel Tab", "Corvus R8", "Quillon Quest", "Brightbook Pro", "Lumen"],
    "event": [
        "Harvest Fest",
        "Summer Jam",
        "Riverfront Marathon",
        "Tech Summit 2015",
        "Winter Lights Festival",
        "Halden Pride",
        "Eastbrook Open",
        "Comic Expo",
    ],
    "film": ["The Long Quiet", "Glass Harbor", "Midnight Orchard", "Late Night Kitchen", "Paper Skies", "Iron Meadow", "Cold Signal"],
    "team": ["Riverside Comets", "Halden Hawks", "Kelso Tigers", "Comets"],
}

# ambiguous names: the types each can take (the image decides which one)
AMBIGUOUS = {
    "Jordan": ("PER", "LOC"),
    "Washington": ("PER", "LOC"),
    "Paris": ("PER", "LOC"),
    "Victoria": ("PER", "LOC"),
    "Phoenix": ("PER", "LOC"),
    "Madison": ("PER", "LOC"),
    "Georgia": ("PER", "LOC"),
    "Austin": ("PER", "LOC"),
    "Florence": ("PER", "LOC"),
    "Sydney": ("PER", "LOC"),
    "Savannah": ("PER", "LOC"),
    "Dallas": ("PER", "LOC"),
    "Sierra": ("PER", "LOC"),
    "Chelsea": ("PER", "LOC", "ORG"),
    "Amazon": ("ORG", "LOC"),
    "Apple": ("ORG", "PER"),
    "Mercedes": ("PER", "ORG"),
    "Tesla": ("PER", "ORG"),
    "Ford": ("PER", "ORG"),
    "Dell": ("PER", "ORG"),
    "Nova": ("ORG", "OTHER"),
    "Orion": ("ORG", "OTHER"),
    "Falcon": ("ORG", "OTHER"),
    "Echo": ("ORG", "OTHER"),
    "Aurora": ("PER", "LOC", "OTHER"),
}

# ---------------------------------------------------------------------------
# captions by class (what BLIP-2 would say about the picture)
# ---------------------------------------------------------------------------
CAPTIONS = {
    "PER": [
        "a man in a suit speaking at a podium",
        "a woman smiling at the camera",
        "a young man holding a microphone on stage",
        "a basketball player in a red jersey smiling",
        "a woman with long hair posing for a photo",
        "a man wearing a cap and sunglasses",
        "a girl with a guitar sitting on a chair",
        "a man in glasses and a tie is talking on tv",
        "an older man waving to the camera",
        "a woman in a black dress on the red carpet",
        "a close up of a man's face with a beard",
        "a singer with a microphone under stage lights",
        "a boy in a hoodie taking a selfie",
        "a woman speaking into a microphone at a press conference",
    ],
    "LOC": [
        "a city skyline at sunset",
        "a desert landscape with mountains in the distance",
        "an aerial view of a city with a river",
        "a river running through a green valley",
        "a street with old buildings and a church tower",
        "a beach with palm trees and blue water",
        "a snowy mountain landscape under a clear sky",
        "a harbor with boats at dusk",
        "a map of the region with roads",
        "a bridge over a river in a city at night",
        "a lake surrounded by hills and forest",
        "a town square with a fountain",
    ],
    "ORG": [
        "a company logo on a white background",
        "the front of a store with a large sign",
        "a glass office building with a logo on top",
        "people waiting in line outside a store",
        "a logo with blue letters on a white background",
        "a sign with the company name on a brick wall",
        "the entrance of a shop in a mall",
        "a red and white logo on a screen",
        "a storefront with a neon sign",
        "the headquarters building with the company logo",
    ],
    "OTHER:product": [
        "a smartphone on a wooden table",
        "a pair of wireless earbuds in a white case",
        "a laptop with a sticker on the lid",
        "a smart watch on a black background",
        "a box of a new phone on a desk",
        "a tablet leaning against a coffee cup",
    ],
    "OTHER:event": [
        "a crowd at a music festival with confetti",
        "fireworks over a crowd at night",
        "runners at the start line of a marathon",
        "a banner over the entrance of a convention hall",
        "a festival stage with colorful lights",
    ],
    "OTHER:film": [
        "a movie poster with bold white text",
        "a poster of a film with a dark sky",
        "a scene from a movie on a television screen",
        "the title card of a tv show",
    ],
    "OTHER:team": [
        "a team jersey hanging on a wall",
        "a soccer ball on the grass of a stadium field",
        "a scoreboard at a stadium at night",
        "a team banner with a tiger mascot",
    ],
    "GENERIC": [
        "a screenshot of a tweet",
        "a close up of a plate of food",
        "a cat sitting on a couch",
        "a blurry photo of a room",
        "white text on a black background",
        "a cup of coffee on a table",
        "a meme with text on top",
        "a dog lying on the floor",
        "a screenshot of a text message",
        "a bowl of noodles with chopsticks",
    ],
}

# ---------------------------------------------------------------------------
# templates: {PER} {LOC} {ORG} {OTHER} are entity slots, {A} the ambiguous
# name; {H} a @handle, {T} a #hashtag, {U} a URL, {E} an emoji (or nothing)
# ---------------------------------------------------------------------------
NEUTRAL = [
    "can't stop thinking about {A}",
    "so much love for {A} today",
    "{A} never disappoints",
    "throwback to {A} {T}",
    "still obsessed with {A} .",
    "nothing but respect for {A}",
    "{A} , you were amazing {E}",
    "here's to {A} !",
    "all about {A} right now",
    "look at {A} {E}",
    "my heart belongs to {A}",
    "{A} on a sunday {E}",
    "this is {A} . that's the tweet",
    "missing {A} already",
    "best of {A} {U}",
    "RT {H} : {A} is trending for a reason",
    "say what you want , {A} is the best",
    "{A} got me like {E}",
    "thoughts on {A} ?",
    "{A} was everything yesterday",
    "proud of {A} today {T}",
    "{H} have you seen {A} lately ?",
    "can we talk about {A} for a second",
    "{A} {A_BANG}",
    "never getting over {A} {T}",
    "good morning from {A} {E}",
    "RT {H} : {A} {U}",
    "{A} appreciation post {T}",
    "{H} {A} though",
    "nobody does it like {A}",
]

TEMPLATES = {
    "PER": [
        "{H} {PER} just announced a new album",
        "great interview with {PER} on the morning show {U}",
        "{PER} scores twice in the second half !",
        "RT {H} : {PER} says the new plan will create jobs {U}",
        "happy birthday {PER} ! {E}",
        "met {PER} at the airport today , so nice",
        "{PER} and {PER} together on stage tonight",
        "can't believe {PER} retired",
        "listening to {PER} talk about climate at {ORG}",
        "{PER} signs a three year deal with {ORG}",
        "{PER} is the funniest person on this app lol",
        "RT {H} : {PER} wins the award for best new artist {T}",
        "{PER} cancels the {LOC} show due to illness",
        "mom just met {PER} and she is freaking out",
        "congrats to {PER} on the new job at {ORG} {E}",
        "i'm voting for {PER} and you should too {T}",
        "{PER} looked so tired in the debate last night",
        "new podcast with {PER} is out {U}",
        "{PER} visits {LOC} to meet flood victims",
        "shoutout to {PER} for the ride home",
    ],
    "LOC": [
        "flying to {LOC} tomorrow {E}",
        "sunset over {LOC} tonight {U}",
        "heavy rain expected in {LOC} this weekend",
        "road trip from {LOC} to {LOC} {T}",
        "moving to {LOC} next month , any tips ?",
        "the view from {LOC} is unreal",
        "traffic in downtown {LOC} is a nightmare",
        "small earthquake reported near {LOC} {U}",
        "weekend in {LOC} with the family {T}",
        "RT {H} : power outage across {LOC} , stay safe",
        "finally home in {LOC}",
        "new bakery opened in {LOC} and it's so good",
        "{LOC} is beautiful in the fall",
        "wildfire near {LOC} forces evacuations {U}",
        "first snow of the year in {LOC} {E}",
        "who's in {LOC} tonight ?",
    ],
    "ORG": [
        "{ORG} shares fell 3 % after the report",
        "just got hired at {ORG} !!!",
        "{ORG} announces new ceo {U}",
        "worst customer service ever {ORG}",
        "{ORG} is hiring in {LOC}",
        "statement from {ORG} on today's outage",
        "{ORG} opens its first store in {LOC}",
        "RT {H} : {ORG} to cut 200 jobs {U}",
        "{ORG} signs {PER} as new brand ambassador",
        "thank you {ORG} for the free upgrade {E}",
        "{ORG} wins the league after a 2-1 win",
        "my interview with {ORG} went well i think",
        "{ORG} fined for misleading ads",
        "{ORG} app down again ? {T}",
        "protest outside {ORG} offices this morning",
    ],
    "OTHER": [
        "just bought the new {OTHER:product} and i love it",
        "my {OTHER:product} died after two days , great",
        "{ORG} unveils the {OTHER:product} {U}",
        "who's going to {OTHER:event} this weekend ?",
        "{OTHER:event} tickets sold out in minutes",
        "lining up for {OTHER:event} since 6am {T}",
        "{OTHER:event} comes to {LOC} next spring",
        "watched {OTHER:film} last night , what a film",
        "RT {H} : {OTHER:film} trailer is finally here {U}",
        "{PER} was the best part of {OTHER:film}",
        "{OTHER:team} vs {OTHER:team} tonight , let's go {E}",
        "{OTHER:team} win again !!! {T}",
        "the {OTHER} review is up {U}",
        "is {OTHER} worth the hype ?",
        "can't wait for {OTHER} {E}",
    ],
    "NONE": [
        "good morning everyone {E}",
        "can't sleep again",
        "this weather tho {T}",
        "new blog post {U}",
        "who else is watching the game tonight ?",
        "monday mood {T}",
        "RT {H} : read this {U}",
        "i need a nap",
        "{H} lol same",
        "best day ever {E}",
        "coffee first , then the world",
        "when the wifi finally works {T}",
    ],
}

HANDLE_PARTS_A = ["jess", "marco", "the_real", "daily", "kb", "sam", "nina", "halden", "just", "its", "team", "lil", "mr", "coach", "news"]
HANDLE_PARTS_B = ["lee", "tweets", "kb", "news", "fan", "x", "_99", "ray", "live", "official", "2015", "hq", "sports", "vibes", "jones"]
HASHTAGS = [
    "#tbt",
    "#love",
    "#news",
    "#weekend",
    "#blessed",
    "#nofilter",
    "#gameday",
    "#breaking",
    "#travel",
    "#mood",
    "#tgif",
    "#music",
    "#sports",
    "#photo",
    "#happy",
]
EMOJIS = ["😍", "🔥", "😂", "🙌", "❤", "😭", "👏"]
EMOJI_STANDINS = [":)", "!", "!!", ":D", "<3"]


def _handle(rng: random.Random) -> str:
    return "@" + rng.choice(HANDLE_PARTS_A) + rng.choice(HANDLE_PARTS_B)


def _url(rng: random.Random) -> str:
    return "http://t.co/" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(10))


def _entity_tokens(name: str, etype: str) -> list[tuple[str, str]]:
    words = name.split()
    return [(w, ("B-" if i == 0 else "I-") + etype) for i, w in enumerate(words)]


class _Slots:
    """Fills the slots of one template, remembering the first entity type seen."""

    def __init__(self, rng: random.Random, lowercase: bool) -> None:
        self.rng = rng
        self.lowercase = lowercase
        self.main_type: str | None = None
        self.other_kind: str | None = None
        self.used: set[str] = set()

    def _pick(self, pool: list[str]) -> str:
        for _ in range(10):
            name = self.rng.choice(pool)
            if name not in self.used:
                break
        self.used.add(name)
        return name

    def entity(self, etype: str, kind: str | None = None) -> list[tuple[str, str]]:
        rng = self.rng
        if etype == "OTHER":
            kind = kind or rng.choice(sorted(OTHERS))
            name = self._pick(OTHERS[kind])
        else:
            pool = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGS}[etype]
            # ambiguous names also occur where the words decide their type
            amb = [n for n, types in AMBIGUOUS.items() if etype in types]
            name = self._pick(amb) if amb and rng.random() < 0.12 else self._pick(pool)
        if self.main_type is None:
            self.main_type, self.other_kind = etype, kind
        toks = _entity_tokens(name, etype)
        if self.lowercase:
            toks = [(w.lower(), t) for w, t in toks]
        return toks

    def fill(self, template: str, a_tokens: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        rng = self.rng
        out: list[tuple[str, str]] = []
        for piece in template.split():
            if piece in ("{PER}", "{LOC}", "{ORG}", "{OTHER}"):
                out.extend(self.entity(piece[1:-1]))
            elif piece.startswith("{OTHER:"):
                out.extend(self.entity("OTHER", piece[len("{OTHER:") : -1]))
            elif piece == "{A}":
                out.extend(a_tokens)
            elif piece == "{A_BANG}":
                out.append((rng.choice(["!!!", "<3", "forever", "again"]), "O"))
            elif piece == "{H}":
                out.append((_handle(rng), "O"))
            elif piece == "{T}":
                if rng.random() < 0.7:
                    out.append((rng.choice(HASHTAGS), "O"))
            elif piece == "{U}":
                if rng.random() < 0.75:
                    out.append((_url(rng), "O"))
            elif piece == "{E}":
                r = rng.random()
                if r < 0.25:
                    out.append((rng.choice(EMOJIS), "O"))
                elif r < 0.6:
                    out.append((rng.choice(EMOJI_STANDINS), "O"))
            else:
                out.append((piece.lower() if self.lowercase else piece, "O"))
        return out


def _caption_for(rng: random.Random, etype: str | None, other_kind: str | None) -> str:
    if etype is None:
        return rng.choice(CAPTIONS["GENERIC"])
    if etype == "OTHER":
        return rng.choice(CAPTIONS["OTHER:" + (other_kind or rng.choice(sorted(OTHERS)))])
    return rng.choice(CAPTIONS[etype])


def _ambiguous_other_kind(name: str) -> str:
    return {"Nova": "product", "Orion": "film", "Falcon": "product", "Echo": "product", "Aurora": "film"}.get(name, "product")


TAILS = [
    "what a day .",
    "can't wait",
    "love it",
    "see you there !",
    "so good",
    "honestly",
    "lol",
    "wow",
    "unreal",
    "no words",
    "i'm crying",
    "let's go",
    "more soon",
    "thoughts ?",
    "(via {H} )",
    "so proud",
    "10/10",
    "we need this",
    "same time next year ?",
]


def _decorate(rng: random.Random, slots: _Slots, toks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Tweet-like extras around a template: an RT prefix, a tail, trailing hashtags."""
    if rng.random() < 0.1 and toks[0][0] not in ("RT",) and not toks[0][0].startswith("@"):
        toks = [("RT", "O"), (_handle(rng), "O"), (":", "O")] + toks
    if rng.random() < 0.3:
        toks = toks + slots.fill(rng.choice(TAILS))
    if rng.random() < 0.15:
        toks = toks + [(h, "O") for h in rng.sample(HASHTAGS, rng.randint(1, 2))]
    return toks


def make_tweet(rng: random.Random, image_decided: bool) -> tuple[list[tuple[str, str]], str]:
    """One tweet as ``(token, tag)`` pairs, and its caption.

    ``image_decided``: an ambiguous name in a neutral template; the caption
    (the image) is the only evidence of its type.
    """
    if image_decided:
        name = rng.choice(sorted(AMBIGUOUS))
        etype = rng.choice(AMBIGUOUS[name])
        slots = _Slots(rng, lowercase=False)
        word = name.lower() if rng.random() < 0.08 else name
        toks = slots.fill(rng.choice(NEUTRAL), a_tokens=[(word, "B-" + etype)])
        caption = _caption_for(rng, etype, _ambiguous_other_kind(name) if etype == "OTHER" else None)
        return _decorate(rng, slots, toks), caption
    slots = _Slots(rng, lowercase=rng.random() < 0.08)
    r = rng.random()
    if r < NO_ENTITY_RATE:
        toks = slots.fill(rng.choice(TEMPLATES["NONE"]))
    elif r < NO_ENTITY_RATE + 0.1:
        # a neutral template with an unambiguous name: the name itself decides
        etype = rng.choice(["PER", "PER", "LOC", "ORG", "OTHER"])
        toks = slots.fill(rng.choice(NEUTRAL), a_tokens=slots.entity(etype))
    else:
        etype = rng.choices(["PER", "LOC", "ORG", "OTHER"], weights=[35, 25, 22, 18])[0]
        toks = slots.fill(rng.choice(TEMPLATES[etype]))
    if slots.main_type is None or rng.random() < 0.25:
        caption = _caption_for(rng, None, None)
    else:
        caption = _caption_for(rng, slots.main_type, slots.other_kind)
    return _decorate(rng, slots, toks), caption


def _check(toks: list[tuple[str, str]]) -> None:
    prev = "O"
    for w, t in toks:
        assert w and not any(c.isspace() for c in w), w
        if t.startswith("I-"):
            assert prev != "O" and prev[2:] == t[2:], toks
        prev = t


def build(rng: random.Random | None = None):
    """All splits: ``{split: [(id, tokens_tags, caption, image_decided), ...]}``."""
    rng = rng or random.Random(SEED)
    n = 0
    splits = {}
    for split, size in SPLIT_SIZES:
        rows = []
        decided_at = set(rng.sample(range(size), round(AMBIGUOUS_RATE * size)))
        for i in range(size):
            n += 1
            decided = i in decided_at
            toks, caption = make_tweet(rng, decided)
            _check(toks)
            rows.append((f"ex_{n:04d}", toks, caption, decided))
        splits[split] = rows
    return splits


def write(data_dir: Path = DATA_DIR) -> dict:
    splits = build()
    tweets_dir = data_dir / "tweets"
    tweets_dir.mkdir(parents=True, exist_ok=True)
    caption_lines = []
    stats = {}
    for split, rows in splits.items():
        lines = []
        counts: Counter = Counter()
        for image_id, toks, caption, decided in rows:
            lines.append(f"IMGID:{image_id}")
            lines.extend(f"{w}\t{t}" for w, t in toks)
            lines.append("")
            caption_lines.append(f"{image_id}.jpg :{caption}")
            counts.update(t[2:] for _, t in toks if t.startswith("B-"))
            counts["image_decided"] += decided
            counts["tokens"] += len(toks)
        counts["tweets"] = len(rows)
        (tweets_dir / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
        stats[split] = counts
    (data_dir / "captions.txt").write_text("\n".join(caption_lines) + "\n", encoding="utf-8", newline="\n")
    return stats


def main() -> int:
    stats = write()
    for split, c in stats.items():
        print(
            f"{split}: {c['tweets']} tweets, {c['tokens']} tokens, PER {c['PER']} LOC {c['LOC']} "
            f"ORG {c['ORG']} OTHER {c['OTHER']}, image-decided {c['image_decided']} "
            f"({100 * c['image_decided'] / c['tweets']:.1f}%)"
        )
    print(f"wrote {DATA_DIR / 'tweets'} and {DATA_DIR / 'captions.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
