"""What a run trains: the import allow-list guarding ``model.factory``."""
import json

import pytest

from paraspeechclap.train import building as B
from paraspeechclap.train.config import ConfigError


def test_import_allow_list(monkeypatch):
    monkeypatch.delenv(B.IMPORT_ALLOW_ENV, raising=False)
    assert B._import("paraspeechclap.train.building.lr_lambda") is B.lr_lambda
    for bad in ("os.system", "subprocess:run", "paraspeechclapx.evil.f", "builtins.eval"):
        with pytest.raises(ConfigError, match="allow-list"):
            B._import(bad)
    monkeypatch.setenv(B.IMPORT_ALLOW_ENV, "json, tiny")
    assert B._import("json.dumps") is json.dumps
    with pytest.raises(ConfigError, match="allow-list"):
        B.build_model({"factory": "os.system"})
