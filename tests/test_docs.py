"""Every Python and shell block of README.md and docs/*.md runs as written (scripts/run_doc_blocks.py), offline with the
embedded ``mini`` model; a block that cannot run here is marked in the Markdown with its reason and reported as
skipped. Blocks marked ``slow`` run with ``scripts/run_doc_blocks.py --all``. The runner itself is tested first, on
small Markdown files written here."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from repo_scripts import load_script  # noqa: E402

docs = load_script("run_doc_blocks")
ROOT = Path(__file__).resolve().parents[1]


def _doc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ the runner

def test_blocks_of_a_doc_share_one_session_in_order(tmp_path):
    doc = _doc(tmp_path, """# A doc

```python
import soundfile as sf


def f():
    return 41


x = f()
info = sf.info("a.wav")          # the prepared files are there
```

```bash
echo "from bash" > made.txt
paraspeechclap --help | head -1 > usage.txt
```

<!-- doc-test: setup python
x += 1
-->

```python
assert x == 42, x                  # names carry over, the hidden set-up ran in place
assert open("made.txt").read() == "from bash\\n" and open("usage.txt").read().startswith("usage:")
```

```console
$ test -f made.txt && \\
  echo continued
continued
$ python -c "import numpy, paraspeechclap, os; assert os.environ['HF_HUB_OFFLINE'] == '1'"
$ .venv/bin/python -c "import soundfile" && python3 scripts/run_doc_blocks.py --help > /dev/null
```
""")
    results = docs.run_doc(doc)
    assert [(r.block.lang, r.block.mode, r.status) for r in results] == [
        ("python", "run", "passed"), ("bash", "run", "passed"), ("python", "setup", "passed"),
        ("python", "run", "passed"), ("console", "run", "passed")], [r.output for r in results]


def test_a_block_inside_a_list_item_loses_the_item_indent(tmp_path):
    doc = _doc(tmp_path, "- a step:\n\n  ```python\n  def f():\n      return 1\n  assert f() == 1\n  ```\n")
    [block] = docs.parse(doc)
    assert block.code == "def f():\n    return 1\nassert f() == 1\n"
    assert docs.run_doc(doc)[0].status == "passed"


def test_a_failing_block_fails_and_names_its_doc_line(tmp_path):
    doc = _doc(tmp_path, "Text.\n\n```python\nx = 1\ny = undefined_name\n```\n\n```sh\nfalse\necho never\n```\n")
    results = docs.run_doc(doc)
    assert [r.status for r in results] == ["failed", "failed"]
    assert f'{doc.resolve()}", line 5' in results[0].output and "NameError" in results[0].output
    assert "never" not in results[1].output and "exit status 1" in results[1].output


def test_marked_blocks_are_skipped_with_their_reason(tmp_path):
    doc = _doc(tmp_path, """<!-- doc-test: skip: needs the Hugging Face hub -->
```python
raise SystemExit("must not run")
```

<!-- doc-test: slow: set-up of the slow block -->
<!-- doc-test: setup bash
touch slow-setup-ran
-->
<!-- doc-test: slow: about a minute -->
```bash
test -f slow-setup-ran
```

```json
{"not": "run"}
```
""")
    results = docs.run_doc(doc)
    assert [(r.status, r.output) for r in results] == [("skipped", "skip: needs the Hugging Face hub"),
                                                        ("skipped", "slow: set-up of the slow block"),
                                                        ("skipped", "slow: about a minute")]
    assert [r.status for r in docs.run_doc(doc, include_slow=True)] == ["skipped", "passed", "passed"]


@pytest.mark.parametrize("text, message", [
    ("<!-- doc-test: skip -->\n```python\npass\n```\n", "unreadable mark"),
    ("<!-- doc-test: skip: why -->\n\nSome text.\n```python\npass\n```\n", "on the line before"),
    ("<!-- doc-test: skip: why -->\n```json\n{}\n```\n", "never run"),
    ("<!-- doc-test: setup python\nx = 1\n", "closing '-->'"),
    ("```python\npass\n```\n<!-- doc-test: slow: why -->\n", "no code block after it"),
])
def test_malformed_marks_are_errors(tmp_path, text, message):
    with pytest.raises(docs.MarkError, match=message):
        docs.parse(_doc(tmp_path, text))


def test_discovery_finds_every_doc():
    found = docs.discover(ROOT)
    assert found[0] == ROOT / "README.md" and set(found[1:]) == set((ROOT / "docs").glob("*.md"))


# ------------------------------------------------------------------ the docs

@pytest.mark.parametrize("doc", docs.discover(ROOT), ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_blocks_run(doc):
    results = docs.run_doc(doc)
    for r in results:
        print(f"{r.status:8} {r.seconds:5.1f}s {r.block.where} {r.output if r.status == 'skipped' else ''}")
    failed = [r for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(f"{r.block.where} ({r.block.lang}) failed:\n" + "\n".join(
        r.output.strip().splitlines()[-30:]) for r in failed)
