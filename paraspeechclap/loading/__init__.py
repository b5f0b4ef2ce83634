"""Loading and saving models, apart from the model: registry of released checkpoints, resolvers and loaders.

``registry``  the released checkpoints as data (``releases.json``): repo, file-name candidates, revision, SHA-256
``resolve``   a registry bundle -> a verified local checkpoint (hub listing, cache fallback, checksum)
``state``     reading released files (weights-only) and fitting them to the model strictly
``loaders``   packaged models (``mini``), released aliases and files, ``save_pretrained`` folders (local / hub)
``save``      ``save_pretrained`` folders and the released format, written through :mod:`paraspeechclap.fileio`

Hub access and package model folders live one layer below, in :mod:`paraspeechclap.hub`, which the model and
the encoders use too; neither of them imports this package.
"""
from __future__ import annotations

from ..lazy import lazy_exports

# module that defines them -> names; imported on first use, so that e.g. the registry is readable without torch
__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "paraspeechclap.hub": ["HubUnavailableError", "fetch_encoder_files", "fetch_hub_folder", "package_model_dir"],
    ".loaders": ["PAPER_EMBEDDING_DIM", "PAPER_SPEECH_MODEL", "PAPER_TEXT_MODEL", "build_from_encoders",
                 "load_folder", "load_model", "load_released_file", "packaged_models"],
    ".registry": ["Bundle", "Checksum", "bundles", "get_bundle"],
    ".resolve": ["ReleaseNotFoundError", "ResolvedCheckpoint", "resolve_checkpoint"],
    ".save": ["save_pretrained", "save_released_format"],
    ".state": ["CheckpointError", "adapt_state_dict", "load_weights", "read_state_dict"],
})
