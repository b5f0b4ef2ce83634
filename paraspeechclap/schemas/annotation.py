"""Annotation output (``paraspeechclap annotate INPUT --out DIR``): ``DIR/_manifest.json`` and the Parquet shards.

The manifest says what was annotated (the input rows' digest), by which model and attribute table, and which
shards are complete. Its stamp is the one it has always had: ``"format": "paraspeechclap-annotations"`` and
``"version"``. A shard holds one ``annotation-shard`` row per input row; besides the columns declared here it has,
per attribute of the table, the top class (a string column named after the attribute) and each class's probability
(``p_<attribute>_<class>``, float32), listed in the manifest's ``columns``; an attribute the table classifies with a
probe and that has no single neutral class (range) also has ``p_<attribute>_none`` (its top "class" may then be
``none``).

Version 2 (``annotate``'s format 2): shards under ``data/`` named by split (``{split}-NNNNN-of-NNNNN.parquet``)
with a ``split`` column, the input rows' own fields carried into them, the provenance in each shard's Parquet schema
metadata (under :data:`SHARD_METADATA_KEY`), and each finished shard's SHA-256 and size in the manifest. Version 1
folders (``train-NNNNN.parquet``, records without checksums) are still read.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import NonNegativeFloat, NonNegativeInt, StrictStr

from .core import Contract, FieldStamp, Record, declare, unchanged

MANIFEST_NAME = "_manifest.json"
FORMAT = "paraspeechclap-annotations"
#: the Parquet schema-metadata key of a shard's provenance (the key ``embed`` uses for its Parquet)
SHARD_METADATA_KEY = b"paraspeechclap"
#: the fixed columns of a shard and their Arrow types (the embedding is a fixed-size list of ``embedding.dim``)
SHARD_COLUMNS = {"row": "int64", "id": "string", "split": "string", "audio": "struct<bytes: binary, path: string>",
                 "duration": "double", "status": "string",
                 "error": "string", "embedding": "fixed_size_list<float | halffloat>", "tags": "list<string>",
                 "caption": "string"}


class ShardInfo(Record):
    index: NonNegativeInt
    split: Optional[str] = None  # version 2
    num_rows: Optional[NonNegativeInt] = None  # version 2
    rows: Optional[list[NonNegativeInt]] = None  # version 1: [first, end)
    ok: NonNegativeInt
    failed: NonNegativeInt
    audio_seconds: NonNegativeFloat
    bytes: NonNegativeInt
    sha256: Optional[str] = None  # absent in records written before checksums
    completed_at: str


class InputInfo(Record):
    inputs: list[str]
    audio_root: Optional[str]
    split: Optional[str]  # None: each row's own split, else its manifest's name's, else train
    rows: NonNegativeInt
    digest: str
    splits: Optional[dict[str, NonNegativeInt]] = None  # version 2: shards per split
    carried: Optional[list[dict[str, Any]]] = None  # version 2: the input fields carried into the shards


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


class AudioRef(Record):
    """Version 2's ``audio``: a datasets ``Audio`` struct (the path; the bytes left empty)."""

    bytes: Optional[bytes] = None
    path: Optional[StrictStr]


class AnnotationShardRow(Record):
    """One row of a shard (attribute and probability columns beside these, see the module docstring)."""

    row: NonNegativeInt
    id: StrictStr
    split: Optional[StrictStr] = None  # version 2
    audio: Union[AudioRef, StrictStr, None]  # version 2: an Audio struct; version 1: the path
    duration: Optional[NonNegativeFloat]
    status: Literal["ok", "error"]
    error: Optional[StrictStr]
    embedding: Optional[list[float]]
    tags: Optional[list[StrictStr]]
    caption: Optional[StrictStr]


ANNOTATION_MANIFEST = declare(Contract(
    "annotation-manifest", 2, AnnotationManifest,
    "annotate's _manifest.json (annotate resumes from it; index, search and serve read it)",
    stamp=FieldStamp("format", FORMAT, "version"), oldest=1, upgrades={1: unchanged}))
ANNOTATION_SHARD = declare(Contract(
    "annotation-shard", 2, AnnotationShardRow,
    "a row of an annotation shard (Parquet; read by index, search, serve and datasets.load_dataset); the stamp "
    "belongs in the shard's schema metadata, not in its rows", upgrades={0: unchanged, 1: unchanged}))
