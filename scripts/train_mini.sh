#!/usr/bin/env bash
# Retrain the embedded `mini` model from scratch on CPU, exactly as shipped in paraspeechclap/models/mini.
#
#   scripts/train_mini.sh [key=value ...]     # extra trainer overrides for stage 1, e.g. max_steps=100
#
# Stage 1: paraspeechclap/configs/train/mini.yaml on the synthetic corpus (2,000 steps, ~25 min on 2 cores).
# Stage 2 (REAL=1, the default; the shipped model is stage 2): three fine-tunes of stage 1's result on the synthetic
#   corpus plus an order loss over versions of recorded human speech (loss.order: of two versions of one recording,
#   the lower must score higher on "deep" minus "high-pitched"; the versions come from scripts/real_speech.py: Debian
#   packages, the speakers of its HELDOUT list excluded, N pitch/tempo/channel versions per clip), 600 steps at lr 2e-4
#   each (~9 minutes each):
#     real               mini-real.yaml on the recorded versions
#     real-keep          mini-real-keep.yaml (+ keep every version on the normal side of "whispered", weight 2)
#     real-keep-sweeps   mini-real-keep.yaml with espeak -p 5..95 sweeps of the male training voices added to the
#                        order data (scripts/espeak_sweeps.py)
#   then `paraspeechclap soup` with weights SOUP_WEIGHTS (0.5 0.2 0.3): the shipped model (MODEL_CARD.md says what
#   each ingredient and the soup measure).
#
# Environment: CORPUS (default data/synth-v1; synthesized first when it has no train.jsonl),
# RUN_DIR (default runs/mini; stage 2 in $RUN_DIR-real*, the soup in $RUN_DIR-soup), PYTHON (default
# .venv/bin/python), INSTALL=0 to only train (leave paraspeechclap/models/mini untouched), STAGE1=<save_pretrained
# folder> to skip stage 1 and fine-tune that model, REAL=0 to stop after stage 1, REAL_DIR (default data/real-speech),
# REAL_VERSIONS (4), SWEEPS_DIR (default data/espeak-sweeps), SOUP_WEIGHTS, REAL_ARGS (extra trainer overrides for
# each stage-2 run, e.g. "optim.max_steps=300"), REAL_TAG (suffix of the stage-2 folders).
# LADDERS=1 adds a pitch ladder of every recorded training clip to each ingredient's order data (scripts/real_speech.py
# --ladders: rungs 200 cents apart, one method, tempo and channel per ladder); the experiment in MODEL_CARD.md ran it as
#   INSTALL=0 LADDERS=1 REAL_TAG=-L REAL_ARGS="loss.order.shared_crop=true loss.order.margin=0.1" scripts/train_mini.sh
# (monotone over 250-cent steps on many more held-out clips, but ~3 points lower synthetic pitch UAR: not shipped).
# About 25 minutes on 2 CPU cores for stage 1, ~15 to collect and augment the recorded speech and a few for the sweeps
# (once), ~27 for stage 2, plus ~30 minutes to synthesize the corpus when it is missing.
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
LADDERS=${LADDERS:-0}
SWEEPS_DIR=${SWEEPS_DIR:-data/espeak-sweeps}
SOUP_WEIGHTS=${SOUP_WEIGHTS:-0.5 0.2 0.3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ -z "${STAGE1:-}" ]; then
    echo "== stage 1: training mini on the synthetic corpus (run folder $RUN_DIR)"
    nice -n 10 "$PYTHON" -m paraspeechclap train \
        --config paraspeechclap/configs/train/mini.yaml \
        data.train="$CORPUS/train.jsonl" data.audio_root="$CORPUS/audio" run.output_dir="$RUN_DIR" "$@"
    STAGE1="$RUN_DIR/checkpoints/$(cat "$RUN_DIR/checkpoints/latest")/pretrained"
fi
latest="$STAGE1"

# stage 2: three fine-tunes of stage 1 (same steps, same data order), averaged weight by weight (paraspeechclap soup)
stage2() {  # stage2 NAME RECIPE ORDER_DATA: one ingredient, trained into $RUN_DIR-NAME; prints its pretrained folder
    local folder="$RUN_DIR-$1${REAL_TAG:-}"
    echo "== stage 2 ($1): fine-tuning $STAGE1 with $2 and the order loss on $3 (run folder $folder)" >&2
    # shellcheck disable=SC2086  # REAL_ARGS: several overrides, split on spaces
    nice -n 10 "$PYTHON" -m paraspeechclap train --config "paraspeechclap/configs/train/$2.yaml" \
        model.source="$STAGE1" data.train="$CORPUS/train.jsonl" data.audio_root="$CORPUS/audio" \
        loss.order.data="$3" run.output_dir="$folder" ${REAL_ARGS:-} >&2
    echo "$folder/checkpoints/$(cat "$folder/checkpoints/latest")/pretrained"
}

if [ "$REAL" = "1" ]; then
    if [ ! -f "$REAL_DIR/train-aug/train.jsonl" ]; then
        echo "== recorded human speech: install, measure, write $REAL_VERSIONS versions per training clip"
        "$PYTHON" scripts/real_speech.py --install --out "$REAL_DIR" --augment "$REAL_VERSIONS" --workers 2
    fi
    if [ ! -f "$SWEEPS_DIR/train.jsonl" ]; then
        echo "== pitch sweeps (espeak -p 5..95) of the corpus' male training voices into $SWEEPS_DIR"
        "$PYTHON" scripts/espeak_sweeps.py --corpus "$CORPUS" --out "$SWEEPS_DIR"
    fi
    if [ "$LADDERS" = "1" ] && [ ! -f "$REAL_DIR/train-ladder/train.jsonl" ]; then
        echo "== recorded human speech: a pitch ladder (rungs 200 cents apart) of every training clip"
        "$PYTHON" scripts/real_speech.py --out "$REAL_DIR" --ladders --workers 2
    fi
    real="$REAL_DIR/train-aug/train.jsonl"
    if [ "$LADDERS" = "1" ]; then real="$real+$REAL_DIR/train-ladder/train.jsonl"; fi
    plain=$(stage2 real mini-real "$real")
    keep=$(stage2 real-keep mini-real-keep "$real")
    sweeps=$(stage2 real-keep-sweeps mini-real-keep "$real+$SWEEPS_DIR/train.jsonl")
    latest="$RUN_DIR-soup${REAL_TAG:-}"
    echo "== stage 2: the soup $SOUP_WEIGHTS of the three ($latest)"
    # shellcheck disable=SC2086  # SOUP_WEIGHTS: three numbers
    "$PYTHON" -m paraspeechclap soup "$plain" "$keep" "$sweeps" --weights $SOUP_WEIGHTS --out "$latest"
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
