"""Calibrate tag thresholds on a labelled corpus: ``python -m paraspeechclap.annotate.calibrate``.

The suite file (contract ``evaluation-suite``: the ``suites.json`` that ``paraspeechclap synth`` writes, read by
evaluate's own suite reader) gives, per attribute, a classification task (its clips and gold class in
``classification_tag``) and optionally ``negatives``: clips that belong to none of its classes (a whisper has no
pitch), on which any tag is wrong. Each attribute of the model's table with a task of the same name and the same
classes is calibrated: its clips are embedded and classified as ``annotate`` does (its ``not_with`` gates included),
and each class that can become a tag gets the smallest probability at which that class's tags are right at least
``--precision`` of the time (default 90 %) with at least ``--min-clips`` tags, the precision taken as the lower end of
its Wilson interval at ``--confidence`` (default 95 %: the thresholds leave a margin for clips not seen here; 0.5
takes the share as observed). A class that never gets there is withheld: never tagged. With ``--objective per-clip``
each class instead gets the probability above which its tags make the most clips right (a clip is right when its tag
is its class, or when it gets none where it claims a neutral class or none: issue 28's reading), and is withheld when
no threshold makes more clips right than wrong. With ``--probe auto`` (the default) each attribute also gets a
logistic probe on the clips' embeddings (:mod:`.probe`: its taggable classes and "none", started from the zero-shot
text directions, ``lambda`` by 5-fold cross-validation) where the probe makes at least one point more of the held-out
clips right than the thresholds; its tags then replace the thresholds' (``--probe never``: thresholds only;
``--probe range,rate``: probes for these). The result is an attribute
table (``annotate --attributes``) recording per attribute what its thresholds gave (precision of the tags, coverage:
the share of clips that get one) and, for the table, the corpus, target, model, date and command. Attributes
without a matching task (or with too few clips) keep what the table they started from gave them: thresholds, probe
and calibration record (uncalibrated there, they stay so and the table says ``partly calibrated``); the table's
``calibration.note`` names them as not calibrated by this run. When no attribute can be calibrated nothing is
written and the command exits 1, saying why for each attribute.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..modelspec import ModelSpec
from ..precisions import PRECISIONS
from ..schemas.attribute_table import OBJECTIVES


class CalibrationError(RuntimeError):
    """Nothing could be calibrated (the message says why, per attribute)."""


@dataclass
class Clips:
    """An attribute's labelled clips: audio paths and the gold class (None for a negative)."""

    paths: list[str] = field(default_factory=list)
    gold: list[str | None] = field(default_factory=list)


