"""Readers for best-of-N inputs: the ParaSpeechCaps TTS output layout, JSONL manifests and a plain folder.

Every reader returns a :class:`RerankInput`: a list of prompts, each with its candidates, plus the
problems found on the way (``issues``). Problems never shift indices and never stop the read:
a blank prompt line is reported and skipped (the prompt index stays the line number), a missing
candidate file is reported and that candidate is left out, a prompt left with no candidate is
reported and kept (with no candidates) so that the caller can count it as failed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Candidate",
    "Prompt",
    "RerankInput",
    "InputError",
    "COMMON_FILES",
    "read_layout",
    "read_manifest",
    "read_folder",
    "read_input",
]

PROMPTS_FILE = "input_descriptions.txt"
WER_FILE = "wer_per_example.txt"
TRANSCRIPTIONS_FILE = "output_transcriptions.txt"
COMMON_FILES = ("input_genders.txt", "input_negative_descriptions.txt", "input_texts.txt")
_ITER_DIR = re.compile(r"^iter_(\d+)$")
#: per-candidate output fields; manifest columns may not take these names
RESERVED_COLUMNS = frozenset(
    {"candidate", "iteration", "path", "score", "combined", "rank", "chosen", "eligible", "reasons", "error",
     "output", "status", "margin", "flags", "prompt_index", "prompt_id", "name"}
)


class InputError(ValueError):
    """The input as a whole cannot be read (no prompts file, malformed manifest, ...)."""


@dataclass
class Candidate:
    """One candidate audio of a prompt.

    ``index`` is the 0-based position among the prompt's candidates as given (for the layout:
    iteration number - 1, even when earlier iterations are missing for this prompt), and is the
    tie-break key. ``label`` is what people call it: the iteration number (layout) or the
    0-based position in the manifest's list or the folder. ``name`` is the file as the input names it:
    ``iter_K/audios/<i>.wav`` (layout), the path as written in the manifest, the file name (folder).
    ``columns`` holds external per-candidate values (``wer`` as a float or None, ``transcription``,
    manifest extra columns).
    """

    index: int
    label: int
    path: Path
    columns: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or Path(self.path).name


@dataclass
class Prompt:
    """A style prompt and its candidates. ``index`` is the line number (layout) or row (manifest)."""

    index: int
    id: str
    caption: str
    candidates: list[Candidate] = field(default_factory=list)
    output_stem: str = ""  # the chosen file is written as <output_stem><its suffix>


@dataclass
class RerankInput:
    """What a reader found: prompts in input order, problems, and layout extras."""

    kind: str  # "layout" | "manifest" | "folder"
    source: Path
    prompts: list[Prompt]
    issues: list[str] = field(default_factory=list)
    num_lines: int = 0  # layout: number of prompt lines, blank ones included
    iterations: list[int] = field(default_factory=list)  # layout: iteration numbers found
    common_files: list[Path] = field(default_factory=list)  # layout: optional files to copy
    per_prompt_files: dict[str, str] = field(default_factory=dict)  # column -> file name to write


def _decode(raw: bytes, first: bool) -> str:
    """One line as text: UTF-8, without its line ending (and without a byte-order mark on the first line)."""
    text = raw.rstrip(b"\r\n").decode("utf-8")
    return text[1:] if first and text.startswith("\ufeff") else text


def _bad_utf8(exc: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1})"


def _read_lines(path: Path, issues: list[str]) -> list[str | None]:
    """Lines of a text file without line endings (a trailing newline adds no empty line).

    A line that is not valid UTF-8 is reported in ``issues`` with its line number and read as None, so the
    lines after it keep their numbers.
    """
    lines: list[str | None] = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):  # \n, \r\n or \r
        try:
            lines.append(_decode(raw, lineno == 1))
        except UnicodeDecodeError as exc:
            issues.append(f"{path}:{lineno}: {_bad_utf8(exc)}; line ignored")
            lines.append(None)
    return lines


def _parse_float(text: Any) -> float | None:
    """A finite float from a number or string, else None (for WER lines like 'ERROR: ...')."""
    if isinstance(text, bool) or text is None:
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _iteration_dirs(base: Path) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for child in base.iterdir():
        match = _ITER_DIR.match(child.name)
        if match and child.is_dir():
            found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def _layout_columns(iters: dict[int, Path], num_lines: int, issues: list[str]) -> dict[str, dict[int, list | None]]:
    """Each iteration's optional per-prompt files, as lines ({column: {iteration: lines or None}})."""
    found: dict[str, dict[int, list | None]] = {"wer_text": {}, "transcription": {}}
    for k, folder in iters.items():
        for column, name in (("wer_text", WER_FILE), ("transcription", TRANSCRIPTIONS_FILE)):
            path = folder / name
            lines = found[column][k] = _read_lines(path, issues) if path.is_file() else None
            if lines is not None and len(lines) < num_lines:
                issues.append(f"{path}: {len(lines)} lines for {num_lines} prompts; later prompts carry no value")
        if not (folder / "audios").is_dir():
            issues.append(f"{folder / 'audios'}: folder not found; iteration {k} has no candidates")
    return found


