"""Every file the project writes and reads, declared once: fields (pydantic v2 models) and a version per kind.

    from paraspeechclap import schemas
    schemas.write("out/suites.json", doc, "evaluation-suite")      # stamps the kind and version, checks, writes
    doc = schemas.read("out/suites.json", "evaluation-suite")      # checks, upgrades an older version, returns a dict
    schemas.validate(obj, "attribute-table", source="table.json")  # the same for an object already parsed

Writers stamp (``"schema": "paraspeechclap.<kind>/<version>"``, or the key a file already had: a saved model's
``model_type`` + ``format_version``, the annotation manifest's ``format`` + ``version``); readers validate and fail
with :class:`SchemaError`, whose message names the file, the field and the expected version. Older versions are
still read: each contract declares the upgrade from every older version, and a file without a stamp (written
before versions existed) is version 0. ``python -m paraspeechclap.schemas`` lists the contracts and prints their
JSON Schema. Imports pydantic and nothing heavy (no torch); a contract's module is imported when first needed.

Kinds (module): ``manifest-row`` (:mod:`.manifest`); ``synth-row``, ``synth-dropped-row``, ``synth-verification``,
``synth-stored-verification``, ``synth-voice-calibration``, ``ownership-record`` (:mod:`.corpus`);
``evaluation-suite``, ``evaluation-metrics``, ``report-manifest`` (:mod:`.evaluation`); ``attribute-table``
(:mod:`.attribute_table`); ``annotation-manifest``, ``annotation-shard`` (:mod:`.annotation`); ``rerank-selection``
(:mod:`.rerank`); ``run-config``, ``checkpoint-complete`` (:mod:`.training`); ``saved-model-config``
(:mod:`.saved_model`).
"""
from __future__ import annotations

from ..lazy import lazy_exports

# the API from .core, imported on first use (``schemas.columns`` needs no pydantic)
__getattr__, __dir__, __all__ = lazy_exports(__name__, {".core": [
    "Contract", "SchemaError", "all_contracts", "check", "contract", "dumps", "dumps_row", "parse", "read", "stamp",
    "stamped", "validate", "write", "write_jsonl"]})