def wilson_lower(hits: np.ndarray, n: np.ndarray, confidence: float) -> np.ndarray:
    """The lower end of the one-sided Wilson score interval of ``hits / n`` (the precision the tags keep, at
    ``confidence``, on clips not seen here); ``confidence`` 0.5 gives the observed share."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(confidence)
    share = hits / n
    centre = share + z * z / (2 * n)
    spread = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def class_threshold(top_prob: np.ndarray, correct: np.ndarray, precision: float, min_clips: int,
                    confidence: float = 0.5) -> float | None:
    """The lowest probability at which the tags above it are right at least ``precision`` of the time (the lower end
    of the Wilson interval at ``confidence``; 0.5: as observed), with at least ``min_clips`` of them; None when there
    is none."""
    order = np.argsort(-top_prob, kind="stable")
    hits = np.cumsum(correct[order])
    kept = np.arange(1, len(order) + 1)
    ok = np.flatnonzero((wilson_lower(hits, kept, confidence) >= precision - 1e-12) & (kept >= min_clips))
    return None if len(ok) == 0 else float(top_prob[order][ok[-1]])


def per_clip_threshold(top_prob: np.ndarray, correct: np.ndarray, unclaimed: np.ndarray,
                       min_clips: int) -> float | None:
    """The probability above which tagging the class makes the most clips right: a tag makes a clip of the class
    right (+1) and a clip that claims a neutral class or none (``unclaimed``) wrong (-1); a clip of another class is
    wrong either way. None when no threshold with at least ``min_clips`` tags gains."""
    order = np.argsort(-top_prob, kind="stable")
    gain = np.cumsum(np.where(correct[order], 1, np.where(unclaimed[order], -1, 0)))
    gain[: min_clips - 1] = 0
    best = int(np.argmax(gain)) if len(gain) else 0
    return None if len(gain) == 0 or gain[best] <= 0 else float(top_prob[order][best])


def suite_clips(suites_path: str | Path, table) -> tuple[dict[str, Clips], dict[str, str], list[str]]:
    """({attribute: its clips}, {attribute: why it cannot be calibrated}, the rows skipped, each ``FILE:LINE: why``)."""
    from ..data.rows import read_rows
    from ..evaluate.suites import SuiteError, load_rows, suite_from_json

    try:
        suite = suite_from_json(str(suites_path))
    except SuiteError as err:
        raise CalibrationError(str(err)) from None
    tasks = {t.name: t for t in suite.tasks if t.kind == "classification"}
    found, why, skipped = {}, {}, []
    for a in table.attributes:
        task = tasks.get(a.name)
        if task is None:
            why[a.name] = f"no classification task {a.name!r} in {suites_path} (tasks: {sorted(tasks) or 'none'})"
            continue
        if sorted(task.candidates or []) != sorted(a.classes):
            why[a.name] = f"task {a.name!r} has the classes {task.candidates}, the table {a.classes}"
            continue
        try:
            rows = load_rows(task)
        except SuiteError as err:
            why[a.name] = str(err)
            continue
        skipped += [s["reason"] for s in rows.skipped]
        clips = Clips([i.path for i in rows.items], [i.label for i in rows.items])
        for row in read_rows(task.negatives, audio_root=task.source.audio_root) if task.negatives else []:
            if row.ok:
                clips.paths.append(row.audio)
                clips.gold.append(None)
            else:
                skipped.append(f"{row.ref}: {row.error}")
        found[a.name] = clips
    return found, why, skipped


def embed_clips(model, paths: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """{path: embedding} of every distinct path, and the failures (``path: why``), reported and skipped."""
    from ..inference import embed_items

    unique = list(dict.fromkeys(paths))
    vectors, failed = {}, []
    for result in embed_items(model, unique):
        if result.ok:
            vectors[unique[result.index]] = result.embedding
        else:
            failed.append(f"{unique[result.index]}: {result.error}")
    return vectors, failed


def emitted(attribute, probs: np.ndarray) -> list[str | None]:
    """The tag of ``attribute`` per row of its probabilities (None: no tag), as :meth:`AttributeTable.tags` gives."""
    return [attribute.tag_of(p) for p in probs]


def set_thresholds(attribute, probs: np.ndarray, gold: list, gated: np.ndarray, precision: float, min_clips: int,
                   confidence: float = 0.5, objective: str = "precision") -> None:
    """Set the thresholds and withheld classes of ``attribute`` from its clips' zero-shot probabilities."""
    gold = np.array(gold, dtype=object)
    top = probs.argmax(axis=1)
    top_prob = probs.max(axis=1)
    unclaimed = np.array([attribute.unclaimed(g) for g in gold], dtype=bool)
    attribute.thresholds, attribute.withheld = {}, []
    for index, cls in enumerate(attribute.classes):
        if cls in attribute.neutral:
            continue
        mine = (top == index) & ~gated
        if objective == "per-clip":
            found = per_clip_threshold(top_prob[mine], gold[mine] == cls, unclaimed[mine], min_clips)
        else:
            found = class_threshold(top_prob[mine], gold[mine] == cls, precision, min_clips, confidence)
        if found is None:
            attribute.withheld.append(cls)
        else:
            attribute.thresholds[cls] = found