def _layout_prompt(idx: int, caption: str, iters: dict[int, Path], files: dict[str, dict[int, list | None]],
                   issues: list[str]) -> Prompt:
    """Prompt ``idx`` with its candidate of every iteration that has one, and their per-prompt columns."""
    prompt = Prompt(index=idx, id=str(idx), caption=caption, output_stem=str(idx))
    for k, folder in iters.items():
        wav = folder / "audios" / f"{idx}.wav"
        if not wav.is_file():
            if (folder / "audios").is_dir():
                issues.append(f"{wav}: candidate file missing, skipped (prompt {idx})")
            continue
        columns: dict[str, Any] = {}
        for column, per_iter in files.items():
            lines = per_iter[k]
            if lines is not None:
                line = lines[idx] if idx < len(lines) else None
                columns[column] = line.strip() if line is not None else None
                if column == "wer_text":
                    columns["wer"] = _parse_float(columns[column])
        prompt.candidates.append(Candidate(index=k - 1, label=k, path=wav, columns=columns,
                                           name=f"{folder.name}/audios/{wav.name}"))
    if not prompt.candidates:
        issues.append(f"prompt {idx}: no candidate audio found in any iteration")
    return prompt


def _orphans(iters: dict[int, Path], lines: list[str | None], issues: list[str]) -> None:
    """Files in audios/ that match no prompt line reveal a shifted or mismatched prompts file."""
    for folder in iters.values():
        audios = folder / "audios"
        if not audios.is_dir():
            continue
        orphans = sorted(p.name for p in audios.glob("*.wav")
                         if not (p.stem.isdigit() and int(p.stem) < len(lines) and (lines[int(p.stem)] or "").strip()))
        if orphans:
            issues.append(f"{audios}: {len(orphans)} wav file(s) match no prompt line "
                          f"(e.g. {', '.join(orphans[:3])}); ignored")


def read_layout(base: str | Path) -> RerankInput:
    """Read ``<base>/iter_1..iter_N/audios/{i}.wav`` with prompts in ``iter_1/input_descriptions.txt``.

    N is discovered from the ``iter_<k>`` folders (gaps are reported). ``wer_per_example.txt`` and
    ``output_transcriptions.txt`` are optional per iteration; when present, line ``i`` is carried on
    candidate ``i`` as the ``wer`` (float or None) / ``wer_text`` and ``transcription`` columns.
    """
    base = Path(base)
    if not base.is_dir():
        raise InputError(f"{base}: not a folder")
    iters = _iteration_dirs(base)
    if not iters:
        raise InputError(f"{base}: no iter_<k> folders (expected iter_1/audios/0.wav, ...)")
    if 1 not in iters:
        raise InputError(f"{base}: iter_1 is missing; it holds {PROMPTS_FILE}")
    prompts_path = iters[1] / PROMPTS_FILE
    if not prompts_path.is_file():
        raise InputError(f"{prompts_path}: prompts file not found")
    issues: list[str] = []
    gaps = [k for k in range(1, max(iters) + 1) if k not in iters]
    if gaps:
        issues.append(f"{base}: iteration folders missing: {', '.join(f'iter_{k}' for k in gaps)}")
    lines = _read_lines(prompts_path, issues)
    files = _layout_columns(iters, len(lines), issues)
    prompts: list[Prompt] = []
    for idx, raw in enumerate(lines):
        if raw is None:
            continue  # not UTF-8: reported by _read_lines; the index stays the line number
        if not raw.strip():
            issues.append(f"{prompts_path}:{idx + 1}: blank prompt line, prompt {idx} skipped")
            continue
        prompts.append(_layout_prompt(idx, raw.strip(), iters, files, issues))
    _orphans(iters, lines, issues)
    per_prompt_files = {column: name for column, name in (("wer_text", WER_FILE), ("transcription", TRANSCRIPTIONS_FILE))
                        if any(v is not None for v in files[column].values())}
    return RerankInput(kind="layout", source=base, prompts=prompts, issues=issues, num_lines=len(lines),
                       iterations=list(iters), per_prompt_files=per_prompt_files,
                       common_files=[iters[1] / n for n in COMMON_FILES if (iters[1] / n).is_file()])


