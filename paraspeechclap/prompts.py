"""Prompt templates: the zero-shot classification template and the training synonym templates."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Mapping, Sequence

DEFAULT_TEMPLATE = "A person is speaking in a {} style."
SYNONYM_TEMPLATES_FILE = Path(__file__).parent / "configs" / "synonym_templates.json"
SLOT = "{}"
MAX_PROMPT_CHARS = 2000  # a filled prompt longer than this is refused (the text tower reads far fewer tokens)


def check_template(template: object) -> str:
    """``template`` if it is a string with exactly one ``{}``; else a ValueError saying why."""
    if not isinstance(template, str):
        raise ValueError(f"a template must be a string, got {type(template).__name__}")
    if template.count(SLOT) != 1:
        raise ValueError(f"a template must contain exactly one '{{}}' where the label goes, got {template[:80]!r}")
    rest = template.replace(SLOT, "", 1)
    if "{" in rest or "}" in rest:
        # a format field ({0}, {x:>10}, {{) is a str.format habit: refused, not kept as silent text in the prompt
        raise ValueError(f"a template may hold no braces besides its one '{{}}' (format fields are not filled), "
                         f"got {template[:80]!r}")
    return template


def fill_template(template: str, label: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """``template`` with its one ``{}`` replaced by ``label``: plain substitution (no format specs, no attribute
    access, no other braces), at most ``max_chars`` characters."""
    before, after = check_template(template).split(SLOT)
    filled = before + str(label) + after
    if len(filled) > max_chars:
        raise ValueError(f"the filled prompt has {len(filled)} characters; the limit is {max_chars}")
    return filled


def load_synonym_templates(path: str | Path | None = None) -> dict[str, list[str]]:
    """Tag -> list of complete prompt sentences. Raises on a missing or malformed file (no silent fallback)."""
    path = Path(path) if path is not None else SYNONYM_TEMPLATES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"synonym template file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping tag -> list of prompts")
    for tag, prompts in data.items():
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError(f"{path}: tag {tag!r} must map to a non-empty list of non-empty strings")
    return {str(tag).strip().lower(): list(prompts) for tag, prompts in data.items()}


def tag_prompt(tag: str, synonyms: Mapping[str, Sequence[str]] | None, rng: random.Random,
               fallback: str = DEFAULT_TEMPLATE) -> str:
    """One prompt for ``tag``: a random synonym sentence when the tag has any, else the fallback template."""
    if synonyms and tag in synonyms:
        return rng.choice(list(synonyms[tag]))
    return fill_template(fallback, tag)