def tag_record(attribute, probs: np.ndarray, gold: list, gated: np.ndarray) -> dict:
    """What the attribute's tags give on its clips: precision, coverage, per clip, per class."""
    gold = np.array(gold, dtype=object)
    unclaimed = np.array([attribute.unclaimed(g) for g in gold], dtype=bool)
    tags = np.array([None if g else t for t, g in zip(emitted(attribute, probs), gated)], dtype=object)
    tagged = tags != None  # noqa: E711 - elementwise over an object array
    right = tagged & (tags == gold)
    per_class = {cls: {"precision": _share(right[tags == cls].sum(), (tags == cls).sum()),
                       "tagged": int((tags == cls).sum()), "right": int(right[tags == cls].sum())}
                 for cls in attribute.classes if cls not in attribute.neutral}
    clips_right = right.sum() + (~tagged & unclaimed).sum()
    return {"precision": _share(right.sum(), tagged.sum()), "coverage": _share(tagged.sum(), len(gold)),
            "per_clip": _share(clips_right, len(gold)), "clips": len(gold), "tagged": int(tagged.sum()),
            "per_class": per_class}


def calibrate_attribute(attribute, probs: np.ndarray, gold: list, gated: np.ndarray, precision: float,
                        min_clips: int, confidence: float = 0.5, objective: str = "precision") -> None:
    """Set the thresholds, withheld classes and calibration record of ``attribute`` from its clips (``gated``: the
    clips another attribute's tag keeps from getting one)."""
    set_thresholds(attribute, probs, gold, gated, precision, min_clips, confidence, objective)
    attribute.calibration = tag_record(attribute, probs, gold, gated)


def calibrate_probe(attribute, model, template: str, emb: np.ndarray, probs: np.ndarray, gold: list,
                    gated: np.ndarray, target: tuple, forced: bool) -> None:
    """Cross-validate a probe for an attribute whose thresholds are set (``target``: calibrate's (precision,
    confidence, min_clips, objective)); fit it on every clip when it gains (or is ``forced``), replacing the
    thresholds, and record the cross-validation either way."""
    from . import probe

    precision, confidence, min_clips, objective = target
    w0 = probe.zero_shot_weights(model, attribute, template)

    def thresholds(trial, p, g, gate):
        set_thresholds(trial, p, g, gate, precision, min_clips, confidence, objective)

    record = probe.cross_validate(attribute, emb, probs, gold, gated, w0, thresholds)
    lam = probe.choose(record, forced)
    record.update(chosen=lam, policy="forced" if forced else "auto", min_gain=None if forced else probe.MIN_GAIN)
    if lam is not None:
        attribute.probe = probe.as_probe(attribute, *probe.fit(emb, probe.labels(attribute, gold), w0, lam), lam)
        attribute.thresholds, attribute.withheld = {}, []
        attribute.calibration = tag_record(attribute, attribute.probe_probabilities(emb), gold, gated)
    attribute.calibration["probe"] = record


def _share(part, whole) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def _gate_mask(table, attribute, probs: dict[str, np.ndarray]) -> np.ndarray:
    """Clips on which another attribute's tag (its ``not_with``) keeps ``attribute`` from a tag."""
    n = len(next(iter(probs.values())))
    mask = np.zeros(n, dtype=bool)
    for other, classes in attribute.not_with.items():
        mask |= np.isin(np.array(emitted(table.by_name(other), probs[other]), dtype=object), classes)
    return mask


