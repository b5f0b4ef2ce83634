"""The machinery of the declared file contracts: a :class:`Contract` per kind of file, its stamp, and the one
validate / upgrade / write road (the contracts themselves live in the other modules of this package).

A contract is a pydantic model of one document (or one row), the current ``version``, where the stamp lives
(:class:`SchemaKey` by default: ``"schema": "paraspeechclap.<kind>/<version>"``) and one upgrade per older version
still read (``upgrades[v]`` turns a version-``v`` document into a version ``v + 1`` one). A document without a stamp
is version 0: it was written before versions existed. Readers get a plain ``dict`` of the current version back;
any problem is a :class:`SchemaError` naming the file, the field and the expected version.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

PREFIX = "paraspeechclap."
#: problems listed in one error message (the first is also ``SchemaError.field``)
SHOWN = 3


class Record(BaseModel):
    """A document or row that may carry fields beyond the declared ones (kept as they are)."""

    model_config = ConfigDict(extra="allow", defer_build=True)


class Closed(BaseModel):
    """A document whose every field is declared: an unknown key is an error (a typo, not data)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class SchemaError(ValueError):
    """A file that does not meet its contract: ``source`` (the file), ``field`` (dotted path, or None for the whole
    document), ``kind`` and ``version`` (the version this code reads)."""

    def __init__(self, source: str, kind: str, version: int, problem: str, field: str | None = None):
        self.source, self.kind, self.version, self.field, self.problem = source, kind, version, field, problem
        super().__init__(f"{source}: {self.detail}")

    @property
    def detail(self) -> str:
        """The message without the file: what a caller that names the file (or the row) itself shows."""
        where = f"field {self.field!r}: " if self.field else ""
        return f"{where}{self.problem} (expected {self.kind} version {self.version})"


# ---------------------------------------------------------------------------------------------------- stamps
@dataclass(frozen=True)
class SchemaKey:
    """The stamp as one string ``"paraspeechclap.<kind>/<version>"`` under ``key`` (a value not starting with
    ``paraspeechclap.`` is someone else's column of that name, not a stamp)."""

    key: str = "schema"

    def put(self, doc: Mapping, kind: str, version: int) -> dict:
        return {self.key: f"{PREFIX}{kind}/{version}", **{k: v for k, v in doc.items() if k != self.key}}

    def found(self, doc: Mapping) -> tuple[str, int | None] | None:
        """(kind, version) of the stamp, version None when unreadable; None when there is no stamp."""
        value = doc.get(self.key)
        if not isinstance(value, str) or not value.startswith(PREFIX):
            return None
        kind, _, version = value[len(PREFIX):].rpartition("/")
        return (kind, int(version)) if version.isdigit() and kind else (value, None)

    def strip(self, doc: Mapping) -> dict:
        return {k: v for k, v in doc.items() if k != self.key or self.found(doc) is None}


@dataclass(frozen=True)
class FieldStamp:
    """The kind as a fixed value of one key and the version in another (or fixed by the kind value): for files that
    older code or other tools read, whose own keys already say what they are (a saved model's ``model_type``)."""

    kind_key: str
    kind_value: str
    version_key: str | None = None
    #: the version a document with ``kind_value`` has when there is no ``version_key``
    implied: int = 1

    def put(self, doc: Mapping, kind: str, version: int) -> dict:
        out = {self.kind_key: self.kind_value, **doc}
        if self.version_key is not None:
            out[self.version_key] = version
        return out

    def found(self, doc: Mapping) -> tuple[str, int | None] | None:
        if doc.get(self.kind_key) != self.kind_value:
            return None
        if self.version_key is None:
            return self.kind_value, self.implied
        version = doc.get(self.version_key, 0)
        return self.kind_value, version if isinstance(version, int) and not isinstance(version, bool) else None

    def strip(self, doc: Mapping) -> dict:
        return dict(doc)  # these keys are declared fields of the model


# ---------------------------------------------------------------------------------------------------- contracts
Upgrade = Callable[[dict], dict]


def unchanged(doc: dict) -> dict:
    """The upgrade of a version whose documents already have the next version's shape (only the stamp is new)."""
    return doc


@dataclass(frozen=True)
class Contract:
    """One kind of file: its model, current version, stamp and upgrades from every older version still read."""

    kind: str
    version: int
    model: type[BaseModel]
    what: str  # one line: which file this is, who writes and who reads it
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)
    stamp: SchemaKey | FieldStamp = SchemaKey()
    oldest: int = 0  # the oldest version read (an unstamped document is version 0)
    extends: str | None = None  # a kind whose readers also take this one (a synth row is a manifest row)
    fill_defaults: bool = True  # readers get the declared defaults of absent fields (False: absent stays absent)

    def __post_init__(self) -> None:
        missing = set(range(self.oldest, self.version)) - set(self.upgrades)
        if missing:
            raise TypeError(f"contract {self.kind}: no upgrade from version(s) {sorted(missing)}")


