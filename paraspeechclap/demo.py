"""``paraspeechclap demo``: the main job end to end, offline, on freshly synthesized speech.

Synthesizes a handful of clips with espeak-ng (voices held out from the mini model's training corpus, sentences it
never saw), then with the model: a zero-shot classification table per clip across the attributes it knows,
caption -> clip retrieval, and a best-of-N pick among candidates generated for one style prompt. Prints tables and
writes a small report (HTML with a similarity heatmap and per-attribute confusion plots).
"""
from __future__ import annotations

import argparse
import html
import io
import time
from dataclasses import dataclass
from pathlib import Path

HELP = "offline demonstration: synthesize clips, classify, retrieve and rerank them with a model"

# Attribute -> candidate classes (the zero-shot suites of the mini model's corpus).
ATTRIBUTES = {
    "pitch": ["deep", "medium-pitched", "high-pitched"],
    "rate": ["slow", "measured", "fast"],
    "whisper": ["normal", "whispered"],
    "range": ["monotonous", "singsong"],
}
# Sentences that are not in the synthetic corpus' sentence bank.
SENTENCES = [
    "The lighthouse keeper counted seven ships before the storm arrived.",
    "Please remember to water the tomatoes while I am away on Tuesday.",
    "A quiet library is the best place to finish a difficult crossword.",
    "Our neighbour built a wooden boat in his garage over the winter.",
    "The museum opens at nine, but the cafe serves breakfast from eight.",
    "She folded the map carefully and slipped it into her coat pocket.",
]


@dataclass
class DemoClip:
    name: str
    caption: str
    expected: dict  # attribute -> expected class (only the attributes the clip controls)
    accent: str
    timbre: str
    quality: str
    pitch: int
    wpm: int
    pitch_range: str
    sentence: str


CLIPS = [
    DemoClip("deep-slow-man", "A man with a very low voice talks slowly.", {"pitch": "deep", "rate": "slow"},
             "en-us-nyc", "m7", "normal", 5, 100, "100%", SENTENCES[0]),
    DemoClip("high-fast-woman", "A woman with a squeaky, very high voice speaks hurriedly.",
             {"pitch": "high-pitched", "rate": "fast"}, "en-us", "f4", "normal", 90, 280, "100%", SENTENCES[1]),
    DemoClip("whisper", "Someone whispers under their breath at an even pace.", {"whisper": "whispered"},
             "en", "m3", "whispered", 45, 165, "100%", SENTENCES[2]),
    DemoClip("monotone", "A narrator drones on without any melody.", {"range": "monotonous", "whisper": "normal"},
             "en-us", "robert", "normal", 45, 165, "0%", SENTENCES[3]),
    DemoClip("singsong", "A woman narrator speaks with a bouncy, tuneful intonation.",
             {"range": "singsong", "whisper": "normal"}, "en-us", "Andrea", "normal", 55, 165, "240%", SENTENCES[4]),
    DemoClip("fast-man", "A gentleman speaks at a brisk clip.", {"rate": "fast"},
             "en-gb-x-gbcwmd", "Hugo", "normal", 40, 280, "100%", SENTENCES[5]),
]
BEST_OF_N_PROMPT = "A man with a very low voice speaks very slowly."


WRITER = "paraspeechclap.demo"  # demo.json's "written_by": marks a report (and its "outputs" record) of ours
REPORT = "demo.json"


class OutputExistsError(FileExistsError):
    """The report folder holds a file, at a name the demo writes, that the demo did not write."""


def planned_files(candidates_n: int) -> list[str]:
    """Every file the demo writes, relative to its folder (demo.json, the record, last)."""
    audio = [f"audio/{clip.name}.wav" for clip in CLIPS] + [f"audio/candidate-{i}.wav" for i in range(candidates_n)]
    return [*audio, "similarity.png", "confusion.png", "index.html", REPORT]


def previous_record(out: Path) -> dict | None:
    """{relative path: digest} of what an earlier demo wrote into ``out`` (from its demo.json), else None."""
    from .fileio import read_record

    return read_record(out / REPORT, WRITER)


def check_output(out: Path, planned: list[str]) -> dict | None:
    """Raise :class:`OutputExistsError` if a planned file exists and is not the demo's own; return the record."""
    import os

    from .fileio import refuse_foreign

    if os.path.lexists(out) and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder")
    if not out.is_dir():
        return None
    if (out / "audio").is_symlink() or ((out / "audio").exists() and not (out / "audio").is_dir()):
        raise OutputExistsError(f"{out / 'audio'}: is a link or not a folder; refusing to write through it")
    record = previous_record(out)
    refuse_foreign(out, planned, record, writer="the demo", owner="an earlier demo", record_name=f"its {REPORT}",
                   error=OutputExistsError)
    return record


