"""Annotation output (``paraspeechclap annotate INPUT --out DIR``): ``DIR/_manifest.json`` and the Parquet shards.

The manifest says what was annotated (the input rows' digest), by which model and attribute table, and which
shards are complete. Its stamp is the one it has always had: ``"format": "paraspeechclap-annotations"`` and
``"version"``. A shard holds one ``annotation-shard`` row per input row; besides the columns declared here it has,
per attribute of the table, the top class (a string column named after the attribute) and each class's probability
(``p_<attribute>_<class>``, float32), listed in the manifest's ``columns``.

Expected next (branch ``integrity``, to be declared as version 2 with an upgrade from 1 when it lands): each shard's
SHA-256 and size in the manifest, a ``split`` column with shard names that match it, the manifest's own fields
(speaker, original caption, ...) carried into the shards, and the provenance in each shard's Parquet schema metadata
(as ``embed`` writes it, under :data:`SHARD_METADATA_KEY`).
"""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import NonNegativeFloat, NonNegativeInt, StrictStr

from .core import Contract, FieldStamp, Record, declare, unchanged

MANIFEST_NAME = "_manifest.json"
FORMAT = "paraspeechclap-annotations"
#: the Parquet schema-metadata key of a shard's provenance (the key ``embed`` uses for its Parquet)
SHARD_METADATA_KEY = b"paraspeechclap"
#: the fixed columns of a shard and their Arrow types (the embedding is a fixed-size list of ``embedding.dim``)
SHARD_COLUMNS = {"row": "int64", "id": "string", "audio": "string", "duration": "double", "status": "string",
                 "error": "string", "embedding": "fixed_size_list<float | halffloat>", "tags": "list<string>",
                 "caption": "string"}


class ShardInfo(Record):
    index: NonNegativeInt
    rows: list[NonNegativeInt]  # [first, end)
    ok: NonNegativeInt
    failed: NonNegativeInt
    audio_seconds: NonNegativeFloat
    bytes: NonNegativeInt
    completed_at: str


class InputInfo(Record):
    inputs: list[str]
    audio_root: Optional[str]
    split: str
    rows: NonNegativeInt
    digest: str


class EmbeddingInfo(Record):
    dim: NonNegativeInt
    dtype: Literal["float16", "float32"]


class AnnotationManifest(Record):
    format: Literal["paraspeechclap-annotations"]
    version: int
    input: InputInfo
    model: dict[str, Any]  # the model's provenance (identity, precision, device, ...)
    precision: Optional[str]
    code_version: str
    embedding: EmbeddingInfo
    captions: bool
    attributes: dict[str, Any]  # the attribute table used (an attribute-table document)
    columns: dict[str, list[str]]  # probability column -> [attribute, class]
    shard_size: NonNegativeInt
    num_shards: NonNegativeInt
    shards: dict[str, ShardInfo]
    completed_shards: Optional[NonNegativeInt] = None


class AnnotationShardRow(Record):
    """One row of a shard (attribute and probability columns beside these, see the module docstring)."""

    row: NonNegativeInt
    id: StrictStr
    audio: Optional[StrictStr]
    duration: Optional[NonNegativeFloat]
    status: Literal["ok", "error"]
    error: Optional[StrictStr]
    embedding: Optional[list[float]]
    tags: Optional[list[StrictStr]]
    caption: Optional[StrictStr]


ANNOTATION_MANIFEST = declare(Contract(
    "annotation-manifest", 1, AnnotationManifest,
    "annotate's _manifest.json (annotate resumes from it; index, search and serve read it)",
    stamp=FieldStamp("format", FORMAT, "version"), oldest=1))
ANNOTATION_SHARD = declare(Contract(
    "annotation-shard", 1, AnnotationShardRow,
    "a row of an annotation shard (Parquet; read by index, search, serve and datasets.load_dataset); the stamp "
    "belongs in the shard's schema metadata, not in its rows", upgrades={0: unchanged}))
