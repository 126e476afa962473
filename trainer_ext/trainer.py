"""ContrastiveTrainer: CONSEQ (Nan et al., ACL 2021) as a drop-in ``Seq2SeqTrainer``.

Swap the class and the arguments of an existing ``Seq2SeqTrainer`` script and pass a scorer::

    args = ContrastiveTrainingArguments(output_dir="out", conseq_num_candidates=6, learning_rate=3e-6,
                                        num_train_epochs=2)
    trainer = ContrastiveTrainer(model=model, args=args, train_dataset=train, eval_dataset=val,
                                 processing_class=tokenizer, scorer=QualsScorer(model="qagen"),
                                 peft_config=LoraConfig(task_type="SEQ_2_SEQ_LM"))   # optional
    trainer.train()

What changes under the hood (everything else is the stock Trainer loop, so evaluation, checkpoints, resuming,
launchers and logging integrations behave as usual):

- a :class:`CandidateRegenerationCallback` fills ``self.candidate_store`` at the start of every N-th epoch;
- training batches come from :class:`ContrastiveCollator` (rows of S+ and S- per document, from the store);
- ``compute_loss`` encodes each source once, decodes all its rows, and applies the objective's loss
  (``trainer_ext.objectives``: the paper's unlikelihood, margin ranking, pairwise); evaluation batches keep the
  plain seq2seq loss;
- the loss is normalized by the target-token count of the whole accumulated batch, over all accumulation steps and
  (with ``average_tokens_across_devices``) all ranks, as fairseq does in the paper's code;
- the store is saved in every checkpoint and restored by ``resume_from_checkpoint``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections import defaultdict
from typing import ClassVar

import torch
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, Seq2SeqTrainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from trainer_ext._compat import apply_peft, call_through_wrapper, training_args_checkpointing
from trainer_ext.callback import CandidateRegenerationCallback, RoundDependencies
from trainer_ext.candidates import STORE_FILE, CandidateStore
from trainer_ext.collator import ContrastiveCollator
from trainer_ext.config import ContrastiveTrainingArguments
from trainer_ext.data import DropColumnsCollator, example_ids, with_example_ids
from trainer_ext.losses import IGNORE_INDEX
from trainer_ext.objectives import ConseqObjective, objective_from_args
from trainer_ext.scorers import as_score_function
from trainer_ext.summarizers import CausalSummarizer, summarizer_kind
from trainer_ext.texts import DocumentTexts, load_text_dataset


logger = logging.getLogger(__name__)

class ContrastiveTrainer(Seq2SeqTrainer):
    """``Seq2SeqTrainer`` that trains with CONSEQ; see the module docstring.

    Args (beyond ``Seq2SeqTrainer``'s):
        scorer: a ``quals.QualsScorer``, an ``evaluate`` metric, a :class:`~trainer_ext.scorers.RougeScorer`, or
            any callable ``f(summaries, sources) -> list[float | None]`` (higher = more faithful).
        peft_config: optional ``peft.PeftConfig``; the model is wrapped with ``get_peft_model`` and only the
            adapters train (``save_model`` then writes a normal peft adapter; see :meth:`save_merged_model`).
        objective: a :class:`~trainer_ext.objectives.ConseqObjective`; default: the one ``args.conseq_loss_type``
            names, configured by the other ``conseq_*`` arguments.
    """

    # compute_loss divides by the token count of the whole accumulated batch (passed in ``num_items_in_batch``),
    # so the Trainer must not divide by the number of accumulation steps again.
    loss_is_scaled_for_ga = True
    _tag_names: ClassVar[list[str]] = ["conseq", "contrastive"]

    def __init__(self, model=None, args: ContrastiveTrainingArguments | None = None, train_dataset=None,
                 scorer=None, peft_config=None, data_collator=None, processing_class=None,
                 objective: ConseqObjective | None = None, **kwargs):
        if args is None:
            args = ContrastiveTrainingArguments(output_dir="conseq_output")
        if not isinstance(args, ContrastiveTrainingArguments):
            raise TypeError("args must be ContrastiveTrainingArguments (it extends Seq2SeqTrainingArguments with the "
                            f"CONSEQ settings), got {type(args).__name__}")
        if processing_class is None:
            raise ValueError("ContrastiveTrainer needs processing_class= (the tokenizer) to pad, generate and decode")
        if isinstance(model, str):
            model = AutoModelForSeq2SeqLM.from_pretrained(model, use_safetensors=True)  # never unpickle weights
        if peft_config is not None:
            model = apply_peft(model, peft_config, training_args_checkpointing(args)[0])
        self.kind = summarizer_kind(model, processing_class)
        if isinstance(self.kind, CausalSummarizer):
            processing_class.padding_side = "left"  # prompts are left-padded, so each reply follows its prompt
            if train_dataset is not None and args.conseq_source_column is None:
                raise ValueError("A decoder-only summarizer's input_ids hold its prompt (template and instruction), "
                                 "not the source the scorer needs: set conseq_source_column to the raw document "
                                 "column (of the training rows, or of conseq_text_dataset when tokenization removed "
                                 "it).")
        if train_dataset is not None and args.conseq_source_column is None:
            logger.warning("conseq_source_column is not set: the scorer reads each source as the tokenizer decodes "
                           "input_ids (truncated to the model's input, lower-cased by some tokenizers). To score "
                           "against the full text, name the raw document column: of the training rows, or of the "
                           "untokenized data given as conseq_text_dataset.")
        document_texts = None  # evaluation- or prediction-only runs need no train set, as with Seq2SeqTrainer
        if train_dataset is not None:
            train_dataset = with_example_ids(train_dataset, args.conseq_id_column)
            text_dataset = None if args.conseq_text_dataset is None else load_text_dataset(
                args.conseq_text_dataset, args.conseq_text_dataset_config, args.conseq_text_dataset_split)
            document_texts = DocumentTexts(train_dataset, processing_class, args.conseq_source_column,
                                           args.conseq_summary_column, text_dataset)
        base_collator = data_collator or DataCollatorForSeq2Seq(processing_class, model=model)
        extra_columns = {args.conseq_id_column, args.conseq_source_column, args.conseq_summary_column} - {None}
        super().__init__(model=model, args=args, train_dataset=train_dataset,
                         data_collator=DropColumnsCollator(base_collator, extra_columns),
                         processing_class=processing_class, **kwargs)
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and self.args.world_size == 1:
            raise ValueError(f"This process was launched as one of {launched} (WORLD_SIZE={launched}), but the "
                             "training arguments see a single process, so each would train alone into the same "
                             "output_dir. On CPU pass --use_cpu (the gloo backend); on GPUs check that every process "
                             "sees its device.")
        if self.args.n_gpu > 1:
            raise ValueError("ContrastiveTrainer does not support torch.nn.DataParallel (several GPUs in one "
                             "process); launch with torchrun or accelerate launch (DDP) instead")
        self.model_accepts_loss_kwargs = False  # we call the model ourselves; never pass num_items_in_batch to it
        self.example_ids = [] if train_dataset is None else example_ids(self.train_dataset, args.conseq_id_column)
        self.score_function = as_score_function(scorer, args.conseq_metric_key, args.conseq_metric_kwargs)
        self.objective = objective if objective is not None else objective_from_args(args)
        self.candidate_store = CandidateStore()
        self.contrastive_collator = ContrastiveCollator(self.candidate_store, processing_class, self.objective,
                                                        args.conseq_id_column,
                                                        getattr(base_collator, "pad_to_multiple_of", None),
                                                        self.kind.padding_side)
        self.regeneration_callback = CandidateRegenerationCallback(RoundDependencies(
            args=self.args, store=self.candidate_store, objective=self.objective, score_function=self.score_function,
            kind=self.kind, tokenizer=processing_class, accelerator=self.accelerator, example_ids=self.example_ids,
            document_texts=document_texts, model=lambda: self.accelerator.unwrap_model(self.model_wrapped),
            log=self.log))
        self.add_callback(self.regeneration_callback)
        self._loss_components: dict[str, list[float]] = defaultdict(list)
        self._loss_stats: dict[str, list[float]] = defaultdict(list)
        self._components_logged_at = 0
        self._accumulated_batch_is_empty = False
        self.empty_steps_skipped = 0

    # ------------------------------------------------------------------ data
    def _set_signature_columns_if_needed(self):
        """Keep the id column when ``remove_unused_columns=True`` (the collator looks candidates up by id)."""
        super()._set_signature_columns_if_needed()
        if self.args.conseq_id_column not in self._signature_columns:
            self._signature_columns.append(self.args.conseq_id_column)

    def get_train_dataloader(self):
        """The stock training DataLoader, built with the contrastive collator instead of the evaluation one."""
        evaluation_collator, self.data_collator = self.data_collator, self.contrastive_collator
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = evaluation_collator

    def create_optimizer(self, model=None):
        """The stock optimizer, whose ``step`` is skipped when no document of the accumulated batch trains.

        Such a batch has a zero gradient, but AdamW would still move the weights (momentum, weight decay); the paper
        trains on S+/S- documents only, so these steps do not exist there (``skip_empty_steps=False`` keeps them).
        """
        optimizer = super().create_optimizer(model)
        if self.args.conseq_skip_empty_steps and not getattr(optimizer, "_conseq_skips_empty_steps", False):
            step = optimizer.step

            def step_unless_empty(*args, **kwargs):
                if self._accumulated_batch_is_empty:
                    self.empty_steps_skipped += 1
                    return None
                return step(*args, **kwargs)

            optimizer.step = step_unless_empty
            optimizer._conseq_skips_empty_steps = True
        return optimizer

    # ------------------------------------------------------------------ loss
    def _get_num_items_in_batch(self, batch_samples, device):
        """Normalizers of the contrastive loss summed over the accumulated micro-batches (and ranks)."""
        if not batch_samples or "row_document" not in batch_samples[0]:
            return super()._get_num_items_in_batch(batch_samples, device)
        local: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), dtype=torch.long))
        for batch in batch_samples:
            for name, count in self.objective.counts(batch).items():
                local[name] = local[name] + count.cpu()
        names = sorted(local)
        counts = torch.stack([local[name] for name in names]).to(device)  # [num_counts]
        world = 1
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            counts = self.accelerator.gather(counts.unsqueeze(0)).sum(0)  # [world, num_counts] -> [num_counts]
            world = self.accelerator.num_processes
        return {"counts": dict(zip(names, counts, strict=True)), "num_processes": world}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "row_document" not in inputs:  # evaluation / prediction batches: the plain seq2seq loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        unwrapped = self.accelerator.unwrap_model(model)
        logits = call_through_wrapper(model, unwrapped, self._row_logits, unwrapped, inputs["input_ids"],
                                      inputs["attention_mask"], inputs["row_document"], inputs["labels"])
        log_probs = logits.float().log_softmax(-1)  # [R, T, V]
        parts = self.objective.loss(log_probs, inputs)
        scale = 1
        counts = None
        if isinstance(num_items_in_batch, dict):
            counts, scale = num_items_in_batch["counts"], num_items_in_batch["num_processes"]
            # every rank sees the same (global) counts, so every rank agrees on skipping the optimizer step
            agreed = scale == self.accelerator.num_processes
            self._accumulated_batch_is_empty = agreed and all(int(c) == 0 for c in counts.values())
        loss, components = parts.combine(counts)
        loss = loss * scale  # DDP averages gradients over ranks; the counts were summed over ranks
        for name, value in components.items():
            self._loss_components[f"loss_{name}"].append(value * scale)
        for name, value in parts.stats.items():
            self._loss_stats[name].append(value)
        return (loss, {"logits": logits}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """Evaluation and prediction; a decoder-only summarizer gets the loss of its summary tokens given the prompt
        and, with ``predict_with_generate``, the generated summary without the prompt (``max_length`` then counts
        summary tokens: it becomes ``max_new_tokens``)."""
        if not isinstance(self.kind, CausalSummarizer):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        unwrapped = self.accelerator.unwrap_model(model)
        loss = None
        with torch.no_grad():
            if labels is not None:
                documents = torch.arange(labels.size(0), device=labels.device)
                logits = self._row_logits(unwrapped, inputs["input_ids"], inputs["attention_mask"], documents, labels)
                loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten(),
                                                         ignore_index=IGNORE_INDEX)
            if prediction_loss_only or not self.args.predict_with_generate:
                return loss, None, labels
            kwargs = {**getattr(self, "_gen_kwargs", {}), **gen_kwargs}
            if "max_length" in kwargs and "max_new_tokens" not in kwargs:
                kwargs["max_new_tokens"] = kwargs.pop("max_length")
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
            generated = unwrapped.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                           **kwargs)[:, inputs["input_ids"].size(1):]  # [B, new tokens]
        return loss, generated, labels

    def _row_logits(self, model, input_ids, attention_mask, row_document, labels) -> torch.Tensor:
        """The summarizer kind's row logits, under the accelerator's autocast (the wrapper's own is bypassed)."""
        with self.accelerator.autocast():
            return self.kind.row_logits(model, input_ids, attention_mask, row_document, labels)  # [R, T, V]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the loss components and the log-prob statistics to training logs, gathered over ranks.

        Components (``loss_positive``, ...) are averaged per optimizer step and over ranks like ``loss``, so they
        add up to it under DDP too. Statistics (``logps_positive``/``logps_negative``: mean summed log-prob of
        the S+/S- rows of the micro-batches since the last log, and ``logps_margin``, their difference) are
        averaged over the micro-batches that had such rows, on every rank. Every rank calls ``log`` at the same
        steps, so the gathering is one collective call.
        """
        if "loss" in logs and self._loss_components:
            steps = max(self.state.global_step - self._components_logged_at, 1)
            components, stats = sorted(self._loss_components), self.loss_stat_names()
            local = [sum(self._loss_components[n]) / steps for n in components] + [
                sum(self._loss_stats[n]) / len(self._loss_stats[n]) if self._loss_stats[n] else float("nan")
                for n in stats]
            values = torch.tensor(local, device=self.args.device).unsqueeze(0)  # [1, components + stats]
            if self.args.world_size > 1:
                values = self.accelerator.gather(values)  # [world, components + stats]
            merged = values.nanmean(0).tolist()
            logs.update(dict(zip(components, merged[: len(components)], strict=True)))
            logs.update({name: value for name, value in zip(stats, merged[len(components):], strict=True)
                         if not math.isnan(value)})  # NaN: no such rows anywhere since the last log
            if "logps_positive" in logs and "logps_negative" in logs:
                logs["logps_margin"] = logs["logps_positive"] - logs["logps_negative"]
            self._loss_components.clear()
            self._loss_stats.clear()
            self._components_logged_at = self.state.global_step
        super().log(logs, start_time)

    def loss_stat_names(self) -> list[str]:
        """The statistics every rank reports (the same list on all ranks, for the gather)."""
        return list(self.objective.stat_names)

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            self.candidate_store.save(os.path.join(self._get_output_dir(trial=trial), folder, STORE_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.load_candidate_store(resume_from_checkpoint)

    def load_candidate_store(self, checkpoint: str) -> bool:
        """Restore the store saved in ``checkpoint`` in place (the collator keeps its reference). False if none."""
        path = os.path.join(checkpoint, STORE_FILE)
        if not os.path.exists(path):
            return False
        loaded = CandidateStore.load(path)
        store = self.candidate_store
        store.documents, store.round, store.epoch, store.history = (loaded.documents, loaded.round, loaded.epoch,
                                                                    loaded.history)
        store.selection = self.regeneration_callback.select(store)
        return True

    def save_merged_model(self, output_dir: str) -> None:
        """Save the model with LoRA adapters merged into the base weights (a plain transformers checkpoint).

        Merges a copy, so training can go on with the adapters; needs memory for a second copy of the model.
        """
        model = self.accelerator.unwrap_model(self.model)
        if hasattr(model, "merge_and_unload"):
            model = copy.deepcopy(model).merge_and_unload()
        if self.args.should_save:
            model.save_pretrained(output_dir)
            self.processing_class.save_pretrained(output_dir)
