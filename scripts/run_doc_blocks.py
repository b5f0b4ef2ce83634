#!/usr/bin/env python
"""Run every Python and shell code block of README.md and docs/*.md, as a reader would, and report each one.

    python scripts/run_doc_blocks.py                 # every doc, slow blocks left out (what tests/test_docs.py runs)
    python scripts/run_doc_blocks.py --all           # slow blocks too
    python scripts/run_doc_blocks.py docs/rerank.md  # one doc
    python scripts/run_doc_blocks.py --list          # the blocks and their marks, nothing run

Blocks: fenced ```python (or py) blocks run in Python; ```bash, ```sh and ```shell blocks run with ``bash -e``; in a
```console block the lines starting with ``$ `` run with bash (continued by a trailing backslash), the others are
output and are not checked. Other fences (json, yaml, plain) are text.

One session per doc: a fresh working folder, prepared with the small files the docs name (:data:`FILES`), one Python
interpreter for all of the doc's Python blocks (a later block uses the names an earlier one defined), shell blocks in
the same folder, in document order. Offline: HF_HUB_OFFLINE=1 with an empty Hugging Face cache; ``paraspeechclap`` and
``python`` are this interpreter with this repository first on the path; ``scripts/`` and ``.venv/bin/python`` are
there as in the repository root. A block runs as written unless the line before it marks it:

    <!-- doc-test: skip: REASON -->   never run (needs the hub, a GPU, a cluster, installs packages, ...)
    <!-- doc-test: slow: REASON -->   run only with --all (a valid but long block)

and hidden set-up, run in place, not shown by a Markdown renderer (what stands in for the reader's own objects; a
skip or slow mark on the line before it applies to it too):

    <!-- doc-test: setup python
    my_asr_wer = lambda audio: 0.1
    -->

Exit code 0 when every block that ran passed, 1 otherwise, 2 for a malformed mark.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_LANGS = {"python", "py"}
SHELL_LANGS = {"bash", "sh", "shell", "console"}
BLOCK_TIMEOUT = 240  # seconds an ordinary block may run (one that starts a server and waits fails here)
SLOW_TIMEOUT = 1800  # seconds a block marked slow may run (--all)

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
_MARK = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<mode>skip|slow)\s*:\s*(?P<reason>\S.*?)\s*-->\s*$")
_SETUP = re.compile(r"^\s*<!--\s*doc-test:\s*setup\s+(?P<lang>python|bash)\s*$")


class MarkError(ValueError):
    """A ``doc-test`` mark the runner cannot read, named by file and line."""


@dataclass
class Block:
    """One code block: where it is, its language, its code, and how it is run (run, skip, slow or setup)."""

    doc: Path
    line: int  # 1-based line of the block's first code line
    lang: str
    code: str
    mode: str = "run"
    reason: str = ""

    @property
    def kind(self) -> str:
        return "python" if self.lang in PYTHON_LANGS else "shell"

    @property
    def where(self) -> str:
        try:
            return f"{self.doc.resolve().relative_to(ROOT)}:{self.line}"
        except ValueError:
            return f"{self.doc}:{self.line}"


@dataclass
class Result:
    block: Block
    status: str  # passed, failed, skipped
    seconds: float = 0.0
    output: str = ""


def discover(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md, so a new doc is run without being listed anywhere."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def _console(code: str) -> str:
    """The commands of a console transcript: ``$ `` lines and their backslash continuations."""
    commands, going_on = [], False
    for line in code.splitlines():
        if going_on:
            commands.append(line)
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            commands.append("")  # output: kept as a blank line so that line numbers stay the doc's
            continue
        going_on = line.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def _dedent(text: str, indent: int) -> str:
    """A block's line without the indentation of its fence (a block inside a list item is indented with it)."""
    return text[indent:] if text[:indent].strip() == "" else text.lstrip()