CONTRACTS: dict[str, Contract] = {}
#: the modules of this package that declare contracts (imported on first need: a reader of manifest rows does not
#: pay for building every other model)
MODULES = ("manifest", "corpus", "evaluation", "attribute_table", "annotation", "rerank", "training", "saved_model")


def declare(contract: Contract) -> Contract:
    if contract.kind in CONTRACTS:
        raise TypeError(f"contract {contract.kind} declared twice")
    CONTRACTS[contract.kind] = contract
    return contract


def all_contracts() -> dict[str, Contract]:
    """Every declared contract, by kind (importing the modules that declare them, once)."""
    import importlib

    if not _LOADED:
        for name in MODULES:
            importlib.import_module(f"{__package__}.{name}")
        _LOADED.append(True)
    return CONTRACTS


_LOADED: list[bool] = []


def contract(kind: str) -> Contract:
    if kind not in CONTRACTS:
        all_contracts()
    try:
        return CONTRACTS[kind]
    except KeyError:
        raise KeyError(f"no contract {kind!r}; declared: {', '.join(sorted(CONTRACTS))}") from None


def _extends(kind: str, base: str) -> bool:
    while kind is not None:
        if kind == base:
            return True
        kind = contract(kind).extends if kind in all_contracts() else None
    return False


# ---------------------------------------------------------------------------------------------------- reading
def _current(obj: Any, kind: str, source: str) -> tuple[dict, Contract]:
    """The document upgraded to the current version of its own contract (``kind`` or one extending it)."""
    wanted = contract(kind)
    if not isinstance(obj, Mapping):
        raise SchemaError(source, kind, wanted.version, f"expected a JSON object, got {type(obj).__name__}")
    found = wanted.stamp.found(obj)
    own = wanted
    if found is not None and isinstance(wanted.stamp, SchemaKey) and found[0] != kind:
        if not _extends(found[0], kind):
            raise SchemaError(source, kind, wanted.version, f"this is a {found[0]!r} file, not {kind}", wanted.stamp.key)
        own = CONTRACTS[found[0]]
    key = getattr(own.stamp, "key", None) or own.stamp.version_key or own.stamp.kind_key
    version = 0 if found is None else found[1]
    if version is None:
        raise SchemaError(source, kind, wanted.version, f"unreadable version stamp {obj.get(key)!r}", key)
    if version > own.version:
        raise SchemaError(source, own.kind, own.version, f"written as version {version}, newer than this "
                          "paraspeechclap reads (upgrade paraspeechclap to read it)", key)
    if version < own.oldest:
        what = "no version stamp" if found is None else f"version {version}"
        raise SchemaError(source, own.kind, own.version, f"{what}: not a {own.kind} file "
                          f"(versions {own.oldest} to {own.version} are read)", key)
    doc = own.stamp.strip(obj)
    for v in range(version, own.version):
        try:
            doc = own.upgrades[v](dict(doc))
        except ValueError as err:
            raise SchemaError(source, own.kind, own.version, f"cannot read version {v}: {err}") from None
    return doc, own


def _field_path(loc: tuple, data: Any, missing: bool) -> str:
    """The dotted path of a pydantic error location in ``data`` (union member tags such as ``str`` left out)."""
    parts, node = [], data
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            parts.append(str(part))
            node = node[part]
        elif isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node):
            parts.append(str(part))
            node = node[part]
        elif missing and i == len(loc) - 1:
            parts.append(str(part))
    return ".".join(parts)


def _got(value: Any) -> str:
    """``, got <value>`` for a scalar (a whole object or list would drown the message)."""
    if isinstance(value, (Mapping, list, tuple)):
        return ""
    text = repr(value)
    return ", got " + (text if len(text) <= 60 else text[:57] + "...")


def _problems(err: ValidationError, doc: Any) -> dict[str, list[tuple[str, str]]]:
    """{field path: [(error type, message)]}, the most specific errors only: a union's members fail together, and
    the member the value was meant for (the deepest error, or one that is not a plain type mismatch) is the one
    that says what is wrong."""
    found: dict[str, list[tuple[str, str, Any]]] = {}
    for e in err.errors(include_url=False):
        missing = e["type"] == "missing"
        path = _field_path(tuple(e["loc"]), doc, missing)
        message = ("is missing" if missing else "unknown key" if e["type"] == "extra_forbidden"
                   else e["msg"].replace("Value error, ", "").replace("Input should be ", "expected "))
        message += "" if missing or e["type"] in ("extra_forbidden", "value_error") else _got(e.get("input"))
        found.setdefault(path, []).append((e["type"], message))
    deeper = {p for p in found if any(q != p and (q.startswith(p + ".") or not p) for q in found)}
    out = {}
    for path, errors in found.items():
        if path in deeper:
            continue
        specific = [m for m in errors if not m[0].endswith("_type")] or errors
        out[path] = list(dict.fromkeys(m[1] for m in specific))
    return out or {p: list(dict.fromkeys(m[1] for m in e)) for p, e in found.items()}


