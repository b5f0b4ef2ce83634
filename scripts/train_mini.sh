#!/usr/bin/env bash
# Retrain the embedded `mini` model from scratch on CPU, exactly as shipped in paraspeechclap/models/mini.
#
#   scripts/train_mini.sh [key=value ...]     # extra trainer overrides, e.g. max_steps=100
#
# Environment: CORPUS (default data/synth-v1; synthesized first when it has no train.jsonl),
# RUN_DIR (default runs/mini), PYTHON (default .venv/bin/python), INSTALL=0 to only train
# (leave paraspeechclap/models/mini untouched). About 25 minutes on 2 CPU cores, plus ~30 minutes
# to synthesize the corpus when it is missing.
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

echo "== training mini (run folder $RUN_DIR)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} nice -n 10 "$PYTHON" -m paraspeechclap train \
    --config paraspeechclap/configs/train/mini.yaml \
    data.train="$CORPUS/train.jsonl" data.audio_root="$CORPUS/audio" run.output_dir="$RUN_DIR" "$@"

if [ "$INSTALL" = "1" ]; then
    latest="$RUN_DIR/checkpoints/$(cat "$RUN_DIR/checkpoints/latest")/pretrained"
    echo "== installing $latest as paraspeechclap/models/mini (MODEL_CARD.md kept)"
    mkdir -p paraspeechclap/models/mini
    for item in config.json model.safetensors tokenizer feature_extractor; do
        rm -rf "paraspeechclap/models/mini/$item"
        cp -r "$latest/$item" "paraspeechclap/models/mini/$item"
    done
fi
