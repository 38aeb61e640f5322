#!/usr/bin/env bash
# Make the embedded Sprint-Shapes model end to end (see docs/TRAINING.md and the model card).
# accelerate picks up a GPU when there is one; every stage resumes from its checkpoint if run again.
#   scripts/train_sprint_shapes.sh            # full recipe (meant for a GPU)
#   SCALE=0.1 scripts/train_sprint_shapes.sh  # a tenth of the iterations
#   RUNS=/tmp/r OUT=/tmp/m SCALE=0 scripts/train_sprint_shapes.sh  # 2 iterations a stage: a smoke test
# Each stage's iterations can be set on its own (VAE_ITERS, TEACHER_ITERS, STUDENT_ITERS, CN_ITERS),
# as can the evaluation size (EVAL_IMAGES) and how often a student is judged (STUDENT_EVAL_EVERY; its
# best-judged weights are packaged); CACHE (scenes encoded once, 0 = fresh every step) and
# PRECISION (no | bf16) make the teacher and students cheaper on a CPU. TEACHER_ARGS adds options to
# the teacher stage (its defaults are the sweep's recipe: patch size 2, lr 1e-3, 500 warm-up steps;
# docs/TRAINING.md); TEACHER_COOLDOWN: its last steps, over which the rate falls to 0 on a cosine
# (a cool-down took session 8's teacher from 0.530 to 0.625). ADV_WARMUP: steps over which the
# hybrid student's LADD weight rises from 0.
# STUDENT_ARGS adds options to the three student stages (e.g. "--disc-head set --adv-balance"). VAE_DEC_ITERS fine-tunes the decoder only (the latent space stays), and the
# packaged model ships that decoder. SHIP: which student is packaged (hybrid, the paper's; scm or
# ladd), the other two are evaluated as the ablations. CN_LAYERS: blocks the ControlNet copies;
# CN_COOLDOWN: its last steps, on a cosine to 0 (session 10: 0.763 / 0.438 -> 0.773 / 0.512).
# KD_ITERS: a fine-tune of that student's first step on the teacher's ODE pairs (PAIRS pairs of
# PAIR_STEPS Euler steps; 0: none), shipped in its place (session 11: 1 step 0.265 -> see the card);
# PAIR_FILTER=judge teaches only the pairs whose teacher sample passes the judge, each caption
# family drawn equally often (session 12).
# The shipped model's card gives the exact line that made it.
set -euo pipefail
cd "$(dirname "$0")/.."
SPRINT=".venv/bin/sprint"
SCALE="${SCALE:-1}"
RUNS="${RUNS:-runs}"
OUT="${OUT:-models/sprint-shapes}"
BENCH="${BENCH:-bench-out}"
iters() { python3 -c "print(max(2, int($1 * $SCALE)))"; }
VAE_ITERS="${VAE_ITERS:-$(iters 3000)}"
VAE_DEC_ITERS="${VAE_DEC_ITERS:-$(iters 1500)}"
read -r -a TEACHER_EXTRA <<< "${TEACHER_ARGS:-}"
read -r -a STUDENT_EXTRA <<< "${STUDENT_ARGS:-}"
TEACHER_ITERS="${TEACHER_ITERS:-$(iters 30000)}"
TEACHER_COOLDOWN="${TEACHER_COOLDOWN:-$(iters 5000)}"
STUDENT_ITERS="${STUDENT_ITERS:-$(iters 4000)}"
STUDENT_EVAL_EVERY="${STUDENT_EVAL_EVERY:-$(iters 250)}"
ADV_WARMUP="${ADV_WARMUP:-$(iters 500)}"
CN_ITERS="${CN_ITERS:-$(iters 8000)}"
CN_LAYERS="${CN_LAYERS:-2}"
CN_COOLDOWN="${CN_COOLDOWN:-$(iters 4000)}"
SHIP="${SHIP:-hybrid}"
KD_ITERS="${KD_ITERS:-$(iters 3500)}"
# at SCALE=0 the teacher's samples show nothing: no pair would pass the judge
if [ "$SCALE" = 0 ]; then PAIRS="${PAIRS:-1000}"; PAIR_STEPS="${PAIR_STEPS:-1}"; PAIR_FILTER="${PAIR_FILTER-}"; fi
PAIR_FILTER="${PAIR_FILTER-judge}"
PAIRS="${PAIRS:-20000}"
PAIR_STEPS="${PAIR_STEPS:-20}"
EVAL_IMAGES="${EVAL_IMAGES:-200}"
CACHE="${CACHE:-0}"
PRECISION="${PRECISION:-no}"
if [ "$SCALE" = 0 ]; then CACHE_ARG=(--cache "$((CACHE > 0 ? 8 : 0))"); else CACHE_ARG=(--cache "$CACHE"); fi
every() { python3 -c "print(max(1, $1 // 4))"; }
# A stage is done when its output exists and its log reached the iterations asked for; done stages
# are skipped (re-running one would re-evaluate it, and re-saving the VAE could move its scale).
done_() {
  [ -e "$2" ] && python3 -c "import json,sys; l=open('$1/log.jsonl').read().splitlines(); \
sys.exit(0 if l and json.loads(l[-1]).get('step', 0) >= $3 else 1)" 2>/dev/null
}

done_ "$RUNS/vae" "$RUNS/vae/vae" "$VAE_ITERS" ||
  $SPRINT distill vae --out "$RUNS/vae" --iters "$VAE_ITERS" --eval-every "$(every "$VAE_ITERS")"
