"""lazy_exports: names imported on first access, listed by dir(), a clear AttributeError; the project's packages on it."""
from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGE = '''
from paraspeechclap.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {".heavy": ["VALUE", "twice"], "json": ["dumps"]},
                                             submodules=["heavy", "other"])
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A package `lazytoy` whose submodules count their imports (a stand-in for torch's cost)."""
    root = tmp_path / "lazytoy"
    root.mkdir()
    (root / "__init__.py").write_text(PACKAGE)
    (root / "heavy.py").write_text("import builtins\nbuiltins.lazytoy_loads += 1\nVALUE = 42\n\n"
                                   "def twice(x):\n    return 2 * x\n")
    (root / "other.py").write_text("NAME = 'other'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("builtins.lazytoy_loads", 0, raising=False)
    yield root
    for name in [m for m in sys.modules if m.split(".")[0] == "lazytoy"]:
        del sys.modules[name]


def test_names_load_their_module_on_first_access_only(toy):
    import builtins

    package = importlib.import_module("lazytoy")
    assert "lazytoy.heavy" not in sys.modules and builtins.lazytoy_loads == 0
    assert package.VALUE == 42 and package.twice(3) == 6
    from lazytoy import VALUE, twice  # noqa: F401  the `from` form goes through the same hook

    assert builtins.lazytoy_loads == 1
    assert package.other.NAME == "other" and package.heavy is sys.modules["lazytoy.heavy"]
    assert package.dumps is importlib.import_module("json").dumps  # an absolute module, not the package's own


def test_all_and_dir_list_every_name_before_any_is_loaded(toy):
    package = importlib.import_module("lazytoy")
    assert package.__all__ == ["VALUE", "dumps", "twice", "heavy", "other"]
    listed = dir(package)
    assert set(package.__all__) <= set(listed) and "__getattr__" in listed and listed == sorted(listed)
    assert "lazytoy.heavy" not in sys.modules


def test_unknown_names_raise_the_usual_attribute_error(toy):
    package = importlib.import_module("lazytoy")
    with pytest.raises(AttributeError, match=r"^module 'lazytoy' has no attribute 'missing'$"):
        package.missing
    with pytest.raises(ImportError, match="cannot import name 'missing' from 'lazytoy'"):
        exec("from lazytoy import missing", {})
    assert not hasattr(package, "NAME")  # a submodule's own names are not the package's


PACKAGES = ["paraspeechclap", "paraspeechclap.inference", "paraspeechclap.loading", "paraspeechclap.evaluate",
            "paraspeechclap.export", "paraspeechclap.schemas", "paraspeechclap.ttseval"]


def test_the_packages_import_and_list_their_names_without_torch():
    code = (f"import importlib, sys\nfor name in {PACKAGES!r}:\n"
            "    package = importlib.import_module(name)\n"
            "    assert set(package.__all__) <= set(dir(package)), name\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')]\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name):
    package = importlib.import_module(name)
    for attribute in package.__all__:
        assert getattr(package, attribute) is not None, f"{name}.{attribute}"
    with pytest.raises(AttributeError, match=rf"^module '{name}' has no attribute 'no_such_name'$"):
        package.no_such_name
