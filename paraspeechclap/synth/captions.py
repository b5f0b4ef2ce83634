"""Spoken sentences (with hesitant / punctuated delivery) and style captions from templates."""

from __future__ import annotations

import numpy as np

from ..prompts import fill_template
from . import styles as S
from .engines import text_to_ssml


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def make_sentence(rng: np.random.Generator, n_words: tuple[int, int], test_pool: bool,
                  max_tries: int = 400) -> str:
    """A sentence from the word bank with a word count in `n_words`, from the train or the test pool."""
    best = None
    for _ in range(max_tries):
        parts = [_pick(rng, S.SUBJECTS), _pick(rng, S.VERBS), _pick(rng, S.OBJECTS)]
        r = rng.random()
        if r < 0.45:
            parts.append(_pick(rng, S.PLACES))
        if rng.random() < 0.35:
            t = _pick(rng, S.TIMES)
            parts = ([t] + parts) if rng.random() < 0.5 else (parts + [t])
        sent = " ".join(parts)
        n = len(sent.split())
        if S.sentence_is_test(sent) != test_pool:
            continue
        if n_words[0] <= n <= n_words[1]:
            return sent
        if best is None or abs(n - sum(n_words) / 2) < abs(len(best.split()) - sum(n_words) / 2):
            best = sent
    if best is None:
        raise RuntimeError("could not draw a sentence from the word bank")
    return best


def _brk(ms: int) -> str:
    return f'<break time="{int(ms)}ms"/>'


def make_spoken(sentence: str, delivery: str, rng: np.random.Generator) -> S.Spoken:
    """Render a base sentence with a delivery: flowing as is, hesitant with fillers, repetitions
    and pauses, punctuated with deliberate pauses between phrases."""
    words = sentence.split()
    words[0] = words[0][0].upper() + words[0][1:]
    breaks: list[int] = []
    if delivery == "flowing":
        text = " ".join(words) + "."
        return S.Spoken(sentence, text, text_to_ssml(text), S.count_syllables(text), [])
    if delivery == "punctuated":
        n_chunks = max(3, int(round(len(words) / float(rng.uniform(2.0, 3.0)))))
        n_chunks = min(n_chunks, len(words))
        cuts = np.sort(rng.choice(np.arange(1, len(words)), size=n_chunks - 1, replace=False))
        chunks = [" ".join(c) for c in np.split(np.asarray(words, dtype=object), cuts)]
        ssml_parts, text_parts = [], []
        for j, c in enumerate(chunks):
            ssml_parts.append(text_to_ssml(c))
            text_parts.append(c)
            if j < len(chunks) - 1:
                ms = int(rng.integers(420, 700))
                breaks.append(ms)
                ssml_parts.append(_brk(ms))
        text = " ... ".join(text_parts) + "."
        return S.Spoken(sentence, text, " ".join(ssml_parts) + ".", S.count_syllables(text), breaks)
    # hesitant: one repetition of a short word ("the, the") and one or two fillers with pauses
    tokens: list[tuple[str, int]] = [(w, 0) for w in words]
    short = [i for i, w in enumerate(words[:-1]) if len(w) <= 5]
    rep = int(_pick(rng, short)) if short else 0
    ms = int(rng.integers(300, 450))
    tokens.insert(rep + 1, (words[rep].lower(), 0))
    tokens[rep] = (tokens[rep][0] + ",", ms)
    breaks.append(ms)
    n_fill = int(rng.integers(1, 3))
    positions = sorted(rng.choice(np.arange(1, len(tokens)), size=min(n_fill, len(tokens) - 1),
                              replace=False).tolist(), reverse=True)
    for pos in positions:
        before, after = int(rng.integers(320, 560)), int(rng.integers(300, 480))
        prev_w, prev_b = tokens[pos - 1]
        tokens[pos - 1] = (prev_w, max(prev_b, before))
        tokens.insert(pos, (_pick(rng, S.FILLERS), after))
        breaks += [before, after]
    ssml, text = [], []
    for w, b in tokens:
        ssml.append(text_to_ssml(w) + (" " + _brk(b) if b else ""))
        text.append(w + (" ..." if b else ""))
    text_s = " ".join(text) + "."
    return S.Spoken(sentence, text_s, " ".join(ssml) + ".", S.count_syllables(text_s), breaks)


# --------------------------------------------------------------------------------------------------
# Captions
# --------------------------------------------------------------------------------------------------