def calibrate(model, suites_path: str | Path, precision: float = 0.9, min_clips: int = 10, table=None,
              command: str | None = None, log=sys.stderr, confidence: float = 0.95,
              objective: str = "precision", probe: str | None = None) -> tuple[dict, dict]:
    """(the calibrated attribute-table document, {attribute: calibration record, or why it has none}).
    ``probe``: ``auto`` (the default: a probe where cross-validation says it gains), ``never`` (thresholds only) or
    attribute names, comma-separated (a probe for those, whatever it gains; none for the others).

    Raises :class:`CalibrationError` when no attribute could be calibrated."""
    from .attributes import table_for_model
    from .probe import DEFAULT_POLICY, parse_policy

    table = table or table_for_model(model)
    probe = probe or DEFAULT_POLICY
    policy, forced = parse_policy(probe, [a.name for a in table.attributes])
    clips, why, skipped = suite_clips(suites_path, table)
    for reason in skipped:
        print(f"calibrate: skipped {reason}", file=log)
    vectors, failed = embed_clips(model, [p for c in clips.values() for p in c.paths])
    for reason in failed:
        print(f"calibrate: could not embed {reason}; skipped", file=log)
    target, done = (precision, confidence, min_clips, objective), {}
    for a in sorted(table.attributes, key=lambda a: bool(a.not_with)):  # gates are calibrated before what they gate
        if a.name not in clips:
            continue
        keep = [i for i, p in enumerate(clips[a.name].paths) if p in vectors]
        if len(keep) < min_clips:
            why[a.name] = f"{len(keep)} clips could be embedded, fewer than --min-clips {min_clips}"
            continue
        emb = np.stack([vectors[clips[a.name].paths[i]] for i in keep])
        a.probe = None  # thresholds are set on zero-shot probabilities; a probe is refitted below, or not
        probs, gold = table.probabilities(model, emb), [clips[a.name].gold[i] for i in keep]
        gated = _gate_mask(table, a, probs)
        calibrate_attribute(a, probs[a.name], gold, gated, precision, min_clips, confidence, objective)
        if policy == "auto" or a.name in forced:
            print(f"calibrate: cross-validating a probe for {a.name} ({len(keep)} clips)", file=log, flush=True)
            calibrate_probe(a, model, table.template, emb, probs[a.name], gold, gated, target, a.name in forced)
        done[a.name] = a.calibration
    if not done:
        raise CalibrationError(f"nothing could be calibrated with {suites_path}:\n  - "
                               + "\n  - ".join(f"{name}: {reason}" for name, reason in why.items()))
    table.calibration = _provenance(model, suites_path, vectors, target, why, command, probe)
    return table.to_dict(), {**done, **{name: {"not calibrated": reason} for name, reason in why.items()}}


def _provenance(model, suites_path, vectors: dict, target: tuple, why: dict, command: str | None,
                probe: str = "never") -> dict:
    from .. import schemas
    from . import probe as probes

    corpus = {"suites": str(suites_path), "clips": len(vectors)}
    verification = Path(suites_path).parent / "verification.json"
    if verification.is_file():  # a synthetic corpus says how it was made
        try:
            settings = schemas.read(verification, "synth-verification")["settings"]
            corpus.update({"generator": "paraspeechclap synth", "seed": settings.get("seed"),
                           "num_clips": settings.get("num_clips")})
        except schemas.SchemaError:
            pass
    precision, confidence, min_clips, objective = target
    kept = f"; not calibrated by this run, kept as they were: {', '.join(why)}" if why else ""
    if objective == "per-clip":
        note = (f"per-class thresholds that make the most clips right (a clip is right when its tag is its class, or "
                f"when it gets none where it claims a neutral class or none; at least {min_clips} tags per class); a "
                f"class whose tags never make more clips right than wrong is withheld{kept}")
        target_fields = {"objective": objective, "min_clips": min_clips}
    else:
        note = (f"per-class thresholds for tag precision >= {precision:.0%} (the lower end of its Wilson interval at "
                f"{confidence:.0%} confidence; at least {min_clips} tags per class); a class that never reaches it is "
                f"withheld{kept}")
        target_fields = {"objective": objective, "precision_target": precision, "confidence": confidence,
                         "min_clips": min_clips}
    if probe != "never":
        note += (f"; probes (--probe {probe}): a logistic model on the embeddings, fitted where {probes.FOLDS}-fold "
                 f"cross-validation makes at least {100 * probes.MIN_GAIN:g} point(s) more of the clips right (per "
                 "clip) than the thresholds (or where asked), its tags replacing the thresholds'")
        target_fields["probe"] = {"policy": probe, "lambdas": list(probes.LAMBDAS), "folds": probes.FOLDS,
                                  "min_gain": probes.MIN_GAIN}
    return {"note": note, **target_fields, "corpus": corpus,
            "model": {"source": str(getattr(model, "name", "")), "precision": str(getattr(model, "precision", ""))},
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "command": command}


