"""Style attributes of the synthetic corpus: levels, engine settings, tag words, caption wording, voices.

Everything that decides *what* a clip is (and what may appear in which split) lives here as data;
`generate.py` samples from it and `verify.py` checks the result against measurements.

Pitch levels are relative to the speaker's gender (a "deep" woman is lower than a medium woman, not
lower than a medium man), as in ParaSpeechCaps' speaker-level intrinsic tags. Targets are semitone
offsets from a gender centre; the engine pitch parameter that reaches a target is found per voice by
calibration (`generate.calibrate_voices`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ..prompts import DEFAULT_TEMPLATE

SOURCE = "synth"

# --------------------------------------------------------------------------------------------------
# Attribute levels
# --------------------------------------------------------------------------------------------------

#: Gender centre frequencies (Hz) that pitch offsets are relative to.
GENDER_CENTRE_HZ = {"male": 108.0, "female": 210.0}

#: pitch level -> (min, max) semitone offset from the gender centre used as the synthesis target.
PITCH_TARGET_ST = {"low": (-6.0, -3.6), "medium": (-1.2, 1.2), "high": (3.6, 6.0)}
#: pitch level -> (min, max) semitone offset a *measured* clip must fall in (1 st margin to the target).
PITCH_ACCEPT_ST = {"low": (-99.0, -2.5), "medium": (-2.2, 2.2), "high": (2.5, 99.0)}
#: offsets at or above this are additionally tagged "shrill".
SHRILL_MIN_ST = 4.8

#: speaking rate level -> espeak words-per-minute range.
RATE_WPM = {"slow": (90, 116), "measured": (155, 180), "fast": (250, 300)}

#: pitch range level -> espeak SSML <prosody range=...> values (sampled uniformly).
RANGE_SSML = {"monotonous": ["0%", "10%", "20%"], "neutral": ["85%", "100%", "115%"],
              "singsong": ["180%", "200%", "240%"]}
#: range level used for the per-voice pitch calibration.
RANGE_CALIBRATION_SSML = {"monotonous": "10%", "neutral": "100%", "singsong": "200%"}

VOICE_QUALITIES = ("normal", "whispered", "creaky")
DELIVERIES = ("flowing", "hesitant", "punctuated")
GENDERS = ("male", "female")

#: sampling probabilities (the generator draws each attribute independently).
LEVEL_PROBS = {
    "pitch": {"low": 1 / 3, "medium": 1 / 3, "high": 1 / 3},
    "rate": {"slow": 1 / 3, "measured": 1 / 3, "fast": 1 / 3},
    "range": {"monotonous": 0.3, "neutral": 0.4, "singsong": 0.3},
    "quality": {"normal": 0.74, "whispered": 0.14, "creaky": 0.12},
    "delivery": {"flowing": 0.6, "hesitant": 0.2, "punctuated": 0.2},
    "gender": {"male": 0.5, "female": 0.5},
}

# --------------------------------------------------------------------------------------------------
# ParaSpeechCaps tag words (paper-facts §4): which attribute level gives which tags, and where.
# --------------------------------------------------------------------------------------------------

PITCH_TAGS = {"low": ["deep", "low-pitched"], "medium": ["medium-pitched"], "high": ["high-pitched"]}
RATE_TAGS = {"slow": ["slow"], "measured": ["measured"], "fast": ["fast"]}
RANGE_TAGS = {"monotonous": ["monotonous"], "neutral": [], "singsong": ["singsong"]}
QUALITY_INTRINSIC_TAGS = {"normal": [], "whispered": [], "creaky": ["vocal-fry"]}
QUALITY_SITUATIONAL_TAGS = {"normal": [], "whispered": ["whispered"], "creaky": []}
DELIVERY_TAGS = {"flowing": ["flowing"], "hesitant": ["hesitant"], "punctuated": ["punctuated"]}


def tags_for(attrs: dict) -> tuple[list[str], list[str]]:
    """(intrinsic_tags, situational_tags) of a clip from its attribute levels."""
    intrinsic = [attrs["gender"]]
    if attrs["quality"] != "whispered":            # whisper has no F0: no pitch or range claims
        intrinsic += PITCH_TAGS[attrs["pitch"]]
        if attrs["pitch"] == "high" and attrs.get("pitch_offset_st", 0.0) >= SHRILL_MIN_ST:
            intrinsic.append("shrill")
        intrinsic += RANGE_TAGS[attrs["range"]]
    intrinsic += QUALITY_INTRINSIC_TAGS[attrs["quality"]]
    intrinsic += DELIVERY_TAGS[attrs["delivery"]]
    situational = RATE_TAGS[attrs["rate"]] + QUALITY_SITUATIONAL_TAGS[attrs["quality"]]
    return intrinsic, situational


# --------------------------------------------------------------------------------------------------
# Zero-shot classification suites (test split): attribute -> candidate classes, gold from attributes.
# --------------------------------------------------------------------------------------------------

SUITES = {
    "pitch": {"candidates": ["deep", "medium-pitched", "high-pitched"],
              "gold": lambda a: None if a["quality"] == "whispered" else
              {"low": "deep", "medium": "medium-pitched", "high": "high-pitched"}[a["pitch"]]},
    "rate": {"candidates": ["slow", "measured", "fast"], "gold": lambda a: a["rate"]},
    "range": {"candidates": ["monotonous", "singsong"],
              "gold": lambda a: None if a["quality"] == "whispered" or a["range"] == "neutral"
              else a["range"]},
    "whisper": {"candidates": ["normal", "whispered"],
                "gold": lambda a: {"normal": "normal", "whispered": "whispered"}.get(a["quality"])},
    "voice_quality": {"candidates": ["normal", "whispered", "vocal-fry"],
                      "gold": lambda a: {"normal": "normal", "whispered": "whispered",
                                         "creaky": "vocal-fry"}[a["quality"]]},
    "gender": {"candidates": ["male", "female"], "gold": lambda a: a["gender"]},
    "delivery": {"candidates": ["flowing", "hesitant", "punctuated"], "gold": lambda a: a["delivery"]},
}

# --------------------------------------------------------------------------------------------------
# Voices
# --------------------------------------------------------------------------------------------------

#: espeak-ng language voices (accents) that accept "+variant". ("en-gb" ignores variants: use "en".)
ACCENTS_TRAIN = ["en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan"]
ACCENTS_TEST = ["en-us", "en", "en-us-nyc", "en-gb-x-gbcwmd"]

#: espeak variant (timbre) -> gender. Excluded on purpose: robotic/klatt voices, voices with built-in
#: flutter (grandpa, grandma, croak: they are creaky by default) and the whisper variants.
TIMBRES_TRAIN = {
    "m1": "male", "m2": "male", "m4": "male", "m5": "male", "m6": "male", "m8": "male",
    "Andy": "male", "Lee": "male", "Denis": "male", "Diogo": "male", "Henrique": "male",
    "gustave": "male", "john": "male", "michel": "male", "miguel": "male", "antonio": "male",
    "pedro": "male", "quincy": "male", "sandro": "male", "travis": "male", "victor": "male",
    "Michael": "male", "Jacky": "male",
    "f1": "female", "f2": "female", "f3": "female", "f5": "female", "Alicia": "female",
    "Annie": "female", "aunty": "female", "belinda": "female", "anika": "female", "steph": "female",
    "steph3": "female",
}
#: timbres that appear only in the test split (held-out voices).
TIMBRES_TEST = {
    "m3": "male", "m7": "male", "Hugo": "male", "norbert": "male", "robert": "male",
    "f4": "female", "Andrea": "female", "steph2": "female", "linda": "female",
}
#: mbrola diphone voices (a second synthesizer; used when installed). No SSML range, no whisper.
MBROLA_TRAIN = {"mb-us1": "female", "mb-us2": "male"}
MBROLA_TEST = {"mb-us3": "male", "mb-en1": "male"}


@dataclass(frozen=True)
class Voice:
    """One synthesis voice: an espeak accent with a timbre variant, or an mbrola voice."""

    engine: str          # "espeak" | "mbrola"
    timbre: str          # espeak variant name or mbrola voice name
    gender: str
    held_out: bool       # True: only in the test split

    @property
    def name(self) -> str:
        return self.timbre if self.engine == "mbrola" else f"espeak+{self.timbre}"


def all_voices(mbrola_available: bool) -> list[Voice]:
    voices = [Voice("espeak", t, g, False) for t, g in TIMBRES_TRAIN.items()]
    voices += [Voice("espeak", t, g, True) for t, g in TIMBRES_TEST.items()]
    if mbrola_available:
        voices += [Voice("mbrola", t, g, False) for t, g in MBROLA_TRAIN.items()]
        voices += [Voice("mbrola", t, g, True) for t, g in MBROLA_TEST.items()]
    return voices


# --------------------------------------------------------------------------------------------------
# Caption wording. Each entry: (train/validation wording, test-only wording).
# --------------------------------------------------------------------------------------------------

GENDER_NOUNS = {
    "male": (["man", "male speaker", "male voice", "guy", "male talker"], ["gentleman", "male narrator"]),
    "female": (["woman", "female speaker", "female voice", "lady", "female talker"],
               ["female narrator", "woman narrator"]),
    None: (["person", "speaker", "talker", "voice"], ["narrator", "individual"]),
}
PITCH_ADJ = {
    "low": (["deep", "low-pitched", "low", "deep-toned", "low, deep"], ["very low-pitched", "bassy"]),
    "medium": (["medium-pitched", "mid-pitched", "average-pitched", "moderately pitched"],
               ["middle-range", "ordinary-pitched"]),
    "high": (["high-pitched", "high", "shrill", "high, bright"], ["very high-pitched", "squeaky"]),
}
RATE_ADV = {
    "slow": (["slowly", "at a slow pace", "unhurriedly", "at a leisurely pace", "slowly and deliberately"],
             ["at a sluggish pace", "very slowly"]),
    "measured": (["at a measured pace", "at a moderate speed", "at a normal pace", "at an average speed"],
                 ["at an even, steady tempo", "neither fast nor slow"]),
    "fast": (["quickly", "fast", "at a fast pace", "rapidly", "at a rapid speed"],
             ["hurriedly", "at a brisk clip"]),
}
RANGE_ADV = {
    "monotonous": (["in a monotone", "monotonously", "in a flat, monotonous voice",
                    "with almost no pitch variation"], ["in a droning voice", "without any melody"]),
    "singsong": (["in a singsong voice", "with a melodic, singsong intonation",
                  "with lively, expressive pitch variation", "in an expressive, sing-song manner"],
                 ["in a musical, lilting voice", "with a bouncy, tuneful intonation"]),
    "neutral": (["with natural intonation"], ["with ordinary intonation"]),
}
QUALITY_ADV = {
    "whispered": (["in a whisper", "in a whispery voice", "in a whispered voice", "in a soft whisper"],
                  ["under their breath", "in a breathy, voiceless whisper"]),
    "creaky": (["with vocal fry", "in a creaky voice", "with a creaky, rough voice", "with a vocal-fry creak"],
               ["in a croaky, crackling voice", "with a rattling creak"]),
    "normal": (["in a normal voice", "in a clear, fully voiced tone", "in a normal speaking voice"],
               ["in an ordinary voice"]),
}
DELIVERY_ADV = {
    "hesitant": (["hesitantly", "in a hesitant manner", "haltingly, with filler words",
                  "with uncertain pauses and repetitions"],
                 ["tentatively, stumbling over words", "unsurely, with ums and false starts"]),
    "punctuated": (["with deliberate pauses", "in a punctuated way", "pausing between phrases",
                    "in short, punctuated phrases"], ["in clipped, separated chunks", "phrase by phrase"]),
    "flowing": (["fluently", "smoothly", "in a flowing manner", "without hesitation"],
                ["seamlessly", "in one continuous flow"]),
}

#: Who-phrase patterns: {a} article, {adj} pitch adjective, {noun} gender noun.
WHO_PATTERNS = (
    ["{a} {adj} {noun}", "{a} {noun} with a {adj} voice", "{a} {adj}-voiced {noun}"],
    ["{a} {noun} whose voice is {adj}"],
)
#: Sentence templates: {who} noun phrase, {how} adverbials. "{How}" fronts the adverbials.
CAPTION_TEMPLATES = (
    ["{Who} speaks {how}.", "{Who} is talking {how}.", "{How}, {who} speaks.",
     "A recording of {who} speaking {how}.", "{Who} says a sentence {how}.",
     "This is {who}, speaking {how}.", "{How}, {who} talks.", "We hear {who} reading a line {how}."],
    ["Here, {who} can be heard speaking {how}.", "{Who} delivers the line {how}.",
     "The clip features {who} talking {how}.", "{How}, {who} reads the sentence aloud."],
)
#: The project's zero-shot classification template, also used (as ParaSpeechCLAP's synonym prompts
#: are) for some single-attribute training captions.
TAG_TEMPLATE = DEFAULT_TEMPLATE


# --------------------------------------------------------------------------------------------------
# Spoken sentences: a small grammar; sentences are assigned to the test pool by a stable hash.
# --------------------------------------------------------------------------------------------------

SUBJECTS = ["the old farmer", "my neighbour", "a young teacher", "the little girl", "our manager",
            "the tall doctor", "my brother", "her grandmother", "the new student", "a tired driver",
            "the quiet baker", "his sister", "the team captain", "a local artist", "the night nurse",
            "my best friend", "the museum guide", "a careful pilot", "the shop owner", "our landlord",
            "the young singer", "a retired sailor", "the head chef", "my cousin", "the mail carrier",
            "everyone in the office", "the two children", "a friendly stranger", "the science club",
            "the mayor", "my uncle", "the gardener"]
VERBS = ["painted", "carried", "opened", "found", "watched", "fixed", "cleaned", "moved", "sold",
         "borrowed", "packed", "checked", "lost", "bought", "cooked", "wrapped", "counted", "repaired",
         "delivered", "forgot", "noticed", "measured", "ordered", "returned", "picked up", "brought",
         "described", "photographed", "unlocked", "covered"]
OBJECTS = ["the red door", "a heavy box", "the old piano", "two wooden chairs", "the broken window",
           "a bag of apples", "the kitchen table", "a letter from home", "the blue bicycle",
           "three small baskets", "the garden fence", "a warm blanket", "the silver kettle",
           "a pile of books", "the front gate", "some fresh bread", "the tiny lamp", "a new umbrella",
           "the muddy boots", "a paper map", "the green bottle", "a basket of plums", "the clock tower",
           "an empty suitcase", "the yellow curtains", "a box of candles", "the wooden bridge",
           "a stack of plates", "the family car", "a jar of honey"]
PLACES = ["near the station", "in the garden", "behind the school", "at the market", "by the river",
          "inside the barn", "on the top floor", "next to the bakery", "at the end of the road",
          "in the small village", "across the street", "under the old bridge", "in the city centre",
          "beside the lake", "on the busy corner", "at the harbour", "in the back room",
          "outside the library"]
TIMES = ["yesterday", "last night", "this morning", "before dinner", "after the storm", "on Sunday",
         "early today", "during the break", "late in the evening", "after lunch", "every week",
         "in the spring"]
FILLERS = ["uh", "um", "er", "well", "hmm", "you know", "I mean"]


def count_syllables(text: str) -> int:
    """Rough English syllable count: vowel groups per word, a final silent 'e' dropped, >= 1 per word."""
    total = 0
    for word in re.findall(r"[a-zA-Z']+", text.lower()):
        groups = re.findall(r"[aeiouy]+", word)
        n = len(groups)
        if n > 1 and word.endswith("e") and not word.endswith(("le", "ee", "ye")):
            n -= 1
        total += max(1, n)
    return total


def sentence_is_test(sentence: str) -> bool:
    """Stable assignment of a sentence to the test-only pool (about 1 in 6)."""
    return int(hashlib.sha1(sentence.encode()).hexdigest(), 16) % 6 == 0


@dataclass
class Spoken:
    """A sentence as said: plain text, its SSML for espeak, and its syllable count."""

    sentence: str                    # the base sentence (held-out unit)
    text: str                        # what is said, with fillers/repetitions, no markup
    ssml_body: str                   # inner SSML (breaks), without <speak>/<prosody>
    syllables: int
    breaks_ms: list = field(default_factory=list)
