#!/bin/bash
# warm-start comparison at 256x256: the bundled model fine-tuned on the real-photo data with today's
# discriminator (w_a) and with the projected VGG16 discriminator + ADA diffaug (w_db), 45 CPU-minutes each on
# one thread, bf16 where the CPU runs it natively (stage 2 of docs/recipe.md; resumable). Needs data/landscapes_v2. A fresh start loads whatever
# model is bundled as "default" (train.init_from); a resumed run ignores init_from.
cd "$(dirname "$0")/.."
mkdir -p runs/finetune
PY=.venv/bin/python
COMMON=(--data data/landscapes_v2 --root runs/finetune --threads 1 --budget-cpu-minutes 45 --parallel 2
        --set train.precision=auto --set log.checkpoint_seconds=300 --set log.sample_every=100 --set log.log_every=10)
$PY tools/recipe_compare.py train "${COMMON[@]}" \
  --set train.init_from=default --set train.batch_size=2 --set train.ema_decay=0.995 --set train.ema_start=0 \
  --set train.decay_start=1.0 --set train.steps=20000 \
  --arm w_a=landscapes --arm w_db=landscapes_photo >> runs/finetune/compare.log 2>&1