_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]*")  # used with fullmatch: no trailing newline slips in


def _manifest_row(entry: dict, where: str, row: int, seen_ids: dict[str, str], base: Path,
                  issues: list[str]) -> Prompt | None:
    """The prompt of one parsed manifest row, or None (reported in ``issues``) when the row is unusable."""
    caption = entry.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        issues.append(f"{where}: 'caption' missing or blank; row skipped")
        return None
    if "candidates" not in entry:
        issues.append(f"{where}: 'candidates' (the list of audio paths) missing; row skipped")
        return None
    cands = entry["candidates"]
    if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
        issues.append(f"{where}: 'candidates' must be a list of paths; row skipped")
        return None
    raw_id = entry.get("id", row)
    integer = isinstance(raw_id, int) and not isinstance(raw_id, bool)
    pid = raw_id if isinstance(raw_id, str) else str(raw_id) if integer else None
    if pid is None or not _SAFE_ID.fullmatch(pid):
        issues.append(f"{where}: id {raw_id!r} is not a plain file name; row skipped")
        return None
    folded = pid.casefold()  # output files named X.wav and x.wav are one file on many file systems
    if folded in seen_ids:
        same = "" if seen_ids[folded] == pid else f" (as {seen_ids[folded]!r}, ids differing only in case clash)"
        issues.append(f"{where}: duplicate id {pid!r}{same}; row skipped")
        return None
    seen_ids[folded] = pid
    columns: dict[str, list] = {}
    for key, value in entry.items():
        if key in ("id", "caption", "candidates"):
            continue
        if isinstance(value, list) and key in RESERVED_COLUMNS:
            issues.append(f"{where}: column {key!r} clashes with an output field; column ignored")
            continue
        if isinstance(value, list):
            if len(value) != len(cands):
                issues.append(
                    f"{where}: column {key!r} has {len(value)} values for {len(cands)} "
                    "candidates; column ignored"
                )
                continue
            numeric = all(_parse_float(v) is not None or v is None for v in value) and any(
                v is not None for v in value
            )
            columns[key] = [_parse_float(v) for v in value] if numeric else list(value)
    prompt = Prompt(index=row, id=pid, caption=caption.strip(), output_stem=pid)
    for j, cand in enumerate(cands):
        cand_path = Path(cand) if Path(cand).is_absolute() else base / cand
        if not cand_path.is_file():
            issues.append(f"{where}: candidate {j} {cand_path}: file missing, skipped")
            continue
        prompt.candidates.append(
            Candidate(index=j, label=j, path=cand_path, columns={k: v[j] for k, v in columns.items()}, name=cand)
        )
    if not prompt.candidates:
        issues.append(f"{where}: prompt {pid!r} has no candidate audio")
    return prompt


