#!/usr/bin/env bash
# Retrain the embedded `mini` model from scratch on CPU, exactly as shipped in paraspeechclap/models/mini.
#
#   scripts/train_mini.sh [key=value ...]     # extra trainer overrides for stage 1, e.g. max_steps=100
#
# Stage 1: paraspeechclap/configs/train/mini.yaml on the synthetic corpus (2,000 steps, ~25 min on 2 cores).
# Stage 2 (REAL=1; off by default: the shipped model is stage 1 only, see MODEL_CARD.md): fine-tune stage 1's result on synthetic + recorded human speech
#   (scripts/real_speech.py: Debian packages, speakers of its HELDOUT list excluded; N labelled pitch/tempo/channel
#   versions per clip), REAL_STEPS steps (default 600, ~10 min) at lr 4e-4, sources mixed 60/40; the speech tower
#   gains the mel-mini-f0 front end (log-F0 channels from autocorrelation, their input weights starting at zero).
#
# Environment: CORPUS (default data/synth-v1; synthesized first when it has no train.jsonl),
# RUN_DIR (default runs/mini; stage 2 in $RUN_DIR-real), PYTHON (default .venv/bin/python), INSTALL=0 to only
# train (leave paraspeechclap/models/mini untouched), STAGE1=<save_pretrained folder> to skip stage 1
# and fine-tune that model, REAL=1 for stage 2, REAL_DIR (default data/real-speech), REAL_VERSIONS (4), REAL_PROB
# (0.4), REAL_LR (4e-4), REAL_TAG (suffix of the stage-2 run folder).
# About 25 minutes on 2 CPU cores (stage 2: + ~15 to collect/augment recorded speech + ~10 to fine-tune), plus
# ~30 minutes to synthesize the corpus when it is missing.
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

REAL=${REAL:-0}
REAL_DIR=${REAL_DIR:-data/real-speech}
REAL_VERSIONS=${REAL_VERSIONS:-4}
REAL_STEPS=${REAL_STEPS:-600}
REAL_PROB=${REAL_PROB:-0.4}
REAL_MANIFEST=${REAL_MANIFEST:-train.jsonl}   # or train-pitch.jsonl: recorded speech claims gender and pitch only     # share of recorded-speech versions in stage 2 batches
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
    if [ ! -f "$REAL_DIR/train-aug/$REAL_MANIFEST" ]; then
        echo "== recorded human speech: install, measure, write $REAL_VERSIONS versions per training clip"
        "$PYTHON" scripts/real_speech.py --install --out "$REAL_DIR" --augment "$REAL_VERSIONS" --workers 2
    fi
    echo "== stage 2: fine-tuning $STAGE1 on synthetic + recorded speech (run folder $RUN_DIR-real${REAL_TAG:-})"
    nice -n 10 "$PYTHON" -m paraspeechclap train \
        --config paraspeechclap/configs/train/mini.yaml \
        model.init=pretrained model.source="$STAGE1" model.speech_model=mel-mini-f0 \
        "data.train=[$CORPUS/train.jsonl,$REAL_DIR/train-aug/$REAL_MANIFEST]" data.audio_root="$CORPUS/audio" \
        "data.probabilities=[$(awk "BEGIN{print 1 - $REAL_PROB}"),$REAL_PROB]" optim.lr=${REAL_LR:-4e-4} optim.warmup_steps=20 optim.max_steps="$REAL_STEPS" \
        checkpoint.every_n_steps=200 run.output_dir="$RUN_DIR-real${REAL_TAG:-}"
    latest="$RUN_DIR-real${REAL_TAG:-}/checkpoints/$(cat "$RUN_DIR-real${REAL_TAG:-}/checkpoints/latest")/pretrained"
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
