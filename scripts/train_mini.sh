#!/usr/bin/env bash
# Retrain the embedded `mini` model from scratch on CPU, exactly as shipped in paraspeechclap/models/mini.
#
#   scripts/train_mini.sh [key=value ...]     # extra trainer overrides for stage 1, e.g. max_steps=100
#
# Stage 1: paraspeechclap/configs/train/mini.yaml on the synthetic corpus (2,000 steps; log-mel + log-F0 statistics
#   front end, speech_model mel-mini-f0).
# Stage 2 (REAL=1, the default; the shipped model is stage 2): a fine-tune of stage 1's result on the synthetic corpus
#   plus an order loss (loss.order: of two members of one group, the lower must score higher on "deep" minus
#   "high-pitched"), paraspeechclap/configs/train/mini-ladders.yaml, 1,200 steps at lr 2e-4, over four kinds of
#   groups: labelled pitch/tempo/channel versions and pitch ladders of recorded human speech (scripts/real_speech.py
#   --augment/--ladders: Debian packages, the speakers of its HELDOUT list excluded), groups of different synthetic
#   training clips ordered by their gender-relative pitch labels (scripts/pitch_label_groups.py) and pitch ladders of
#   400 male synthetic training clips (scripts/synth_ladders.py). Its final checkpoint is the shipped model
#   (MODEL_CARD.md says what each part does and measures).
#
# Environment: CORPUS (default data/synth-v1; synthesized first when it has no train.jsonl),
# RUN_DIR (default runs/mini; stage 2 in $RUN_DIR-ladders), PYTHON (default
# .venv/bin/python), INSTALL=0 to only train (leave paraspeechclap/models/mini untouched), STAGE1=<save_pretrained
# folder> to skip stage 1 and fine-tune that model, REAL=0 to stop after stage 1, REAL_DIR (default data/real-speech),
# REAL_VERSIONS (4), LABELS_DIR (default data/pitch-label-groups), SYNTH_LADDERS_DIR (default
# data/synth-male-ladders), REAL_ARGS (extra trainer overrides for stage 2, e.g. "optim.max_steps=300"), REAL_TAG
# (suffix of the stage-2 folder), CHECKED=1 to synthesize the corpus with synth's neutral-range check (clips whose
# "neutral range" measures as monotonous or singsong are dropped; the default, CHECKED=0, keeps the unchecked corpus the
# shipped weights were trained on).
# Each data folder is made once and reused when its train.jsonl exists. Time on 2 CPU cores: see MODEL_CARD.md
# ("Retraining time and exactness").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CORPUS=${CORPUS:-data/synth-v1}
RUN_DIR=${RUN_DIR:-runs/mini}
INSTALL=${INSTALL:-1}
CHECKED=${CHECKED:-0}

if [ ! -f "$CORPUS/train.jsonl" ]; then
    # the shipped weights were trained on a corpus whose neutral range was not checked: keep it reproducible
    unchecked=--unchecked-neutral-range
    if [ "$CHECKED" = "1" ]; then unchecked=; fi
    echo "== synthesizing the style corpus into $CORPUS (${unchecked:-neutral range checked})"
    # shellcheck disable=SC2086  # $unchecked: no argument or one
    "$PYTHON" -m paraspeechclap synth --out "$CORPUS" --num-clips 10000 --seed 0 --workers 2 $unchecked
fi

REAL=${REAL:-1}
REAL_DIR=${REAL_DIR:-data/real-speech}
REAL_VERSIONS=${REAL_VERSIONS:-4}
LABELS_DIR=${LABELS_DIR:-data/pitch-label-groups}
SYNTH_LADDERS_DIR=${SYNTH_LADDERS_DIR:-data/synth-male-ladders}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ -z "${STAGE1:-}" ]; then
    echo "== stage 1: training mini on the synthetic corpus (run folder $RUN_DIR)"
    nice -n 10 "$PYTHON" -m paraspeechclap train \
        --config paraspeechclap/configs/train/mini.yaml \
        data.train="$CORPUS/train.jsonl" data.audio_root="$CORPUS/audio" run.output_dir="$RUN_DIR" "$@"
    STAGE1="$RUN_DIR/checkpoints/$(cat "$RUN_DIR/checkpoints/latest")/pretrained"
fi
latest="$STAGE1"

if [ "$REAL" = "1" ]; then
    if [ ! -f "$REAL_DIR/train-aug/train.jsonl" ] || [ ! -f "$REAL_DIR/train-ladder/train.jsonl" ]; then
        echo "== recorded human speech: install, measure, write $REAL_VERSIONS versions and a pitch ladder per training clip"
        "$PYTHON" scripts/real_speech.py --install --out "$REAL_DIR" --augment "$REAL_VERSIONS" --ladders --workers 2
    fi
    if [ ! -f "$LABELS_DIR/train.jsonl" ]; then
        echo "== groups of synthetic training clips ordered by their pitch labels into $LABELS_DIR"
        "$PYTHON" scripts/pitch_label_groups.py --corpus "$CORPUS" --out "$LABELS_DIR"
    fi
    if [ ! -f "$SYNTH_LADDERS_DIR/train.jsonl" ]; then
        echo "== pitch ladders of male synthetic training clips into $SYNTH_LADDERS_DIR"
        "$PYTHON" scripts/synth_ladders.py --corpus "$CORPUS" --out "$SYNTH_LADDERS_DIR"
    fi
    order="$REAL_DIR/train-aug/train.jsonl+$REAL_DIR/train-ladder/train.jsonl+$LABELS_DIR/train.jsonl"
    order="$order+$SYNTH_LADDERS_DIR/train.jsonl"
    folder="$RUN_DIR-ladders${REAL_TAG:-}"
    echo "== stage 2: fine-tuning $STAGE1 with mini-ladders and the order loss on $order (run folder $folder)"
    # shellcheck disable=SC2086  # REAL_ARGS: several overrides, split on spaces
    nice -n 10 "$PYTHON" -m paraspeechclap train --config paraspeechclap/configs/train/mini-ladders.yaml \
        model.source="$STAGE1" data.train="$CORPUS/train.jsonl" data.audio_root="$CORPUS/audio" \
        loss.order.data="$order" run.output_dir="$folder" ${REAL_ARGS:-}
    latest="$folder/checkpoints/$(cat "$folder/checkpoints/latest")/pretrained"
fi

if [ "$INSTALL" = "1" ] && [ "$(realpath "$latest")" = "$(realpath paraspeechclap/models/mini)" ]; then
    echo "== $latest is paraspeechclap/models/mini already: nothing to install"
elif [ "$INSTALL" = "1" ]; then
    echo "== installing $latest as paraspeechclap/models/mini (MODEL_CARD.md kept)"
    mkdir -p paraspeechclap/models/mini
    for item in config.json model.safetensors tokenizer feature_extractor; do
        rm -rf "paraspeechclap/models/mini/$item"
        cp -r "$latest/$item" "paraspeechclap/models/mini/$item"
    done
fi
