#!/usr/bin/env bash
# The README's RL result: FERNN-RecurrentPPO, CNN-LSTM RecurrentPPO and frame-stack PPO on MNISTWorldTrack-v0,
# 3 seeds each, the same environment-step budget; then `python experiments/rl_learning_curves.py` draws the figure.
# The budget, 160 rollouts of 8 envs x 128 steps, is what all nine runs completed side by side (five at a
# time, OMP_NUM_THREADS=1) in one working session on 2 CPU cores; the slowest policy, FERNN, alone trains
# it in about 35 minutes (bench rl: 160 collections + updates of ~11 s each, plus evaluations).
# POLICIES / SEEDS / STEPS select a subset (e.g. queues side by side).
set -u
cd "$(dirname "$0")/.."
FERNN=${FERNN:-.venv/bin/fernn-rl}
STEPS=${STEPS:-163840}
POLICIES=${POLICIES:-"fernn cnn-lstm frame-stack-cnn"}
SEEDS=${SEEDS:-"0 1 2"}
COMMON="--env mnist-world-track --timesteps $STEPS --n-envs 8 --n-steps 128 --eval-every 8192 --eval-episodes 20
        --device cpu --out runs/rl --overwrite --quiet"
for seed in $SEEDS; do
  for policy in $POLICIES; do
    case $policy in
      fernn|cnn-lstm) algo=recurrent-ppo ;;
      *) algo=ppo ;;
    esac
    $FERNN train $COMMON --algo $algo --policy $policy --seed $seed --name $policy-s$seed
  done
done
