"""The counterfactual table (``counterfactuals-v1.json``): which words of a style caption name which attribute class,
and the caption rewritten with one named attribute flipped to an opposite class.

The rules are data: per attribute, the phrases of each class in each grammatical form (adjective, adverbial, noun,
...), the replacement text of every class in every form, the opposites of each class (the classes a flip goes to) and,
for mapping onto a model's attribute table, equivalent class names. Matching is case-insensitive, on whole words,
longest phrase first, with non-overlapping spans; "A deep-voiced man speaks slowly." names ``gender=male``,
``pitch=deep`` and ``rate=slow``, and its counterfactuals are "A high-pitched-voiced man speaks slowly.",
"A deep-voiced woman speaks slowly." and "A deep-voiced man speaks quickly.".

This module imports nothing of the project beyond the standard library and numpy-free Python, so the reward API
(:mod:`paraspeechclap.rerank.reward`) can use it without the benchmark's heavier parts.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["TABLE_FILE", "FORMAT", "Mention", "Counterfactual", "CaptionParse", "CounterfactualTable", "packaged_table"]

TABLE_FILE = Path(__file__).with_name("counterfactuals-v1.json")
FORMAT = "paraspeechclap-ttseval-counterfactuals"


@dataclass(frozen=True)
class Mention:
    """One phrase of a caption that names an attribute class (``start:end`` in the caption)."""

    attribute: str
    cls: str
    form: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Counterfactual:
    """The caption with ``attribute`` flipped from class ``source`` to class ``target``."""

    attribute: str
    source: str
    target: str
    caption: str


@dataclass
class CaptionParse:
    """What a caption names: its mentions, one class per attribute (``classes``), and why an attribute was not
    usable (two different classes of one attribute, or a class with no opposite)."""

    caption: str
    mentions: list[Mention] = field(default_factory=list)
    classes: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Attribute:
    name: str
    opposites: Mapping[str, tuple[str, ...]]
    equivalents: Mapping[str, tuple[str, ...]]
    replace: Mapping[str, Mapping[str, str]]
    phrases: Mapping[str, Mapping[str, tuple[str, ...]]]


def _normal(phrase: str) -> str:
    return re.sub(r"\s+", " ", phrase.strip().lower())


class CounterfactualTable:
    """A loaded, validated counterfactual table. ``version`` is the table's own version, ``digest`` the hash of its
    content; :meth:`identity` (``v1@<digest>``) goes into the benchmark signature."""

    def __init__(self, doc: Mapping[str, Any], source: str = ""):
        self.source = source
        if doc.get("format") != FORMAT:
            raise ValueError(f"{source or 'table'}: format must be {FORMAT!r}, got {doc.get('format')!r}")
        self.version = str(doc.get("version") or "")
        if not self.version:
            raise ValueError(f"{source or 'table'}: 'version' is missing")
        canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self.digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
        self.attributes = {name: _attribute(name, spec, source) for name, spec in doc["attributes"].items()}
        self._lookup: dict[str, tuple[str, str, str]] = {}  # phrase -> (attribute, class, form)
        self._class_attribute: dict[str, str] = {}
        for attr in self.attributes.values():
            for cls, forms in attr.phrases.items():
                if cls in self._class_attribute:
                    raise ValueError(f"{source}: class {cls!r} is in both {self._class_attribute[cls]!r} and {attr.name!r}")
                self._class_attribute[cls] = attr.name
                for form, phrases in forms.items():
                    for phrase in phrases:
                        key = _normal(phrase)
                        if key in self._lookup:
                            raise ValueError(f"{source}: phrase {phrase!r} is listed twice ({self._lookup[key][:2]} "
                                             f"and {(attr.name, cls)})")
                        self._lookup[key] = (attr.name, cls, form)
        ordered = sorted(self._lookup, key=lambda p: (-len(p), p))  # longest first: alternation order decides
        alternation = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in ordered)
        self._pattern = re.compile(rf"\b(?:{alternation})\b", re.IGNORECASE)

    @classmethod
    def from_file(cls, path: str | Path) -> "CounterfactualTable":
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: cannot read the counterfactual table ({err})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("attributes"), dict):
            raise ValueError(f"{path}: a counterfactual table is an object with 'attributes'")
        return cls(doc, source=str(path))

    def identity(self) -> str:
        """``<version>@<content hash>``: changes whenever any rule changes."""
        return f"{self.version}@{self.digest}"

    def attribute_of(self, cls: str) -> str | None:
        return self._class_attribute.get(cls)

    def classes(self) -> list[str]:
        return list(self._class_attribute)

    def opposites(self, cls: str) -> tuple[str, ...]:
        attr = self.attribute_of(cls)
        return () if attr is None else tuple(self.attributes[attr].opposites.get(cls, ()))

    def equivalents(self, cls: str) -> tuple[str, ...]:
        attr = self.attribute_of(cls)
        return () if attr is None else tuple(self.attributes[attr].equivalents.get(cls, ()))

    # ------------------------------------------------------------------ parsing and rewriting
    def parse(self, caption: str) -> CaptionParse:
        """The mentions of ``caption`` and one class per attribute it names unambiguously."""
        parse = CaptionParse(caption)
        for match in self._pattern.finditer(caption):
            attr, cls, form = self._lookup[_normal(match.group(0))]
            parse.mentions.append(Mention(attr, cls, form, match.start(), match.end(), match.group(0)))
        named: dict[str, list[str]] = {}
        for m in parse.mentions:
            named.setdefault(m.attribute, [])
            if m.cls not in named[m.attribute]:
                named[m.attribute].append(m.cls)
        for attr, classes in named.items():
            if len(classes) > 1:
                parse.problems.append(f"names {' and '.join(map(repr, classes))} for {attr}: that attribute is left out")
            else:
                parse.classes[attr] = classes[0]
        return parse

    def counterfactuals(self, caption: str) -> tuple[list[Counterfactual], CaptionParse]:
        """Every caption with one named attribute flipped to one of its class's opposites (table order), and the
        parse. A class without opposites is recognised but not flipped (noted in the parse's problems)."""
        parse = self.parse(caption)
        out: list[Counterfactual] = []
        for attr, cls in parse.classes.items():
            targets = self.attributes[attr].opposites.get(cls, ())
            if not targets:
                parse.problems.append(f"{cls!r} ({attr}) has no opposite in the table: not flipped")
            spans = [m for m in parse.mentions if m.attribute == attr]
            for target in targets:
                out.append(Counterfactual(attr, cls, target, self._rewrite(caption, spans, target)))
        return out, parse

    def _rewrite(self, caption: str, spans: list[Mention], target: str) -> str:
        pieces, last = [], 0
        for m in spans:
            text = self.attributes[m.attribute].replace[m.form][target]
            if m.text[:1].isupper():
                text = text[:1].upper() + text[1:]
            pieces += [caption[last:m.start], text]
            last = m.end
        return "".join(pieces) + caption[last:]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"{where} must be a non-empty list of non-empty strings")
    return tuple(value)


