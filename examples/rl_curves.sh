#!/usr/bin/env bash
# The README's RL result: FERNN-RecurrentPPO, CNN-LSTM RecurrentPPO and frame-stack PPO on MNISTWorldTrack-v0,
# 3 seeds each, the same environment-step budget; then `python examples/rl_learning_curves.py` draws the figure.
set -u
cd "$(dirname "$0")/.."
FERNN=${FERNN:-.venv/bin/fernn-rl}
STEPS=${STEPS:-20480}
COMMON="--env mnist-world-track --timesteps $STEPS --n-envs 8 --n-steps 128 --eval-every 4096 --eval-episodes 10
        --device cpu --out runs/rl --overwrite --quiet"
for seed in 0 1 2; do
  $FERNN train $COMMON --algo recurrent-ppo --policy fernn --seed $seed --name fernn-s$seed
  $FERNN train $COMMON --algo recurrent-ppo --policy cnn-lstm --seed $seed --name cnn-lstm-s$seed
  $FERNN train $COMMON --algo ppo --policy frame-stack-cnn --seed $seed --name frame-stack-cnn-s$seed
done