def parse(doc: Path) -> list[Block]:
    """The executable blocks of one Markdown file, each with its mark; raises :class:`MarkError` on a bad mark."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str, int] | None = None  # (mode, reason, line) of a mark waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        setup = _SETUP.match(line)
        if setup:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->"), None)
            if end is None:
                raise MarkError(f"{doc}:{i + 1}: a doc-test setup comment without its closing '-->' line")
            mode, reason = (pending[0], pending[1]) if pending else ("setup", "")  # set-up for a slow block is slow
            blocks.append(Block(doc, i + 2, setup["lang"], "\n".join(lines[i + 1:end]) + "\n", mode, reason))
            pending = None
            i = end + 1
            continue
        if "doc-test:" in line:
            mark = _MARK.match(line)
            if not mark:
                raise MarkError(f"{doc}:{i + 1}: unreadable mark {line.strip()!r}; expected "
                                "'<!-- doc-test: skip: REASON -->', 'slow: REASON' or a 'setup python|bash' comment")
            pending = (mark["mode"], mark["reason"], i + 1)
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            close = re.compile(rf"^\s*{re.escape(fence['fence'][0])}{{{len(fence['fence'])},}}\s*$")
            end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), len(lines))
            indent = len(fence["indent"])
            code = "\n".join(_dedent(text, indent) for text in lines[i + 1:end])
            lang = fence["lang"].lower()
            if lang in PYTHON_LANGS | SHELL_LANGS:
                code = _console(code) if lang == "console" else code + "\n"
                mode, reason = (pending[0], pending[1]) if pending else ("run", "")
                blocks.append(Block(doc, i + 2, lang, code, mode, reason))
            elif pending:
                raise MarkError(f"{doc}:{pending[2]}: a mark before a {lang or 'plain'} block, which is never run")
            pending = None
            i = end + 1
            continue
        if pending and line.strip():
            raise MarkError(f"{doc}:{pending[2]}: a mark must stand on the line before its code block")
        i += 1
    if pending:
        raise MarkError(f"{doc}:{pending[2]}: a mark with no code block after it")
    return blocks


# ---------------------------------------------------------------------------------------------- the working folder

def _tone(seconds: float, freq: float, rate: int = 16000, seed: int = 0):
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * noise).astype(np.float32), rate


def _speech(text: str, pitch: int, speed: int, seed: int):
    """espeak-ng speech (mono float32, its rate) when espeak-ng is installed, else a tone of about the same length."""
    import io

    import soundfile as sf

    if shutil.which("espeak-ng"):
        done = subprocess.run(["espeak-ng", "-p", str(pitch), "-s", str(speed), "--stdout", text], capture_output=True)
        if done.returncode == 0 and done.stdout:
            wave, rate = sf.read(io.BytesIO(done.stdout), dtype="float32")
            return wave, rate
    return _tone(0.08 * len(text.split()) * 175 / speed + 0.5, 80 + 2.5 * pitch, seed=seed)


def _write(path: Path, audio) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio[0], audio[1])


def _layout(folder: Path) -> None:
    """A three-iteration TTS output layout for two prompts, with WER files."""
    (folder / "iter_1").mkdir(parents=True)
    (folder / "iter_1" / "input_descriptions.txt").write_text("A deep voice speaking slowly.\nA high-pitched voice.\n")
    for k in (1, 2, 3):
        for i in (0, 1):
            _write(folder / f"iter_{k}" / "audios" / f"{i}.wav", _speech("The quick brown fox jumps.", 15 + 30 * k,
                                                                         120 + 40 * i, k + i))
        (folder / f"iter_{k}" / "wer_per_example.txt").write_text(f"0.{k}\n0.{4 - k}\n")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


#: the small files the docs name, made in every session's working folder: name -> maker(path)
FILES = {
    "a.wav": lambda p: _write(p, _speech("A deep voice speaking slowly.", 20, 120, 1)),
    "b.wav": lambda p: _write(p, _speech("A high pitched voice talking fast.", 80, 220, 2)),
    "clips": lambda p: [_write(p / f"clip{k}.wav", _speech(f"Clip number {k} is here.", 20 + 30 * k, 160, k))
                        for k in range(3)],
    "talk.flac": lambda p: _write(p, _concat([_speech("Now I am calm and slow.", 30, 110, 3),
                                              _speech("And now I am fast and high!", 85, 260, 4)] * 3)),
    "manifest.jsonl": lambda p: _jsonl(p, [{"path": "a.wav"}, {"path": "b.wav"}]),
    "TTS_OUT": _layout,
    "takes": lambda p: [_write(p / f"take-{k}.wav", _speech("Please speak in a whisper.", 20 + 35 * k, 150, k))
                        for k in range(1, 4)],
    "candidates.jsonl": lambda p: _jsonl(p, [
        {"id": "p1", "caption": "A deep voice speaking slowly.", "candidates": ["a.wav", "b.wav"], "wer": [0.1, 0.3]},
        {"id": "p2", "caption": "A high-pitched voice.", "candidates": ["a.wav", "b.wav"], "wer": [0.0, 0.05]}]),
}


def _concat(parts):
    import numpy as np
    import soxr

    rate = parts[0][1]
    return np.concatenate([p[0] if p[1] == rate else soxr.resample(p[0], p[1], rate) for p in parts]), rate


def prepare(workdir: Path, tools: Path) -> dict[str, str]:
    """Fill ``workdir`` with :data:`FILES` and ``tools`` with the commands; return the environment blocks run in."""
    for name, make in FILES.items():
        make(workdir / name)
    os.symlink(ROOT / "scripts", workdir / "scripts")
    # wrappers, not links: a venv's interpreter finds its packages only when run by its own path
    commands = {tools / "python": "", tools / "python3": "", workdir / ".venv" / "bin" / "python": "",
                tools / "paraspeechclap": " -m paraspeechclap"}
    for path, arguments in commands.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}"{arguments} "$@"\n')
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tools / "hf-home"), "PARASPEECHCLAP_CACHE": str(tools / "cache"),
           "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONSTARTUP", None)
    return env


# ---------------------------------------------------------------------------------------------- one doc's session

# the interpreter a doc's Python blocks share: a block per line of stdin, its outcome per line on the results fd
_SERVER = r"""
import json, os, sys, traceback
results = os.fdopen(int(sys.argv[1]), "w")
namespace = {"__name__": "__main__"}
for request in sys.stdin:
    block = json.loads(request)
    try:
        exec(compile("\n" * (block["line"] - 1) + block["code"], block["file"], "exec"), namespace)
        error = None
    except BaseException:  # SystemExit and KeyboardInterrupt fail the block too
        error = traceback.format_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    results.write(json.dumps({"error": error}) + "\n")
    results.flush()