def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _words(table: dict, key, held_out: bool, rng: np.random.Generator) -> str:
    train, test = table[key]
    return _pick(rng, test if held_out else train)


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _who(gender: str | None, pitch: str | None, held_out: bool, rng: np.random.Generator) -> str:
    noun = _words(S.GENDER_NOUNS, gender, held_out, rng)
    if pitch is None:
        return f"{_article(noun)} {noun}"
    adj = _words(S.PITCH_ADJ, pitch, held_out, rng)
    pattern = _pick(rng, S.WHO_PATTERNS[1] if held_out else S.WHO_PATTERNS[0])
    if "-voiced" in pattern and any(ch in adj for ch in ", -"):
        pattern = "{a} {adj} {noun}"
    if "voice" in noun and "voice" in pattern.replace("{noun}", ""):
        pattern = "{a} {adj} {noun}"
    first = adj if pattern.startswith("{a} {adj}") else noun
    return pattern.format(a=_article(first), adj=adj, noun=noun)


def _sentence(who: str, how: list[str], held_out: bool, rng: np.random.Generator) -> str:
    template = _pick(rng, S.CAPTION_TEMPLATES[1] if held_out else S.CAPTION_TEMPLATES[0])
    if not how:
        how = ["in an ordinary way"] if held_out else ["in a normal way"]
    h = _join(how)
    out = template.format(who=who, how=h, Who=who[0].upper() + who[1:], How=h[0].upper() + h[1:])
    return out[0].upper() + out[1:]


def _adverbials(attrs: dict, which: list[str], held_out: bool, rng: np.random.Generator) -> list[str]:
    out = []
    for a in which:
        if a == "rate":
            out.append(_words(S.RATE_ADV, attrs["rate"], held_out, rng))
        elif a == "range":
            out.append(_words(S.RANGE_ADV, attrs["range"], held_out, rng))
        elif a == "quality":
            out.append(_words(S.QUALITY_ADV, attrs["quality"], held_out, rng))
        elif a == "delivery":
            out.append(_words(S.DELIVERY_ADV, attrs["delivery"], held_out, rng))
    rng.shuffle(out)
    return out


def full_caption(attrs: dict, held_out: bool, rng: np.random.Generator) -> str:
    """Caption naming every controlled attribute the clip is tagged with."""
    whisper = attrs["quality"] == "whispered"
    who = _who(attrs["gender"], None if whisper else attrs["pitch"], held_out, rng)
    which = ["rate"]
    if not whisper and attrs["range"] != "neutral":
        which.append("range")
    if attrs["quality"] != "normal" or rng.random() < 0.15:
        which.append("quality")
    if attrs["delivery"] != "flowing" or rng.random() < 0.3:
        which.append("delivery")
    return _sentence(who, _adverbials(attrs, which, held_out, rng), held_out, rng)


def partial_caption(attrs: dict, tags: list[str], held_out: bool, rng: np.random.Generator) -> str:
    """Caption naming one or two attributes (or, in training, the tag template with one tag)."""
    style_tags = [t for t in tags if t not in S.GENDERS]
    if not held_out and style_tags and rng.random() < 0.2:
        return fill_template(S.TAG_TEMPLATE, _pick(rng, style_tags))
    whisper = attrs["quality"] == "whispered"
    options = ["gender", "rate", "delivery", "quality"] + ([] if whisper else ["pitch", "pitch"])
    if not whisper and attrs["range"] != "neutral":
        options += ["range", "range"]
    if attrs["quality"] != "normal":
        options += ["quality", "quality"]
    k = 1 if rng.random() < 0.5 else 2
    chosen: list[str] = []
    while len(chosen) < k:
        c = _pick(rng, options)
        if c not in chosen:
            chosen.append(c)
    who = _who(attrs["gender"] if "gender" in chosen else None,
               attrs["pitch"] if "pitch" in chosen else None, held_out, rng)
    how = _adverbials(attrs, [c for c in chosen if c not in ("gender", "pitch")], held_out, rng)
    if not how:
        return _bare(who, held_out, rng)
    return _sentence(who, how, held_out, rng)


def _bare(who: str, held_out: bool, rng: np.random.Generator) -> str:
    train = ["{Who} is speaking.", "The speaker is {who}.", "A recording of {who}.", "{Who} talks."]
    test = ["The clip features {who}.", "Here we hear {who}."]
    t = _pick(rng, test if held_out else train)
    return t.format(who=who, Who=who[0].upper() + who[1:])