def schema_error(err: ValidationError, doc: Any, source: str, kind: str, version: int) -> SchemaError:
    """One :class:`SchemaError` for a pydantic error: each field once, with what was expected there."""
    problems = list(_problems(err, doc).items())
    shown = problems[:SHOWN]
    texts = [" or ".join(messages) if i == 0 else f"field {path!r}: {' or '.join(messages)}"
             for i, (path, messages) in enumerate(shown)]
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return SchemaError(source, kind, version, "; ".join(texts) + more, shown[0][0] or None)


def parse(obj: Any, kind: str, source: str = "<data>") -> BaseModel:
    """The document as its contract's pydantic model, upgraded to the current version; :class:`SchemaError` if not."""
    doc, _ = _current(obj, kind, source)
    wanted = contract(kind)
    try:
        return wanted.model.model_validate(doc)
    except ValidationError as err:
        raise schema_error(err, doc, source, kind, wanted.version) from None


def validate(obj: Any, kind: str, source: str = "<data>") -> dict:
    """The document (a parsed JSON object) checked against contract ``kind`` and upgraded to its current version,
    as a plain ``dict`` with the current stamp; :class:`SchemaError` naming ``source``, the field and the version."""
    own = contract(kind)
    model = parse(obj, kind, source)
    return own.stamp.put(model.model_dump(mode="json", exclude_unset=not own.fill_defaults), kind, own.version)


def check(obj: Any, kind: str, source: str = "<data>") -> None:
    """Raise :class:`SchemaError` unless ``obj`` meets contract ``kind`` (nothing is returned or rewritten)."""
    parse(obj, kind, source)


def read(path: str | os.PathLike, kind: str) -> dict:
    """A JSON file of contract ``kind``, validated and upgraded (see :func:`validate`); a missing or unparsable
    file is a :class:`SchemaError` too."""
    own = contract(kind)
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except OSError as err:
        raise SchemaError(str(path), kind, own.version, f"cannot read ({err.strerror or err})") from None
    except ValueError as err:
        raise SchemaError(str(path), kind, own.version, f"not valid JSON ({err})") from None
    return validate(doc, kind, str(path))


# ---------------------------------------------------------------------------------------------------- writing
def stamp(doc: Mapping, kind: str) -> dict:
    """``doc`` with the current stamp of contract ``kind`` (the writer's side; :func:`write` also validates)."""
    own = contract(kind)
    return own.stamp.put(doc, kind, own.version)


def stamped(doc: Mapping, kind: str, source: str = "<data>") -> dict:
    """``doc`` stamped and checked: what a writer writes (the document as given, not a re-serialisation)."""
    out = stamp(doc, kind)
    check(out, kind, source)
    return out


def dumps(doc: Mapping, kind: str, source: str = "<data>", **json_options: Any) -> str:
    """The stamped, checked document as JSON text (``indent=2``, strict: NaN is refused) ending in a newline."""
    options = {"indent": 2, "ensure_ascii": False, "allow_nan": False, **json_options}
    return json.dumps(stamped(doc, kind, source), **options) + "\n"


def write(path: str | os.PathLike, doc: Mapping, kind: str, durable: bool = False, **json_options: Any) -> Path:
    """Stamp, check and write one JSON document atomically (:mod:`paraspeechclap.fileio`)."""
    from ..fileio import atomic_write_text

    return atomic_write_text(path, dumps(doc, kind, str(path), **json_options), durable=durable)


def dumps_row(row: Mapping, kind: str, source: str = "<data>") -> str:
    """One stamped, checked row as a JSON line (without the newline)."""
    return json.dumps(stamped(row, kind, source), ensure_ascii=False, allow_nan=False)


def write_jsonl(path: str | os.PathLike, rows: list[Mapping], kind: str, durable: bool = False) -> Path:
    """Rows of contract ``kind``, each stamped and checked, as JSON lines, written atomically."""
    from ..fileio import atomic_write

    lines = [dumps_row(row, kind, f"{path}:{number}") + "\n" for number, row in enumerate(rows, 1)]
    return atomic_write(path, lambda handle: handle.writelines(lines), durable=durable)