"""


class Session:
    """A doc's working folder, its environment and its Python interpreter (started on the first Python block)."""

    def __init__(self, doc: Path):
        self.doc = doc
        self.base = Path(tempfile.mkdtemp(prefix="doc-test-"))
        self.workdir = self.base / "work"
        self.workdir.mkdir()
        self.env = prepare(self.workdir, self.base / "tools")
        self.log = open(self.base / "python.log", "w+b")  # noqa: SIM115 - closed in close()
        self.python: subprocess.Popen | None = None
        self.results = None

    def _start(self) -> None:
        read, write = os.pipe()
        self.python = subprocess.Popen([sys.executable, "-c", _SERVER, str(write)], cwd=self.workdir, env=self.env,
                                       stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
                                       pass_fds=(write,), start_new_session=True)
        os.close(write)
        self.results = os.fdopen(read, "r")

    def run(self, block: Block, timeout: float = BLOCK_TIMEOUT) -> tuple[bool, str]:
        """Run one block; (passed, what it printed or the error)."""
        return self._python(block, timeout) if block.kind == "python" else self._shell(block, timeout)

    def _python(self, block: Block, timeout: float) -> tuple[bool, str]:
        if self.python is None:
            self._start()
        start = self.log.seek(0, os.SEEK_END)
        request = {"file": str(block.doc.resolve()), "line": block.line, "code": block.code}
        try:
            self.python.stdin.write((json.dumps(request) + "\n").encode())
            self.python.stdin.flush()
        except BrokenPipeError:
            return False, "the doc's Python session has ended (an earlier block killed it)"
        ready, _, _ = select.select([self.results], [], [], timeout)
        line = self.results.readline() if ready else ""
        self.log.seek(start)
        printed = self.log.read().decode(errors="replace")
        if not line:
            self._stop_python()
            return False, printed + (f"\ntimed out after {timeout:.0f} s" if not ready else "\nthe interpreter died")
        error = json.loads(line)["error"]
        return error is None, printed + (error or "")

    def _shell(self, block: Block, timeout: float) -> tuple[bool, str]:
        script = self.base / f"block-{block.line}.sh"
        script.write_text(block.code)
        process = subprocess.Popen(["bash", "-e", str(script)], cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            out, _ = process.communicate()
            return False, out.decode(errors="replace") + f"\ntimed out after {timeout:.0f} s"
        _kill_group(process)  # what the block left running in the background (a server) ends with it
        return process.returncode == 0, out.decode(errors="replace") + (
            f"\nexit status {process.returncode}" if process.returncode else "")

    def _stop_python(self) -> None:
        if self.python is not None:
            try:
                self.python.stdin.close()
                self.python.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                pass
            _kill_group(self.python)
            self.python = None

    def close(self) -> None:
        self._stop_python()
        if self.results is not None:
            self.results.close()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _kill_group(process: subprocess.Popen) -> None:
    """End a block's process group (its own session): the process and anything it started."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except (ProcessLookupError, PermissionError):
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_doc(doc: Path, include_slow: bool = False, on_result=None, timeout: float = BLOCK_TIMEOUT) -> list[Result]:
    """Run one doc's blocks in one session, in order; skipped and (without ``include_slow``) slow blocks are reported
    with their reasons, not run."""
    blocks = parse(doc)
    results: list[Result] = []
    session = None
    try:
        for block in blocks:
            if block.mode == "skip" or (block.mode == "slow" and not include_slow):
                result = Result(block, "skipped", output=f"{block.mode}: {block.reason}")
            else:
                session = session or Session(doc)
                start = time.monotonic()
                ok, output = session.run(block, SLOW_TIMEOUT if block.mode == "slow" else timeout)
                result = Result(block, "passed" if ok else "failed", time.monotonic() - start, output)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if session is not None:
            session.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", nargs="*", type=Path, help="Markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--all", action="store_true", help="run the blocks marked slow too")
    parser.add_argument("--list", action="store_true", help="list the blocks and their marks; run nothing")
    parser.add_argument("--json", type=Path, help="also write every result to this JSON file")
    parser.add_argument("--timeout", type=float, default=BLOCK_TIMEOUT,
                        help=f"seconds an ordinary block may run (default %(default)s; slow blocks: {SLOW_TIMEOUT})")
    args = parser.parse_args(argv)
    docs = args.docs or discover()
    try:
        parsed = {doc: parse(doc) for doc in docs}
    except MarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for blocks in parsed.values():
            for b in blocks:
                print(f"{b.where:32} {b.lang:8} {b.mode:6} {b.reason}")
        return 0

    def show(result: Result) -> None:
        b = result.block
        print(f"{result.status:8} {result.seconds:6.1f}s  {b.where:32} {b.lang:8} "
              f"{result.output if result.status == 'skipped' else ''}", flush=True)
        if result.status == "failed":
            print("    " + "\n    ".join(result.output.strip().splitlines()[-40:]), flush=True)

    results = [r for doc in docs for r in run_doc(doc, include_slow=args.all, on_result=show, timeout=args.timeout)]
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")}
    print(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
          f"({sum(r.seconds for r in results):.0f} s of blocks)")
    if args.json:
        args.json.write_text(json.dumps([{"where": r.block.where, "lang": r.block.lang, "mode": r.block.mode,
                                          "status": r.status, "seconds": round(r.seconds, 2), "reason": r.block.reason}
                                         for r in results], indent=1) + "\n")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
