#!/usr/bin/env bash
# Make the embedded Sprint-Shapes model end to end (see docs/TRAINING.md). Meant for a machine with
# a GPU (accelerate picks it up); every stage resumes from its checkpoint if run again.
#   scripts/train_sprint_shapes.sh            # full recipe
#   SCALE=0.1 scripts/train_sprint_shapes.sh  # a tenth of the iterations
#   RUNS=/tmp/r OUT=/tmp/m SCALE=0 scripts/train_sprint_shapes.sh  # 2 iterations a stage: a smoke test
set -euo pipefail
cd "$(dirname "$0")/.."
SPRINT=".venv/bin/sprint"
SCALE="${SCALE:-1}"
RUNS="${RUNS:-runs}"
OUT="${OUT:-models/sprint-shapes}"
BENCH="${BENCH:-bench-out}"
iters() { python3 -c "print(max(2, int($1 * $SCALE)))"; }

$SPRINT distill vae --out $RUNS/vae --iters "$(iters 3000)" --eval-every "$(iters 300)"
$SPRINT distill teacher --vae $RUNS/vae/vae --out $RUNS/teacher --iters "$(iters 30000)" --eval-every "$(iters 2000)"
for mode in scm ladd hybrid; do
  $SPRINT distill student --teacher $RUNS/teacher --vae $RUNS/vae/vae --mode "$mode" \
    --out "$RUNS/student-$mode" --iters "$(iters 4000)"
done
$SPRINT distill package --vae $RUNS/vae/vae --teacher $RUNS/teacher --student $RUNS/student-hybrid/transformer \
  --out $OUT
$SPRINT distill controlnet --model $OUT --out $RUNS/controlnet --iters "$(iters 4000)"
$SPRINT distill package --vae $RUNS/vae/vae --teacher $RUNS/teacher --student $RUNS/student-hybrid/transformer \
  --controlnet $RUNS/controlnet/controlnet --out $OUT
mkdir -p "$BENCH"

# The model card's table.
$SPRINT evaluate --teacher $RUNS/teacher --vae $RUNS/vae/vae --steps 20,4,2,1 --json $BENCH/eval-teacher.json
for mode in scm ladd; do
  $SPRINT distill package --vae $RUNS/vae/vae --teacher $RUNS/teacher --student "$RUNS/student-$mode/transformer" \
    --out "$RUNS/model-$mode"
  $SPRINT evaluate --model "$RUNS/model-$mode" --steps 1,2,4 --json "$BENCH/eval-$mode.json"
done
$SPRINT evaluate --model $OUT --steps 1,2,4 --json $BENCH/eval-hybrid.json
