#!/usr/bin/env bash
# The README's reproduction tables at CPU scale (2 cores): every row's exact command, in order.
# Runs land in runs/repro/<name>; `python experiments/reproduction_tables.py` prints the tables.
# Paper-scale versions: the same commands with --preset NAME and no budget flags, on a GPU.
set -u
cd "$(dirname "$0")/.."
FERNN=${FERNN:-.venv/bin/fernn-rl}
OUT="--out runs/repro --overwrite --quiet --seed 0"

# Flowing MNIST (translation), Figure 4 protocol: trained on |v| <= 1, tested on |v| <= 2, 10 + 10 frames.
T="--env flowing-mnist --source embedded --data-vmax 1 --eval-vmax 2 --hidden 16 --decoder-layers 2 --context 10
   --predict 10 --epochs 8 --steps-per-epoch 50 --batch-size 16 --lr 2e-3 --teacher-forcing 1 --teacher-forcing-end 0
   --eval-sequences 32"
$FERNN train $T --model grnn --name translation-grnn $OUT
$FERNN train $T --model grnn-plus --vmax 2 --name translation-grnn-plus $OUT
$FERNN train $T --model fernn --vmax 1 --name translation-fernn-v1 $OUT
$FERNN train $T --model fernn --vmax 2 --name translation-fernn-v2 $OUT

# Rotating MNIST, Figure 4 protocol: trained on w in {-10, 0, 10} deg/frame, tested on -50..50; C_8, 40 px.
R="--env rotating-mnist --source embedded --data-angular-velocities=-10,0,10 --hidden 4 --decoder-layers 2 --context 5
   --predict 5 --epochs 6 --steps-per-epoch 50 --batch-size 8 --lr 2e-3 --teacher-forcing 1 --teacher-forcing-end 0
   --eval-sequences 16"
$FERNN train $R --model grnn --name rotation-grnn $OUT
$FERNN train $R --model fernn --angular-velocities=-40,-30,-20,-10,0,10,20,30,40 --name rotation-fernn-v4r $OUT

# MNIST World (FloWM), dynamic digits (|v| <= 1), world 50, window 32, 5 digits: 10 context + 10 imagined windows.
W="--env mnist-world --source embedded --data-vmax 1 --world-size 50 --window-size 32 --num-digits 5 --hidden 8
   --decoder-layers 1 --context 10 --predict 10 --epochs 5 --steps-per-epoch 40 --batch-size 8 --lr 2e-3
   --teacher-forcing 1 --teacher-forcing-end 0 --eval-sequences 16"
$FERNN train $W --model fernn --vmax 2 --name world-flowm-v2 $OUT
$FERNN train $W --model grnn --name world-flowm-v0 $OUT
$FERNN train $W --model fernn-no-self-motion --vmax 2 --name world-no-self-motion $OUT
$FERNN train $W --model action-concat --name world-action-concat $OUT

# KTH with camera motion (range 2), on the synthetic stand-in (fernn.envs.kth_synthetic), Table 2 protocol, 32 px.
# Real data: replace --data-dir runs/kth_synthetic by --download (or --data-dir holding kth/).
.venv/bin/python -c "from fernn.envs.kth_synthetic import make_synthetic_kth; make_synthetic_kth('runs/kth_synthetic')"
K="--env kth-camera --data-dir runs/kth_synthetic --data-vmax 2 --eval-vmax 2 --frame-size 32 --clip-len 16 --hidden 16
   --epochs 6 --steps-per-epoch 50 --batch-size 8 --lr 1e-3 --eval-sequences 48"
$FERNN train $K --model cnn3d --name kth-3dcnn $OUT
$FERNN train $K --model grnn --name kth-grnn $OUT
$FERNN train $K --model grnn-plus --vmax 2 --name kth-grnn-plus $OUT
$FERNN train $K --model fernn --vmax 1 --name kth-fernn-v1 $OUT
$FERNN train $K --model fernn --vmax 2 --name kth-fernn-v2 $OUT