def read_manifest(path: str | Path) -> RerankInput:
    """Read a JSONL manifest: one ``{"id", "caption", "candidates": [paths], ...}`` object per line.

    Relative candidate paths are resolved against the manifest's folder. Any other key whose value
    is a list as long as ``candidates`` is a per-candidate column (e.g. ``"wer": [0.1, 0.3]``);
    numeric columns are carried as floats (None where a value is not a number). ``id`` is optional
    (default: the row number); it names the output file, so it must be a plain file name, and ids that
    differ only in case count as duplicates.

    Rows come from :func:`paraspeechclap.data.rows.read_rows` (the one reader of rows; also ``.jsonl.gz``), streamed.
    A bad row never stops the read: a line that is not UTF-8, not valid JSON or not an object, a row without
    ``caption`` or ``candidates``, a bad or duplicate id, and missing files are reported in ``issues`` with the
    line number and skipped (blank lines are ignored, and are not rows).
    """
    from ..data.rows import read_rows

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: manifest not found")
    if not path.name.lower().endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        raise InputError(f"{path}: a manifest is a .jsonl file (one JSON object per line)")
    issues: list[str] = []
    prompts: list[Prompt] = []
    seen_ids: dict[str, str] = {}
    row = -1
    for record in read_rows(path, require_audio=False):
        if record.ref == str(path):  # the file itself could not be read
            raise InputError(f"{path}: {record.error}")
        row += 1
        if not record.ok:
            issues.append(f"{record.ref}: {record.error}; row skipped")
            continue
        prompt = _manifest_row(record.fields, record.ref, row, seen_ids, path.parent, issues)
        if prompt is not None:
            prompts.append(prompt)
    if row < 0:
        raise InputError(f"{path}: manifest has no rows")
    return RerankInput(kind="manifest", source=path, prompts=prompts, issues=issues, num_lines=row + 1)


def read_folder(base: str | Path, caption: str) -> RerankInput:
    """A plain folder of candidate audio files (not recursive), all candidates of one prompt with ``caption``.

    Candidates are the folder's audio files (:data:`paraspeechclap.data.rows.AUDIO_SUFFIXES`) in name order;
    other entries are reported and ignored. The prompt's id, which names the chosen file, is the folder's
    name when that is a plain file name, else ``0``.
    """
    from ..data.rows import AUDIO_SUFFIXES

    base = Path(base)
    if not base.is_dir():
        raise InputError(f"{base}: not a folder")
    if not isinstance(caption, str) or not caption.strip():
        raise InputError(f"{base}: --caption must be a non-empty style caption, got {caption!r}")
    issues: list[str] = []
    entries = sorted(base.iterdir(), key=lambda p: p.name)
    files = [p for p in entries if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()]
    others = [p.name for p in entries if p not in files]
    if others:
        issues.append(f"{base}: {len(others)} entr{'y' if len(others) == 1 else 'ies'} that are not audio files "
                      f"ignored (e.g. {', '.join(others[:3])})")
    if not files:
        raise InputError(f"{base}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in this folder")
    pid = base.resolve().name if _SAFE_ID.fullmatch(base.resolve().name) else "0"
    prompt = Prompt(index=0, id=pid, caption=caption.strip(), output_stem=pid)
    prompt.candidates = [Candidate(index=j, label=j, path=p, name=p.name) for j, p in enumerate(files)]
    return RerankInput(kind="folder", source=base, prompts=[prompt], issues=issues, num_lines=1)


def read_input(source: str | Path, caption: str | None = None) -> RerankInput:
    """A layout folder, a ``.jsonl`` manifest, or (with ``caption``) a plain folder of candidates, by what
    ``source`` is. The layout and the manifest carry their own captions, so ``caption`` is refused for them."""
    source = Path(source)
    if source.is_dir():
        if _iteration_dirs(source):
            if caption is not None:
                raise InputError(f"{source}: a layout (iter_<k> folders) takes its captions from {PROMPTS_FILE}; "
                                 "--caption is for a plain folder of candidates")
            return read_layout(source)
        if caption is None:
            raise InputError(f"{source}: no iter_<k> folders; for a plain folder of candidates give the style "
                             "caption they should match (--caption \"...\")")
        return read_folder(source, caption)
    if source.is_file():
        if caption is not None:
            raise InputError(f"{source}: a manifest carries a caption per row; --caption is for a plain folder")
        return read_manifest(source)
    raise InputError(f"{source}: not found (expected a layout folder, a .jsonl manifest or a folder of candidates)")
