#!/bin/bash
# The recipe comparison of docs/recipe.md: six arms in two lanes, 45 CPU-minutes each on one thread (resumable:
# tools/recipe_compare.py keeps the CPU used in runs/recipe/ARM/budget.json). Needs data/landscapes_v2
# (spadekit data make-landscapes --n 3000 --seed 1 --out data/landscapes_v2).
cd "$(dirname "$0")/.."
PY=.venv/bin/python
COMMON=(--data data/landscapes_v2 --root runs/recipe --threads 1 --budget-cpu-minutes 45 --parallel 1
        --set train.steps=100000 --set train.precision=fp32 --set log.checkpoint_seconds=120
        --set log.sample_every=250 --set log.log_every=10)
SMALL=(--set data.load_size=143 --set data.crop_size=128)
lane1() {
  $PY tools/recipe_compare.py train "${COMMON[@]}" --arm b=recipe_b_diffaug >> runs/recipe/compare_b.log 2>&1
  $PY tools/recipe_compare.py train "${COMMON[@]}" --arm c=recipe_c_oasis >> runs/recipe/compare_c.log 2>&1
  $PY tools/recipe_compare.py train "${COMMON[@]}" "${SMALL[@]}" --arm a=landscapes >> runs/recipe/compare_a.log 2>&1
}
lane2() {
  $PY tools/recipe_compare.py train "${COMMON[@]}" --arm d=recipe_d_projected >> runs/recipe/compare_d.log 2>&1
  $PY tools/recipe_compare.py train "${COMMON[@]}" --arm e=recipe_e_clade >> runs/recipe/compare_e.log 2>&1
  $PY tools/recipe_compare.py train "${COMMON[@]}" "${SMALL[@]}" --set model.ngf=32 --arm f=landscapes >> runs/recipe/compare_f.log 2>&1
}
lane1 & lane2 & wait