done_ "$RUNS/vae-dec" "$RUNS/vae-dec/vae" "$VAE_DEC_ITERS" ||
  $SPRINT distill vae --init "$RUNS/vae/vae" --decoder-only --out "$RUNS/vae-dec" --iters "$VAE_DEC_ITERS" \
  --lr 5e-4 --grad-weight 1.0 --eval-every "$(every "$VAE_DEC_ITERS")"
DECODER="$RUNS/vae-dec/vae"
done_ "$RUNS/teacher" "$RUNS/teacher/transformer" "$TEACHER_ITERS" ||
  $SPRINT distill teacher --vae "$RUNS/vae/vae" --out "$RUNS/teacher" --iters "$TEACHER_ITERS" \
  --eval-every "$(every "$TEACHER_ITERS")" "${CACHE_ARG[@]}" --mixed-precision "$PRECISION" \
  --lr-schedule cosine --decay-start "$((TEACHER_ITERS > TEACHER_COOLDOWN ? TEACHER_ITERS - TEACHER_COOLDOWN : 0))" \
  "${TEACHER_EXTRA[@]}"
# A student is judged every STUDENT_EVAL_EVERY steps and its best-judged weights are the ones packaged
# (OUT/best); a run whose judge falls to 0 stops there with an error, and the recipe goes on with
# its best weights (students of session 8's cooled teacher collapsed after 500-750 steps).
student() {
  if [ -e "$RUNS/student-$1/best/transformer" ]; then echo "$RUNS/student-$1/best/transformer"
  else echo "$RUNS/student-$1/transformer"; fi
}
for mode in hybrid scm ladd; do
  done_ "$RUNS/student-$mode" "$RUNS/student-$mode/transformer" "$STUDENT_ITERS" ||
  $SPRINT distill student --teacher "$RUNS/teacher" --vae "$RUNS/vae/vae" --mode "$mode" \
    --out "$RUNS/student-$mode" --iters "$STUDENT_ITERS" --eval-every "$STUDENT_EVAL_EVERY" "${CACHE_ARG[@]}" \
    --adv-warmup "$(if [ "$mode" = hybrid ]; then echo "$ADV_WARMUP"; else echo 0; fi)" "${STUDENT_EXTRA[@]}" ||
  [ -e "$RUNS/student-$mode/best/transformer" ]
done
SHIPPED="$(student "$SHIP")"
if [ "$KD_ITERS" -gt 0 ]; then
  $SPRINT distill pairs --teacher "$RUNS/teacher" --out "$RUNS" --pairs "$PAIRS" --steps "$PAIR_STEPS"
  done_ "$RUNS/student-kd" "$RUNS/student-kd/transformer" "$KD_ITERS" ||
  $SPRINT distill student --teacher "$RUNS/teacher" --vae "$RUNS/vae/vae" --mode kd --init "$SHIPPED" \
    --pairs "$PAIRS" --pair-steps "$PAIR_STEPS" --pair-filter "$PAIR_FILTER" --pair-balance --out "$RUNS/student-kd" --iters "$KD_ITERS" --lr 3e-4 \
    --warmup "$(every 200)" --lr-schedule cosine --ema 0.995 --eval-every "$STUDENT_EVAL_EVERY" "${CACHE_ARG[@]}" \
    "${STUDENT_EXTRA[@]}"
  SHIPPED="$RUNS/student-kd/transformer"  # the cosine's end (its best-judged weights weigh 2 and 4 steps too)
fi
$SPRINT distill package --vae "$DECODER" --teacher "$RUNS/teacher" --student "$SHIPPED" --out "$OUT"
done_ "$RUNS/controlnet" "$RUNS/controlnet/controlnet" "$CN_ITERS" ||
  $SPRINT distill controlnet --model "$OUT" --out "$RUNS/controlnet" --iters "$CN_ITERS" \
  --num-layers "$CN_LAYERS" --eval-every "$CN_ITERS" \
  --lr-schedule cosine --decay-start "$((CN_ITERS > CN_COOLDOWN ? CN_ITERS - CN_COOLDOWN : 0))"
$SPRINT distill package --vae "$DECODER" --teacher "$RUNS/teacher" \
  --student "$SHIPPED" --controlnet "$RUNS/controlnet/controlnet" --out "$OUT"
$SPRINT distill package-teacher --vae "$DECODER" --teacher "$RUNS/teacher" --out "$OUT-teacher"
mkdir -p "$BENCH"

# The model card's table and sample grids.
$SPRINT evaluate --teacher "$RUNS/teacher" --vae "$DECODER" --steps 20,4,2,1 \
  --images "$EVAL_IMAGES" --json "$BENCH/eval-teacher.json"
for mode in hybrid scm ladd; do
  [ "$mode" = "$SHIP" ] && [ "$KD_ITERS" -le 0 ] && continue  # with KD, SHIP's row is the one before it
  $SPRINT distill package --vae "$DECODER" --teacher "$RUNS/teacher" \
    --student "$(student "$mode")" --out "$RUNS/model-$mode"
  $SPRINT evaluate --model "$RUNS/model-$mode" --steps 1,2,4 --images "$EVAL_IMAGES" \
    --json "$BENCH/eval-$mode.json"
done
$SPRINT evaluate --model "$OUT" --steps 1,2,4 --images "$EVAL_IMAGES" --grid "$OUT/samples.png" \
  --json "$BENCH/eval-$(if [ "$KD_ITERS" -gt 0 ]; then echo "$SHIP-kd"; else echo "$SHIP"; fi).json"
