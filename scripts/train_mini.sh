#!/usr/bin/env bash
# Retrain the embedded `mini` model from scratch on CPU, exactly as shipped in paraspeechclap/models/mini.
#
#   scripts/train_mini.sh [key=value ...]     # extra trainer overrides for stage 1, e.g. max_steps=100
#
# Stage 1: paraspeechclap/configs/train/mini.yaml on the synthetic corpus (2,000 steps, ~25 min on 2 cores).
# Stage 2 (REAL=1, the default; the shipped model is stage 2): paraspeechclap/configs/train/mini-real.yaml, fine-tuning
#   stage 1's result on the synthetic corpus plus an order loss over versions of recorded human speech (loss.order:
#   of two versions of one recording, the lower must score higher on "deep" minus "high-pitched"; the versions come
#   from scripts/real_speech.py: Debian packages, the speakers of its HELDOUT list excluded, N pitch/tempo/channel
#   versions per clip), 600 steps at lr 2e-4 (~9 minutes).
#
# Environment: CORPUS (default data/synth-v1; synthesized first when it has no train.jsonl),
# RUN_DIR (default runs/mini; stage 2 in $RUN_DIR-real), PYTHON (default .venv/bin/python), INSTALL=0 to only
# train (leave paraspeechclap/models/mini untouched), STAGE1=<save_pretrained folder> to skip stage 1
# and fine-tune that model, REAL=0 to stop after stage 1, REAL_DIR (default data/real-speech), REAL_VERSIONS (4),
# REAL_ARGS (extra trainer overrides for stage 2, e.g. "optim.max_steps=300"), REAL_TAG (suffix of the stage-2 folder).
# About 25 minutes on 2 CPU cores for stage 1, ~15 to collect and augment the recorded speech (once), ~9 for stage 2,
# plus ~30 minutes to synthesize the corpus when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
CORPUS=${CORPUS:-data/synth-v1}
RUN_DIR=${RUN_DIR:-runs/mini}
INSTALL=${INSTALL:-1}

if [ ! -f "$CORPUS/train.jsonl" ]; then
    echo "== synthesizing the style corpus into $CORPUS"
    "$PYTHON" -m paraspeechclap synth --out "$CORPUS" --num-clips 10000 --seed 0 --workers 2
fi

REAL=${REAL:-1}
REAL_DIR=${REAL_DIR:-data/real-speech}
REAL_VERSIONS=${REAL_VERSIONS:-4}
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
    if [ ! -f "$REAL_DIR/train-aug/train.jsonl" ]; then
        echo "== recorded human speech: install, measure, write $REAL_VERSIONS versions per training clip"
        "$PYTHON" scripts/real_speech.py --install --out "$REAL_DIR" --augment "$REAL_VERSIONS" --workers 2
    fi
    stage2="$RUN_DIR-real${REAL_TAG:-}"
    echo "== stage 2: fine-tuning $STAGE1 with the order loss on recorded speech (run folder $stage2)"
    # shellcheck disable=SC2086  # REAL_ARGS: several overrides, split on spaces
    nice -n 10 "$PYTHON" -m paraspeechclap train --config paraspeechclap/configs/train/mini-real.yaml \
        model.source="$STAGE1" data.train="$CORPUS/train.jsonl" data.audio_root="$CORPUS/audio" \
        loss.order.data="$REAL_DIR/train-aug/train.jsonl" run.output_dir="$stage2" ${REAL_ARGS:-}
    latest="$stage2/checkpoints/$(cat "$stage2/checkpoints/latest")/pretrained"
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