def commit_outputs(out: Path, files: dict[str, bytes], report: dict) -> None:
    """Write ``files`` and ``report`` (demo.json, with the record of the files) into ``out`` together.

    A new folder is built beside its name and renamed into place. Into an existing one the files are staged
    inside it and moved into place, demo.json last; files of an earlier demo that this one does not rewrite are
    then removed, and nothing else is touched.
    """
    import hashlib
    import json
    import os
    import shutil

    from .fileio import atomic_dir, atomic_write_bytes, remove_owned, temporary_name

    previous = check_output(out, [*files, REPORT])  # again: the folder may have changed while the model ran
    report = {**report, "written_by": WRITER,
              "outputs": {rel: "sha256:" + hashlib.sha256(data).hexdigest() for rel, data in files.items()}}
    everything = {**files, REPORT: (json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n").encode()}
    if not os.path.lexists(out):
        with atomic_dir(out) as stage:
            for rel, data in everything.items():
                atomic_write_bytes(stage / rel, data)
        return
    stage = temporary_name(out / ".demo")
    os.mkdir(stage, 0o777)
    try:
        for rel, data in everything.items():
            atomic_write_bytes(stage / rel, data)
        for rel in everything:  # demo.json, the record, is the last key
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / rel, out / rel)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if previous:
        remove_owned(out, [rel for rel in previous if rel not in everything], previous)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .modelspec import ModelSpec

    parser.add_argument("--out", default="demo-output",
                        help="report folder (default: demo-output); files the demo did not write are never replaced")
    parser.add_argument("--candidates-n", type=int, default=6, help="N for the best-of-N pick")
    parser.add_argument("--seed", type=int, default=0)
    ModelSpec.add_arguments(parser)


def _synthesize(clip: DemoClip, data_path: Path):
    from .audio import load_audio
    from .synth.engines import build_ssml, synthesize, text_to_ssml, variant_name

    voice = f"{clip.accent}+{variant_name(clip.timbre, clip.quality)}"
    wave, rate = synthesize("espeak", voice, build_ssml(text_to_ssml(clip.sentence), clip.pitch_range),
                            clip.pitch, clip.wpm, data_path)
    return load_audio((wave, rate))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _html_table(header: list[str], rows: list[list[str]], players: list[str] | None = None) -> str:
    """A table of escaped cells; ``players`` (one ready-made <audio> element per row) adds a "listen" column."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in [*header, *(["listen"] if players else [])])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r)
                   + (f"<td>{players[k]}</td>" if players else "") + "</tr>" for k, r in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def _player(files: dict[str, bytes], rel: str) -> str:
    """An audio player for one of the demo's own outputs, referenced relative to the report folder."""
    from urllib.parse import quote

    if rel not in files or rel.startswith("/") or ".." in rel.split("/"):
        raise ValueError(f"{rel}: not a file this demo writes into its folder")
    return f"<audio controls preload='none' src='{html.escape(quote(rel), quote=True)}'></audio>"


def _wav_bytes(wave) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, wave, 16000, format="WAV")
    return buffer.getvalue()


def _png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _synthesize_all(candidates_n: int, seed: int) -> tuple[list, list[tuple[DemoClip, object]]]:
    """The demo clips' waveforms, and ``candidates_n`` random-voiced candidates for the best-of-N prompt."""
    import tempfile

    import numpy as np

    from .synth.engines import prepare_espeak_data

    rng = np.random.default_rng(seed)
    timbres = sorted({c.timbre for c in CLIPS} | {"m7"})
    with tempfile.TemporaryDirectory() as tmp:
        data_path = prepare_espeak_data(Path(tmp), timbres)
        waves = [_synthesize(clip, data_path) for clip in CLIPS]
        candidates = []
        for i in range(candidates_n):
            candidate = DemoClip(f"candidate-{i}", BEST_OF_N_PROMPT, {}, "en-us-nyc", "m7", "normal",
                                 int(rng.integers(0, 99)), int(rng.integers(90, 300)),
                                 str(rng.choice(["20%", "100%", "200%"])), SENTENCES[i % len(SENTENCES)])
            candidates.append((candidate, _synthesize(candidate, data_path)))
    return waves, candidates