def report_lines(report: dict) -> list[str]:
    lines = []
    for name, rec in report.items():
        if "not calibrated" in rec:
            lines.append(f"{name:14s} not calibrated: {rec['not calibrated']}")
            continue
        classes = ", ".join(f"{c} {v['right']}/{v['tagged']}" for c, v in rec["per_class"].items())
        precision = "-" if rec["precision"] is None else f"{rec['precision']:.1%}"
        per_clip = "-" if rec.get("per_clip") is None else f"{rec['per_clip']:.1%}"
        lines.append(f"{name:14s} per clip {per_clip:>6s}  precision {precision:>6s}  coverage {rec['coverage']:.1%} of "
                     f"{rec['clips']} clips  (right/tagged: {classes})")
        if rec.get("probe"):
            cv = rec["probe"]
            best = max(cv["cv_probe"].values())
            chosen = "no probe" if cv["chosen"] is None else f"probe, lambda {cv['chosen']:g}"
            lines.append(f"{'':14s} {cv['folds']}-fold per clip: thresholds {cv['cv_no_probe']:.1%}, best probe "
                         f"{best:.1%} -> {chosen}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", required=True, help="suites.json of a labelled corpus (paraspeechclap synth writes one)")
    parser.add_argument("--model", default="mini")
    parser.add_argument("--model-precision", default=ModelSpec.precision, choices=list(PRECISIONS),
                        help="numeric precision of the model (default auto, as annotate)")
    parser.add_argument("--attributes", default=None, help="the table to calibrate (default: the model family's own)")
    parser.add_argument("--precision", type=float, default=0.9, help="wanted precision of each class's tags (default 0.9)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="confidence of the precision's lower bound (default 0.95; 0.5: the precision as observed)")
    parser.add_argument("--min-clips", type=int, default=10, help="tags a class needs at its threshold (default 10)")
    parser.add_argument("--objective", choices=OBJECTIVES, default="precision",
                        help="precision: each class's tags right at least --precision of the time (default); "
                             "per-clip: the thresholds that make the most clips right")
    parser.add_argument("--probe", default=None, metavar="auto|never|ATTR[,ATTR]",
                        help="also fit a logistic probe on the embeddings per attribute (lambda by cross-validation): "
                             "auto (default) where it gains >= 1 point per clip over the thresholds, never, or for "
                             "the attributes named")
    parser.add_argument("--out", required=True, help="attribute table JSON to write (use with annotate --attributes)")
    args = parser.parse_args(argv)
    from .. import schemas
    from .attributes import AttributeTable

    if not 0 < args.precision <= 1 or not 0.5 <= args.confidence < 1 or args.min_clips < 1:
        parser.error("--precision must be in (0, 1], --confidence in [0.5, 1) and --min-clips at least 1")
    command = "python -m paraspeechclap.annotate.calibrate " + shlex.join(sys.argv[1:] if argv is None else argv)
    model = ModelSpec(args.model, precision=args.model_precision).load()
    table = AttributeTable.from_file(args.attributes) if args.attributes else None
    try:
        doc, report = calibrate(model, args.suites, args.precision, args.min_clips, table, command,
                                confidence=args.confidence, objective=args.objective, probe=args.probe)
    except (CalibrationError, schemas.SchemaError, ValueError) as err:
        print(f"calibrate: {err}", file=sys.stderr)
        return 1
    schemas.write(args.out, doc, "attribute-table")
    print("\n".join(report_lines(report)))
    print(f"{doc['calibration']['status']} table written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