def _attribute(name: str, spec: Any, source: str) -> _Attribute:
    """One attribute's rules, validated: every phrase's form has a replacement for every opposite of its class."""
    where = f"{source}: attribute {name!r}"
    if not isinstance(spec, dict) or not isinstance(spec.get("phrases"), dict):
        raise ValueError(f"{where} needs 'phrases'")
    phrases = {cls: {form: _strings(p, f"{where} class {cls!r} form {form!r}") for form, p in forms.items()}
               for cls, forms in spec["phrases"].items()}
    opposites = {cls: _strings(t, f"{where} opposites of {cls!r}") for cls, t in spec.get("opposites", {}).items()}
    equivalents = {cls: _strings(e, f"{where} equivalents of {cls!r}") for cls, e in spec.get("equivalents", {}).items()}
    replace = spec.get("replace", {})
    for cls, targets in opposites.items():
        if cls not in phrases:
            raise ValueError(f"{where}: opposites name class {cls!r}, which has no phrases")
        for target in targets:
            if target not in phrases or target == cls:
                raise ValueError(f"{where}: {cls!r} -> {target!r}: the target must be another class of this attribute")
            for form in phrases[cls]:
                text = replace.get(form, {}).get(target)
                if not isinstance(text, str) or not text.strip():
                    raise ValueError(f"{where}: no replacement for form {form!r} -> {target!r} (needed by {cls!r})")
    return _Attribute(name, opposites, equivalents, replace, phrases)


@functools.lru_cache(maxsize=None)
def _cached(path: str) -> CounterfactualTable:
    return CounterfactualTable.from_file(path)


def packaged_table(path: str | Path | None = None) -> CounterfactualTable:
    """The table shipped with the package (``counterfactuals-v1.json``), or the one at ``path``; loaded once."""
    return _cached(str(Path(path).resolve() if path is not None else TABLE_FILE))