def _classification(model, audio_emb, report: dict) -> tuple[list[list[str]], dict]:
    """Zero-shot classification per attribute: prints the table, fills ``report``; returns (rows, confusion)."""
    import numpy as np

    print("\n== Zero-shot classification (template: %r) ==" % model.config.prompt_template)
    rows, confusion = [], {a: np.zeros((len(c), len(c)), int) for a, c in ATTRIBUTES.items()}
    predictions = {attribute: model.classify_embeddings(audio_emb, classes) for attribute, classes in ATTRIBUTES.items()}
    for index, clip in enumerate(CLIPS):
        row = [clip.name]
        for attribute, classes in ATTRIBUTES.items():
            probs = predictions[attribute][index]
            best = max(probs, key=probs.get)
            mark = ""
            if attribute in clip.expected:
                expected = clip.expected[attribute]
                confusion[attribute][classes.index(expected), classes.index(best)] += 1
                mark = " ok" if best == expected else f" (want {expected})"
            row.append(f"{best} {probs[best]:.0%}{mark}")
        rows.append(row)
        report["clips"].append({"name": clip.name, "caption": clip.caption, "expected": clip.expected,
                                "predictions": {a: predictions[a][index] for a in ATTRIBUTES}})
    print(_table(["clip", *ATTRIBUTES], rows))
    checked = sum(len(c.expected) for c in CLIPS)
    correct = sum(int(np.trace(m)) for m in confusion.values())
    print(f"controlled attributes predicted correctly: {correct}/{checked}")
    report["classification_correct"] = [correct, checked]
    return rows, confusion


def _retrieval(model, audio_emb, report: dict) -> tuple[object, list[list[str]]]:
    """Caption -> clip retrieval: prints the table, fills ``report``; returns (similarity, rows)."""
    import numpy as np

    captions = [c.caption for c in CLIPS]
    similarity = audio_emb @ model.embed_text(captions).T
    print("\n== Caption -> clip retrieval ==")
    rows = []
    for j, caption in enumerate(captions):
        best = int(np.argmax(similarity[:, j]))
        rows.append([caption, CLIPS[best].name, "ok" if best == j else f"(want {CLIPS[j].name})"])
    print(_table(["caption", "best clip", ""], rows))
    hits = sum(r[2] == "ok" for r in rows)
    print(f"top-1 hits: {hits}/{len(captions)} (a random ranking expects 1)")
    report["retrieval_top1"] = [hits, len(captions)]
    return similarity, rows


BEST_OF_N_HEADER = ["rank", "candidate", "score", "F0 median", "rate", "espeak -p", "espeak -s"]


def _best_of_n(model, candidates, files: dict[str, bytes], report: dict) -> tuple[list[list], list[str]]:
    """Ranks the candidates for the prompt, adds their audio to ``files``; returns (rows, players)."""
    import numpy as np

    from .synth.measure import measure_clip

    scores = model.embed_waveforms([w for _, w in candidates]) @ model.embed_text([BEST_OF_N_PROMPT])[0]
    order = np.argsort(-scores, kind="stable")
    print(f"\n== Best-of-{len(candidates)} for: {BEST_OF_N_PROMPT!r} ==")
    rows, players = [], []
    for rank, i in enumerate(order, 1):
        clip, wave = candidates[i]
        m = measure_clip(wave, 16000, voice_quality=False)
        words = len(clip.sentence.split())
        rate = words / m["active_s"] if m["active_s"] else float("nan")
        rows.append([rank, clip.name, f"{scores[i]:.3f}", f"{m['f0_median_hz'] or float('nan'):.0f} Hz",
                     f"{rate:.1f} words/s", clip.pitch, clip.wpm])
        files[f"audio/{clip.name}.wav"] = _wav_bytes(wave)
        players.append(_player(files, f"audio/{clip.name}.wav"))
    print(_table(BEST_OF_N_HEADER, rows))
    report["best_of_n"] = {"prompt": BEST_OF_N_PROMPT, "ranking": rows}
    return rows, players


