"""The registry of released checkpoints (data in releases.json) and the import layering around loading."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from paraspeechclap.loading import registry

PACKAGE = Path(registry.__file__).resolve().parents[1]
PINNED = "e80ad8eb199f7573f07f617c15a7497504151838"


def test_released_aliases_and_their_file_names():
    bundles = registry.bundles()
    assert sorted(bundles) == ["combined", "intrinsic", "situational"]
    for name, bundle in bundles.items():
        assert bundle.repo_id == f"ajd12342/paraspeechclap-{name}"
        # the repos hold slap-*; the release README says paraspeechclap-*: both accepted, slap-* first
        assert bundle.filenames == (f"slap-{name}.pth.tar", f"paraspeechclap-{name}.pth.tar")
        assert bundle.revision is None and bundle.sample_rate == 16000 and bundle.embedding_dim == 768
        assert bundle.speech_model == "microsoft/wavlm-large"
        assert bundle.text_model == "ibm-granite/granite-embedding-278m-multilingual"


def test_the_pinned_intrinsic_hash_applies_only_to_its_commit_and_file():
    bundle = registry.get_bundle("intrinsic")
    sha = "22b37acc1bb27a26034614b6eab1562131a4197b86fd0221e45350f927663ad2"
    assert bundle.expected_sha256("slap-intrinsic.pth.tar", PINNED) == sha
    assert bundle.expected_sha256("slap-intrinsic.pth.tar", None, revision=PINNED) == sha
    assert bundle.expected_sha256("slap-intrinsic.pth.tar", "f" * 40) is None
    assert bundle.expected_sha256("slap-intrinsic.pth.tar", None, revision="main") is None
    assert bundle.expected_sha256("paraspeechclap-intrinsic.pth.tar", PINNED) is None
    assert "ajd12342/paraspeechclap-intrinsic" in bundle.describe() and "main" in bundle.describe()


def _entry(**changes):
    entry = {"name": "x", "repo_id": "o/x", "filenames": ["x.pth.tar"], "revision": None, "checksums": [],
             "speech_model": "s", "text_model": "t", "embedding_dim": 8, "sample_rate": 16000}
    entry.update(changes)
    return entry


@pytest.mark.parametrize("changes, message", [
    ({"repo_id": "no-slash"}, "repo_id"),
    ({"filenames": []}, "file name"),
    ({"embedding_dim": "768"}, "embedding_dim"),
    ({"checksums": [{"revision": "main", "filename": "x.pth.tar", "sha256": "0" * 64}]}, "40-hex"),
    ({"checksums": [{"revision": PINNED, "filename": "other.pth.tar", "sha256": "0" * 64}]}, "among"),
    ({"checksums": [{"revision": PINNED, "filename": "x.pth.tar", "sha256": "ABC"}]}, "64-hex"),
    ({"sha": "x"}, "unknown keys"),
])
def test_a_malformed_registry_is_refused(tmp_path, changes, message):
    path = tmp_path / "releases.json"
    path.write_text(json.dumps({"bundles": [_entry(**changes)]}))
    with pytest.raises(registry.RegistryError, match=message):
        registry.read_registry(path)
    path.write_text(json.dumps({"bundles": [_entry(), _entry()]}))
    with pytest.raises(registry.RegistryError, match="twice"):
        registry.read_registry(path)


def test_registry_reads_without_torch():
    code = ("import sys; from paraspeechclap.loading import get_bundle; get_bundle('combined'); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def _project_imports(path: Path) -> set[str]:
    """Absolute names of the paraspeechclap modules a source file imports (top level or inside functions)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("paraspeechclap")}


def test_model_and_encoders_never_import_loading():
    files = [PACKAGE / "model.py", PACKAGE / "hub.py", PACKAGE / "train" / "mini.py",
             *sorted((PACKAGE / "encoders").glob("*.py"))]
    for path in files:
        bad = {m for m in _project_imports(path)
               if m.startswith(("paraspeechclap.loading", "paraspeechclap.checkpoints"))}
        assert not bad, f"{path.name} imports {sorted(bad)}: loading sits above the model and the encoders"
    assert _project_imports(PACKAGE / "train" / "mini.py") >= {"paraspeechclap.hub.fetch_encoder_files"}
    assert _project_imports(PACKAGE / "hub.py") == set(), "hub.py is the bottom layer"
