"""CONSEQ fine-tuning of an MLE summarizer on XSum with QUALS: a Seq2SeqTrainer script with two lines changed.

Start from an MLE-trained summarizer (e.g. ``facebook/bart-large-xsum``) and a QAGen model folder (see
docs/qagen-models.md and ``quals train-qagen``). The defaults follow the paper (Nan et al., ACL 2021, section 4 of
the algorithm notes): 6 top-k(50) samples of 10-60 tokens per document, S- = worst sample of the bottom 30 %, S+ =
references of the top 30 %, lr 3e-6 constant, 2 epochs, label smoothing 0.1, clip-norm 0.1, weight decay 0.01.

    # one GPU
    python examples/train_conseq_xsum.py --model facebook/bart-large-xsum --qagen path/to/qagen --out runs/conseq
    # several GPUs: every rank generates and scores its shard of the training set
    torchrun --nproc_per_node 8 examples/train_conseq_xsum.py --model ... --qagen ... --out runs/conseq
    # the paper's offline mode (candidates generated once) and LoRA instead of full fine-tuning
    python examples/train_conseq_xsum.py ... --regenerate-every 0 --lora
    # the ROUGE-contrastive baseline
    python examples/train_conseq_xsum.py ... --scorer rouge

Data: a JSON-lines file with ``id``, ``document`` and ``summary`` fields (``--train``), or the Hub dataset
``EdinburghNLP/xsum`` when network access is available. Offline in this repository:
``--train ../shared/data/xsum_pairs/train_pairs.jsonl --summary-field reference``.
"""

from __future__ import annotations

import argparse

from datasets import load_dataset
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from quals import QualsScorer
from trainer_ext import ContrastiveTrainer, ContrastiveTrainingArguments, RougeScorer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="MLE summarizer (Hub id or folder)")
    parser.add_argument("--qagen", help="QAGen model folder for QUALS (required with --scorer quals)")
    parser.add_argument("--scorer", choices=["quals", "rouge"], default="quals")
    parser.add_argument("--train", help="JSON-lines file with document/summary (default: EdinburghNLP/xsum)")
    parser.add_argument("--validation", help="JSON-lines file for evaluation during training")
    parser.add_argument("--summary-field", default="summary", help="field holding the reference summary")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=3e-6)
    parser.add_argument("--batch-size", type=int, default=8, help="documents per device and step")
    parser.add_argument("--gradient-accumulation", type=int, default=4)
    parser.add_argument("--regenerate-every", type=int, default=1, help="epochs between rounds; 0 = once (paper)")
    parser.add_argument("--num-candidates", type=int, default=6)
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters instead of all weights")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--max-source-tokens", type=int, default=1024)
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint in --out")
    return parser.parse_args()


def main() -> None:
    cli = parse_args()
    tokenizer = AutoTokenizer.from_pretrained(cli.model)
    model = AutoModelForSeq2SeqLM.from_pretrained(cli.model, use_safetensors=True)

    files = {"train": cli.train, **({"validation": cli.validation} if cli.validation else {})}
    raw = load_dataset("json", data_files=files) if cli.train else load_dataset("EdinburghNLP/xsum")

    def preprocess(batch):
        return tokenizer(batch["document"], text_target=batch[cli.summary_field], max_length=cli.max_source_tokens,
                         truncation=True)

    data = raw.map(preprocess, batched=True)

    # The two changed lines of a Seq2SeqTrainer script: the arguments class and the trainer class (+ scorer).
    args = ContrastiveTrainingArguments(
        output_dir=cli.out, num_train_epochs=cli.epochs, learning_rate=cli.lr, lr_scheduler_type="constant",
        per_device_train_batch_size=cli.batch_size, gradient_accumulation_steps=cli.gradient_accumulation,
        per_device_eval_batch_size=cli.batch_size, weight_decay=0.01, max_grad_norm=0.1, bf16=cli.bf16,
        save_strategy="epoch", logging_steps=50, eval_strategy="epoch" if "validation" in data else "no",
        predict_with_generate=False, report_to="all",
        # CONSEQ (paper defaults spelled out)
        conseq_num_candidates=cli.num_candidates, conseq_regenerate_every_epochs=cli.regenerate_every,
        conseq_generation_kwargs={"do_sample": True, "top_k": 50, "min_new_tokens": 10, "max_new_tokens": 60},
        conseq_negative_fraction=0.3, conseq_positive_fraction=0.3 if cli.scorer == "quals" else 1.0,
        conseq_selection_mode="paired", conseq_loss_type="unlikelihood", conseq_loss_label_smoothing=0.1,
        conseq_source_column="document", conseq_summary_column=cli.summary_field, conseq_id_column="id")

    if cli.scorer == "quals":
        if not cli.qagen:
            raise SystemExit("--scorer quals needs --qagen <QAGen model folder>")
        scorer = QualsScorer(model=cli.qagen, show_progress=False)  # device: this rank's GPU
    else:
        scorer = RougeScorer()  # ROUGE-L against the reference: the paper's ROUGE-contrastive baseline

    peft_config = None
    if cli.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="SEQ_2_SEQ_LM", r=16, lora_alpha=32, lora_dropout=0.05,
                                 target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"])

    trainer = ContrastiveTrainer(model=model, args=args, train_dataset=data["train"],
                                 eval_dataset=data.get("validation"), processing_class=tokenizer, scorer=scorer,
                                 peft_config=peft_config)
    trainer.train(resume_from_checkpoint=True if cli.resume else None)
    trainer.save_model(cli.out)  # a peft adapter with --lora
    if cli.lora:
        trainer.save_merged_model(f"{cli.out}/merged")


if __name__ == "__main__":
    main()