def _plots(similarity, confusion: dict) -> dict[str, bytes]:
    """similarity.png (clips x captions) and confusion.png (one panel per attribute)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    fig, ax = plt.subplots(figsize=(7, 5))
    im = ax.imshow(similarity, cmap="viridis")
    ax.set_xticks(range(len(CLIPS)), [f"caption {j + 1}" for j in range(len(CLIPS))], rotation=30)
    ax.set_yticks(range(len(CLIPS)), [c.name for c in CLIPS])
    ax.set_title("cosine similarity: clips x captions (diagonal = intended)")
    fig.colorbar(im)
    fig.tight_layout()
    plots["similarity.png"] = _png_bytes(fig)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(ATTRIBUTES), figsize=(4 * len(ATTRIBUTES), 3.6))
    for ax, (attribute, classes) in zip(axes, ATTRIBUTES.items()):
        ax.imshow(confusion[attribute], cmap="Blues", vmin=0)
        ax.set_xticks(range(len(classes)), classes, rotation=30)
        ax.set_yticks(range(len(classes)), classes)
        for (r, c), v in np.ndenumerate(confusion[attribute]):
            ax.text(c, r, str(v), ha="center", va="center")
        ax.set_title(attribute)
        ax.set_xlabel("predicted")
        ax.set_ylabel("expected")
    fig.tight_layout()
    plots["confusion.png"] = _png_bytes(fig)
    plt.close(fig)
    return plots


def _page(model_name: str, files: dict[str, bytes], report: dict, similarity, class_rows, retrieval_rows,
          bon_rows, bon_players) -> str:
    """index.html: the three tables with players for the demo's own clips, and the two plots."""
    import numpy as np

    captions = [c.caption for c in CLIPS]
    correct, checked = report["classification_correct"]
    # players for the demo's own clips (written into audio/ of this folder), referenced relative to index.html
    clip_players = [_player(files, f"audio/{clip.name}.wav") for clip in CLIPS]
    retrieval_players = [_player(files, f"audio/{CLIPS[int(np.argmax(similarity[:, j]))].name}.wav")
                         for j in range(len(captions))]
    return (f"<html><head><meta charset='utf-8'><title>ParaSpeechCLAP demo</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}"
            f"</style></head><body><h1>ParaSpeechCLAP demo ({html.escape(model_name)})</h1>"
            f"<h2>Zero-shot classification</h2>{_html_table(['clip', *ATTRIBUTES], class_rows, clip_players)}"
            f"<p>{correct}/{checked} controlled attributes predicted correctly.</p>"
            f"<img src='confusion.png'><h2>Caption to clip retrieval</h2>"
            f"<ol>{''.join(f'<li>{html.escape(c)}</li>' for c in captions)}</ol>"
            f"{_html_table(['caption', 'best clip', ''], retrieval_rows, retrieval_players)}<img src='similarity.png'>"
            f"<h2>Best-of-{len(bon_rows)}: {html.escape(BEST_OF_N_PROMPT)}</h2>"
            f"{_html_table(BEST_OF_N_HEADER, bon_rows, bon_players)}"
            f"<p>Audio: <code>audio/</code>. Data: <code>demo.json</code>.</p></body></html>")


def run(args: argparse.Namespace) -> int:
    from .modelspec import ModelSpec
    from .synth.engines import espeak_available

    if not espeak_available():
        print("error: espeak-ng is not installed (run scripts/install_synth_deps.sh or `make demo`)")
        return 1
    if args.candidates_n < 1:
        print(f"error: --candidates-n must be at least 1, got {args.candidates_n}")
        return 2
    started = time.time()
    out = Path(args.out)
    try:
        check_output(out, planned_files(args.candidates_n))
    except OutputExistsError as exc:
        print(f"error: {exc}")
        return 2

    model = ModelSpec.from_args(args).load()
    print(f"model: {args.model} (precision {model.precision}, device {model.device})")

    waves, candidates = _synthesize_all(args.candidates_n, args.seed)
    # relative path -> content, all committed together at the end
    files: dict[str, bytes] = {f"audio/{clip.name}.wav": _wav_bytes(wave) for clip, wave in zip(CLIPS, waves)}
    report: dict = {"model": args.model, "clips": [], "attributes": ATTRIBUTES}
    audio_emb = model.embed_waveforms(waves)
    class_rows, confusion = _classification(model, audio_emb, report)
    similarity, retrieval_rows = _retrieval(model, audio_emb, report)
    bon_rows, bon_players = _best_of_n(model, candidates, files, report)
    files.update(_plots(similarity, confusion))
    page = _page(args.model, files, report, similarity, class_rows, retrieval_rows, bon_rows, bon_players)
    files["index.html"] = page.encode("utf-8")
    try:
        commit_outputs(out, files, report)
    except OutputExistsError as exc:
        print(f"error: {exc}")
        return 2
    print(f"\nreport: {out / 'index.html'} ({time.time() - started:.0f} s)")
    return 0
