"""CORPUS_CARD.md: what the synthetic corpus contains, how it was made and how well labels verified."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .. import schemas
from ..fileio import atomic_write_text
from . import styles as S
from .augment import PROFILES
from .verify import NEUTRAL_RANGE_CHECKED


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def write_card(out: Path, summary: dict, suites: dict, kept: dict, dest: Path | None = None) -> None:
    """Write CORPUS_CARD.md for the corpus in ``out`` into ``dest`` (default ``out``)."""
    lines = [*_counts(out, summary, kept), *_verification(out, summary), *_attributes(summary["settings"]),
             *_captions(kept), *_augmentation_and_suites(suites), *_files_and_limits(kept)]
    atomic_write_text(Path(dest if dest is not None else out) / "CORPUS_CARD.md", "\n".join(lines) + "\n")


def _counts(out: Path, summary: dict, kept: dict) -> list[str]:
    """Title, how to regenerate, and the clip counts per split."""
    st = summary["settings"]
    return [
        "# Synthetic speaking-style corpus (`paraspeechclap synth`)", "",
        "Labelled speech-style clips in the ParaSpeechCaps schema, synthesized offline with espeak-ng"
        + (" and mbrola diphone voices" if st.get("mbrola") else "") + ", augmented, and checked against "
        "acoustic measurements. It teaches a model a few controlled attributes of *synthetic* speech; "
        "it is not a substitute for ParaSpeechCaps.", "",
        "Regenerate (deterministic for the same seed and the same installed engines):", "",
        "```bash",
        f"paraspeechclap synth --out {out} --num-clips {st['num_clips']} --seed {st['seed']} "
        f"--workers {st['workers']} --splits {','.join(str(x) for x in st['splits'])}"
        + ("" if st.get("augment", True) else " --no-augment")
        + ("" if st.get(NEUTRAL_RANGE_CHECKED) else " --unchecked-neutral-range"),
        "# or: python -m paraspeechclap.synth.cli ... (same arguments)",
        "```", "",
        f"Generation took {st['generation_seconds']:.0f} s with {st['workers']} worker(s).", "",
        "## Counts", "",
        "| | train | validation | test | total |", "|---|---|---|---|---|",
        "| generated | " + " | ".join(str(summary["generated_per_split"].get(s, 0))
                                    for s in ("train", "validation", "test")) + f" | {summary['generated']} |",
        "| kept | " + " | ".join(str(summary["kept_per_split"].get(s, 0))
                               for s in ("train", "validation", "test")) + f" | {summary['kept']} |",
        "", f"Dropped by verification: {summary['dropped']}; render errors: {summary['render_errors']}. "
        f"Drop reasons (a clip can fail several): {summary['drop_reasons'] or 'none'}.", "",
        "Kept hours: " + ", ".join(f"{s} {sum(r['duration'] for r in rs) / 3600:.2f} h"
                                   for s, rs in kept.items()) + ".", "",
    ]


def _verification(out: Path, summary: dict) -> list[str]:
    """Agreement of tags and measurements, on the clean signal and (if re-measured) on the stored audio."""
    lines = [
        "## Label verification (agreement of tag and measurement, all generated clips)", "",
        "| attribute | checked | agree | agreement | per level (agree/checked) |", "|---|---|---|---|---|",
    ]
    for attr, a in summary["agreement"].items():
        lv = ", ".join(f"{k} {v['agree']}/{v['checked']}" for k, v in a["levels"].items())
        lines.append(f"| {attr} | {a['checked']} | {a['agree']} | {_pct(a['agreement'])} | {lv} |")
    stored = Path(out) / "verification_stored.json"
    if stored.exists():
        vs = schemas.read(stored, "synth-stored-verification")
        lines += ["", f"Re-measured on the stored (augmented) audio of the {vs['clips']} kept clips "
                  f"(`--verify-only`): {vs['all_tags_agree']} agree on every tag. Agreement per attribute: "
                  + ", ".join(f"{k} {_pct(v['agreement'])}" for k, v in vs["agreement"].items())
                  + ". Noise and reverberation fill short pauses and disturb the energy detector, so rate "
                  "and delivery agree less there; the labels themselves come from the clean signal."]
    th = summary["thresholds"]
    lines += [
        "", "Measurements on the clean signal (after the pitch/tempo jitter, before channel augmentation): "
        "Praat (parselmouth) autocorrelation pitch, 10 ms hop, 55-600 Hz; an energy detector for active "
        "speech and pauses. Checks:", "",
        f"- pitch: F0 median in semitones from the gender centre ({th['gender_centre_hz']} Hz) inside "
        f"{th['pitch_accept_st']} (targets {S.PITCH_TARGET_ST}; 'shrill' added from +{S.SHRILL_MIN_ST} st);",
        f"- range: 10-90 % F0 spread <= {th['range_mono_max_st']} st (monotonous), >= "
        f"{th['range_singsong_min_st']} st (singsong)"
        + (", between the two (a neutral range of normal voice quality);" if summary["settings"].get(NEUTRAL_RANGE_CHECKED)
           else "; a neutral range is not checked (`--unchecked-neutral-range`), so it may measure as either;"),
        f"- rate: syllables of the spoken text per second of active speech in {th['rate_bands_syl_per_s']};",
        f"- voice quality: whispered voiced fraction <= {th['whisper_max_voiced_fraction']}; creaky jitter >= "
        f"{th['creaky_min_jitter']}; normal voiced fraction >= "
        f"{th['voiced_min_fraction']} and jitter < {th['normal_max_jitter']};",
        "- delivery: flowing has no pause >= 0.28 s inside speech; hesitant and punctuated have >= 2;",
        f"- gender: F0 median inside {th['gender_f0_bounds_hz']} Hz (not for whispers).", "",
        "`paraspeechclap synth --out DIR --verify-only` re-measures the stored (augmented) audio and writes "
        "`verification_stored.json`.", "",
    ]
    return lines


def _attributes(st: dict) -> list[str]:
    """The attributes with their levels and controls, loudness, and the held-out material."""
    return [
        "## Attributes, levels and tags", "",
        "| attribute | levels (sampling prob.) | engine control | tags (ParaSpeechCaps words) |",
        "|---|---|---|---|",
        f"| gender | {S.LEVEL_PROBS['gender']} | espeak variant (+m.., +f.., named) / mbrola voice | male, female (intrinsic) |",
        f"| pitch (relative to gender) | {_r(S.LEVEL_PROBS['pitch'])} | espeak -p, calibrated per voice to a target F0 | deep + low-pitched, medium-pitched, high-pitched (+ shrill) (intrinsic) |",
        f"| speaking rate | {_r(S.LEVEL_PROBS['rate'])} | espeak -s {S.RATE_WPM} wpm | slow, measured, fast (situational) |",
        f"| pitch range | {_r(S.LEVEL_PROBS['range'])} | SSML prosody range {S.RANGE_SSML} | monotonous, singsong (intrinsic; neutral untagged) |",
        f"| voice quality | {_r(S.LEVEL_PROBS['quality'])} | derived espeak variants: whisper (voicing 17 + breath), creaky (flutter 50, roughness 10) | whispered (situational), vocal-fry (intrinsic) |",
        f"| delivery | {_r(S.LEVEL_PROBS['delivery'])} | text: fillers + repetitions + SSML breaks (hesitant), breaks between 2-3-word phrases (punctuated) | flowing, hesitant, punctuated (intrinsic) |",
        "", "Whispered clips carry no pitch or range tags (no F0). Creaky clips use the neutral range (their "
        "F0 flutter makes range unmeasurable). mbrola clips use the neutral range (SSML prosody has no effect "
        "on mbrola) and normal voice quality.", "",
        "**Loudness is not an attribute.** The `mini` model's front end normalises each waveform (zero mean, "
        "unit variance), so absolute level cannot be learned from it. Instead the level is randomised as an "
        "augmentation (train/validation " + f"{PROFILES['train']['level']} dBFS, test {PROFILES['test']['level']}"
        " dBFS) and stored as `measured.level_dbfs` / `measured_level_dbfs_final`; no loud/soft tags are given.",
        "", "## Held-out material (test split only)", "",
        f"- voices: espeak timbres {sorted(S.TIMBRES_TEST)}" + (f", mbrola {sorted(S.MBROLA_TEST)}"
                                                                 if st.get("mbrola") else "") + ";",
        f"- accents (espeak language voices): train {S.ACCENTS_TRAIN}, test {S.ACCENTS_TEST};",
        "- caption wording: test-only templates, who-patterns and synonyms (styles.py, second element of each "
        "wording pair), e.g. templates " + "; ".join(f"'{t}'" for t in S.CAPTION_TEMPLATES[1]) + ";",
        "- spoken sentences: the word-bank sentences whose SHA-1 falls in the test bucket (1 in 6) are only "
        "used in the test split.", "",
        "Train/validation voices: espeak timbres " + ", ".join(sorted(S.TIMBRES_TRAIN))
        + (f"; mbrola {sorted(S.MBROLA_TRAIN)}" if st.get("mbrola") else "") + ".", "",
    ]


def _captions(kept: dict) -> list[str]:
    """How captions are written, with examples from the kept clips."""
    lines = [
        "## Captions", "",
        "`text_description` holds, in train/validation, a full caption (every tagged attribute, gender, pitch "
        "and rate always) and a partial one (one or two attributes, or in 20 % of cases ParaSpeechCLAP's "
        f"template '{S.TAG_TEMPLATE}' with one tag word); in test only the full caption, in held-out wording.",
        "", "Examples (kept clips):", "",
    ]
    for split in ("train", "test"):
        for r in kept.get(split, [])[:4]:
            lines.append(f"- {split}: {r['text_description']} -- tags {r['intrinsic_tags']} + "
                         f"{r['situational_tags']} -- said: \"{r['spoken_text']}\"")
    return lines


def _augmentation_and_suites(suites: dict) -> list[str]:
    """The augmentation profiles and the zero-shot classification suites."""
    lines = ["", "## Augmentation", "",
              "Applied to the 16 kHz signal: a resampling pitch/tempo jitter (factor in +-`jitter`, applied "
              "before measuring, so labels are verified after it), then EQ/band-limiting (high-pass 60-300 Hz, "
              "low-pass 3.4-7.6 kHz, spectral tilt), synthetic reverberation (exponentially decaying noise "
              "impulse response), white/pink/brown noise at a random SNR, and a random level. Per-split "
              "profiles:", ""]
    for k in ("train", "test"):
        lines.append(f"- {k}: {PROFILES[k]}")
    lines += ["", "Each row's `augmentation` column records what was applied.", "",
              "## Zero-shot classification suites (test split)", "",
              f"Template: '{suites['template']}'. `suites.json` lists them; gold label in `classification_tag`.",
              "", "| attribute | candidates | manifest | clips per class |", "|---|---|---|---|"]
    for attr, s in suites["suites"].items():
        lines.append(f"| {attr} | {', '.join(s['candidates'])} | {s['manifest']} | {s['counts']} |")
    return lines


def _files_and_limits(kept: dict) -> list[str]:
    """The files and columns of the corpus, its limits, and the kept clips per gender."""
    lines = ["", "## Files", "",
              "- `train.jsonl`, `validation.jsonl`, `test.jsonl`: manifests; audio at "
              "`{out}/audio/{source}/{relative_audio_path}` (source `synth`, 16 kHz mono 16-bit WAV);",
              "- `test_<attribute>.jsonl` + `suites.json`: classification suites; `test_<attribute>_negatives.jsonl`: "
              "the test clips that claim none of the attribute's classes (whispers for pitch, neutral range), which "
              "`python -m paraspeechclap.annotate.calibrate` counts as wrong when tagged;",
              "- `verification.json`: counts, agreement, thresholds, settings; `dropped.jsonl`: dropped clips "
              "with reasons (their audio is deleted); `calibration.json`: per-voice pitch calibration.", "",
              "Columns: source, relative_audio_path, text_description, intrinsic_tags, situational_tags, "
              "duration, speaker, voice, engine, accent, held_out_voice, gender, pitch_level, pitch_offset_st, "
              "rate_level, range_level, voice_quality, delivery, espeak_voice, espeak_pitch, espeak_wpm, "
              "espeak_range, jitter_factor, sentence, spoken_text, syllables, augmentation, measured "
              "(f0_median_hz, f0_range_st, voiced_fraction, jitter, hnr_db, level_dbfs, active_s, n_pauses, "
              "pause_s, rate_syl_per_s, duration), measured_level_dbfs_final, verification.", "",
              "## Limits", "",
              "- Synthetic speech only (formant/diphone synthesis): the attributes are caricatures of human "
              "prosody; nothing about emotion, accent quality, age, texture beyond creak, or recording "
              "conditions beyond the augmentations.",
              "- Pitch levels are relative to the gender centre, not to the individual voice: each espeak -p "
              "is calibrated per voice to hit the target F0.",
              "- Hesitant vs punctuated differ by construction (fillers and repetitions vs evenly spaced "
              "phrase breaks); the verification only checks that both contain pauses.",
              "- Deterministic for a seed given the same espeak-ng version and the same availability of mbrola.",
              "- espeak-ng 1.51 crashes (SIGSEGV) on a few sentences with the creaky variant of the timbre "
              "'Lee'; such clips are counted as render errors, listed in `dropped.jsonl` and skipped."]
    genders = Counter(r["gender"] for rs in kept.values() for r in rs)
    return [*lines, "", f"Kept clips per gender: {dict(genders)}."]


def _r(d: dict) -> dict:
    return {k: round(v, 2) for k, v in d.items()}
