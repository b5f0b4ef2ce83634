"""The files of an annotation folder: which rows go in which shard, the shard names, columns and schema metadata.

Format 2 (written by this version)::

    DIR/_manifest.json                              the job and each finished shard's record (:mod:`.job`)
    DIR/data/{split}-{k:05d}-of-{n:05d}.parquet     shard k of the n shards of one split

Rows are grouped by split (in the order the splits first appear; input order inside a split), ``shard_size`` rows
a shard: the naming Hugging Face's ``push_to_hub`` writes, so ``datasets.load_dataset("parquet", data_dir=DIR)``
(or ``load_dataset(DIR)``) gives one split per split name, any name. Columns: ``row`` (the input position, unique),
``id``, ``split``, ``audio`` (``struct<bytes, path>``, declared a ``datasets.Audio`` feature in the schema metadata:
the path of the file as read, the bytes null), ``duration``, ``status``, ``error``, ``embedding``, one column per
attribute (its top class), ``p_<attribute>_<class>``, ``tags``, ``caption``, then every field of the input manifest
row but ``id`` and ``split`` (renamed ``input_<name>`` when the name is taken). Schema metadata: ``paraspeechclap``
(the model's provenance, as ``embed`` writes it, plus format, version, code version, split and shard) and
``huggingface`` (the features).

Format 1 (earlier versions; read everywhere, resumed in its own layout): ``DIR/train-{k:05d}.parquet`` holding input
rows ``[k*S, (k+1)*S)`` whatever their split, ``audio`` a string, no ``split`` column, no carried fields.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..fileio import temporary_pattern
from .attributes import AttributeTable
from .inputs import InputRow

MANIFEST = "_manifest.json"
LOCK = ".annotate.lock"
FORMAT = "paraspeechclap-annotations"
#: 2: split-named shards under data/, split column, carried fields, audio as datasets.Audio, provenance in the
#: schema metadata, shard records with SHA-256 (1: train-NNNNN.parquet, read and resumed as it is)
FORMAT_VERSION = 2
DATA_DIR = "data"
META_KEY = b"paraspeechclap"  # as `embed` writes its Parquet
HF_META_KEY = b"huggingface"  # where datasets reads a Parquet file's features
_V1_NAME = r"train-\d{5}\.parquet"
_V2_NAME = r"\w+(?:\.\w+)*-\d{5}-of-\d{5}\.parquet"
#: what an interrupted atomic write of a shard (either format) or of the manifest leaves behind
TEMPORARIES = temporary_pattern(rf"{_V1_NAME}|{_V2_NAME}|_manifest\.json")


def audio_type():
    """The Arrow type of a ``datasets.Audio`` column."""
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


@dataclass
class ShardPlan:
    """One planned shard: its number in the job, file name (relative to the folder), split and rows (in order)."""

    index: int
    name: str
    split: str
    rows: list[InputRow] = field(default_factory=list)

    def without_rows(self) -> "ShardPlan":
        return ShardPlan(self.index, self.name, self.split)


def shard_name(split: str, k: int, n: int, version: int = FORMAT_VERSION) -> str:
    return f"train-{k:05d}.parquet" if version < 2 else f"{DATA_DIR}/{split}-{k:05d}-of-{n:05d}.parquet"


def plan_shards(rows: Sequence[InputRow], size: int, version: int = FORMAT_VERSION) -> list[ShardPlan]:
    """The shards of ``rows``: per split (format 2) or over all rows in input order (format 1)."""
    groups: dict[str, list[InputRow]] = {}
    for r in rows:
        groups.setdefault("train" if version < 2 else r.split, []).append(r)
    plan = []
    for split, members in groups.items():
        n = (len(members) + size - 1) // size
        for k in range(n):
            plan.append(ShardPlan(len(plan), shard_name(split, k, n, version), split, members[k * size:(k + 1) * size]))
    return plan


def temporary_folders(out: Path) -> list[Path]:
    """The folders where shard and manifest temporaries can be."""
    return [out, out / DATA_DIR]


def shard_names(out: str | Path, manifest: dict | None = None) -> list[str]:
    """The finished shards of a folder (relative names, sorted), from its manifest."""
    if manifest is None:
        path = Path(out) / MANIFEST
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return sorted(name for name, info in manifest.get("shards", {}).items()
                  if isinstance(info, dict) and info.get("completed_at"))


def holds_shards(out: Path) -> bool:
    """Whether a folder holds files named like shards of either format."""
    top = re.compile(rf"^{_V1_NAME}$")
    inner = re.compile(rf"^{_V2_NAME}$")
    return out.is_dir() and (any(top.match(p.name) for p in out.iterdir())
                             or ((out / DATA_DIR).is_dir() and any(inner.match(p.name) for p in (out / DATA_DIR).iterdir())))


# ---------------------------------------------------------------------------------------------- columns
def annotation_schema(table: AttributeTable, dim: int, dtype: str):
    """The columns the model produces (:func:`.job.annotate_rows`): format 1's whole schema."""
    import pyarrow as pa

    fields = [pa.field("row", pa.int64(), nullable=False), pa.field("id", pa.string(), nullable=False),
              pa.field("audio", pa.string()), pa.field("duration", pa.float64()),
              pa.field("status", pa.string(), nullable=False), pa.field("error", pa.string()),
              pa.field("embedding", pa.list_(pa.float16() if dtype == "float16" else pa.float32(), dim))]
    for a in table.attributes:
        fields.append(pa.field(a.name, pa.string()))
    for _, _, col in table.probability_columns():
        fields.append(pa.field(col, pa.float32()))
    fields += [pa.field("tags", pa.list_(pa.string())), pa.field("caption", pa.string())]
    return pa.schema(fields)


