#!/usr/bin/env bash
# The world models docs/planning.md plans with: random-policy episodes of MNISTWorldTrack-v0 (target velocities
# |vx|, |vy| <= 1, distractors |v| <= 2), then FloWM (velocity channels + self-motion) and its three ablations,
# two seeds each, trained on them. A finished run (results.json) is skipped, so the script resumes.
# MODELS / SEEDS / STEPS / OUT select a subset (e.g. two queues side by side).
set -eu
cd "$(dirname "$0")/.."
FERNN=${FERNN:-.venv/bin/fernn-rl}
OUT=${OUT:-runs/planning}
SEEDS=${SEEDS:-"0 1"}
MODELS=${MODELS:-"fernn grnn fernn-no-self-motion action-concat"}
STEPS=${STEPS:-60}          # optimiser steps per epoch (5 epochs)
SEEN='[[-1,-1],[-1,0],[-1,1],[0,-1],[0,1],[1,-1],[1,0],[1,1]]'
mkdir -p "$OUT"
[ -f "$OUT/track_random.npz" ] || $FERNN collect --env mnist-world-track --episodes 300 --seed 0 \
  --env-kwargs "{\"target_velocities\": $SEEN}" --out "$OUT/track_random.npz"
for seed in $SEEDS; do
  for model in $MODELS; do
    name=wm-$model-s$seed
    [ -f "$OUT/$name/results.json" ] && continue
    resume=""; [ -f "$OUT/$name/config.json" ] && resume="--resume"
    # grnn is FloWM-V0 here: self-motion without velocity channels (a trajectory file with moves trains the world model)
    $FERNN train --data "$OUT/track_random.npz" --model $model --vmax 2 --world-size 50 --hidden 8 --decoder-layers 1 \
      --context 10 --predict 10 --epochs 5 --steps-per-epoch "$STEPS" --batch-size 8 --lr 2e-3 --teacher-forcing 1 \
      --teacher-forcing-end 0 --eval-sequences 16 --seed $seed --device cpu --out "$OUT" --name $name --quiet $resume
  done
done
