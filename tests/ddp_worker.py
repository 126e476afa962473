"""Two-process CONSEQ run for tests/test_trainer_distributed.py: ``torchrun --nproc_per_node 2 ddp_worker.py OUT``.

Each rank trains the same tiny task (CPU, gloo) for 2 epochs and writes what it built to ``OUT/rank<r>.json``: its
S+/S-, the candidates of every document, how many summaries it scored itself, and a checksum of its parameters.
"""

import hashlib
import json
import sys
from pathlib import Path

import torch

from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments
from trainer_ext.testing import tiny_summarization_task, word_overlap_scorer


def main(out: Path) -> None:
    torch.set_num_threads(1)
    model, tokenizer, dataset = tiny_summarization_task(num_documents=10)
    scored = []

    def scorer(summaries, sources):
        scored.extend(summaries)
        return word_overlap_scorer(summaries, sources)

    args = ContrastiveTrainingArguments(
        output_dir=str(out / "run"), per_device_train_batch_size=2, num_train_epochs=2, learning_rate=1e-3,
        report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, generation_max_length=8,
        conseq_num_candidates=2, conseq_negative_fraction=0.6, conseq_positive_fraction=0.6,
        conseq_selection_mode="unpaired", logging_steps=1,
        ddp_backend="gloo")
    trainer = ContrastiveTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                 scorer=scorer)
    trainer.train()
    store = trainer.candidate_store
    checksum = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in trainer.model.parameters()))
    record = {"rank": trainer.args.process_index, "world_size": trainer.args.world_size,
              "positives": store.selection.positives, "negatives": store.selection.negatives,
              "candidates": {d: c.texts for d, c in store.documents.items()}, "rounds": store.round,
              "scored_locally": len(scored), "parameters": checksum.hexdigest(),
              "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
              "loss_parts": [h["loss_positive"] + h["loss_negative"] for h in trainer.state.log_history
                             if "loss" in h],
              "margins": [h.get("logps_margin") for h in trainer.state.log_history if "loss" in h]}
    (out / f"rank{record['rank']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