@dataclass(frozen=True)
class Carried:
    """A manifest field carried to the output: its key, its column name and Arrow type (None: JSON text, for
    values no single Arrow type holds)."""

    key: str
    column: str
    type: Any = None

    def to_dict(self) -> dict:
        return {"key": self.key, "column": self.column, "type": "json" if self.type is None else str(self.type)}


def _storable(t) -> bool:
    """Whether Parquet and datasets take the type (no empty structs; a column of nulls only is kept as text)."""
    import pyarrow as pa

    if pa.types.is_struct(t):
        return t.num_fields > 0 and all(_storable(t.field(i).type) or pa.types.is_null(t.field(i).type)
                                        for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _storable(t.value_type) or pa.types.is_null(t.value_type)
    return not pa.types.is_null(t)


def _infer(values: list) -> Any:
    import pyarrow as pa

    try:
        t = pa.array(values).type
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    return t if _storable(t) else None


def carried_columns(rows: Iterable[InputRow]) -> list[Carried]:
    """The manifest fields of ``rows`` (in order of first appearance) with the Arrow type that holds every value;
    columns named as the fields (see :func:`name_carried`)."""
    rows = list(rows)
    keys = list(dict.fromkeys(key for r in rows for key in (r.fields or {})))
    # one field of the corpus at a time in memory, not all of them
    return [Carried(key, key, _infer([(r.fields or {}).get(key) for r in rows])) for key in keys]


def name_carried(carried: Iterable[Carried], taken: Iterable[str]) -> list[Carried]:
    """The carried fields' column names: their own, or ``input_<name>`` when the output has that column."""
    used, out = set(taken), []
    for c in carried:
        name = c.key
        while name in used:
            name = f"input_{name}"
        used.add(name)
        out.append(Carried(c.key, name, c.type))
    return out


def _carried_array(c: Carried, rows: Sequence[InputRow]):
    import pyarrow as pa

    values = [(r.fields or {}).get(c.key) for r in rows]
    if c.type is None:
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values],
                        pa.string())
    return pa.array(values, c.type)


# ---------------------------------------------------------------------------------------------- the shard file
def shard_metadata(provenance: dict, shard: ShardPlan, code_version: str, embedding: dict) -> dict:
    """Schema metadata of one shard: provenance (the keys ``embed`` writes, plus the annotation's) and features."""
    own = dict(provenance, format=FORMAT, version=FORMAT_VERSION, code_version=code_version, split=shard.split,
               shard=shard.name, embedding=embedding)
    features = {"info": {"features": {"audio": {"_type": "Audio"}}}}
    return {META_KEY: json.dumps(own, default=str).encode(), HF_META_KEY: json.dumps(features).encode()}


def output_table(annotated, shard: ShardPlan, carried: Sequence[Carried], metadata: dict | None,
                 version: int = FORMAT_VERSION):
    """The shard file's table from the model's columns (:func:`annotation_schema`): format 2 adds ``split``, makes
    ``audio`` an Audio struct, appends the carried fields and sets the schema metadata; format 1 is left as is."""
    import pyarrow as pa

    if version < 2:
        return annotated
    n = annotated.num_rows
    paths = annotated.column("audio").combine_chunks()
    audio = pa.StructArray.from_arrays([pa.nulls(n, pa.binary()), paths], fields=list(audio_type()))
    table = annotated.set_column(annotated.schema.get_field_index("audio"), pa.field("audio", audio_type()), audio)
    table = table.add_column(2, pa.field("split", pa.string(), nullable=False), pa.array([shard.split] * n, pa.string()))
    for c in carried:
        table = table.append_column(c.column, _carried_array(c, shard.rows))
    return table.replace_schema_metadata(metadata or {})
