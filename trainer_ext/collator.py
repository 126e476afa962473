"""ContrastiveCollator: turn a batch of training documents into the rows the CONSEQ objective needs.

The training DataLoader walks over all documents every epoch (so epochs keep a fixed length, and resuming and
gradient accumulation work as in any Trainer run); the collator reads the current round from the store and asks
the objective (``trainer_ext.objectives``) for each document's rows: only documents with rows are kept.

Each source is encoded once: rows point to their document with ``row_document``. A batch in which no document
trains gets one zero-weight placeholder row, so every rank still runs a forward and backward pass (DDP needs it).

Output (``D`` documents kept, ``R`` rows, ``S``/``T`` source/target lengths), plus the objective's own keys
(``ConseqObjective.batch_fields``):

+---------------------+-----------+---------------------------------------------------------+
| key                 | shape     | meaning                                                 |
+=====================+===========+=========================================================+
| ``input_ids``       | ``[D,S]`` | sources (padded with the tokenizer)                     |
| ``attention_mask``  | ``[D,S]`` |                                                         |
| ``labels``          | ``[R,T]`` | summary token ids, ``-100`` padding                     |
| ``row_document``    | ``[R]``   | index of the row's document in ``input_ids``            |
| ``row_weight``      | ``[R]``   | 1.0, or 0.0 for the placeholder row                     |
+---------------------+-----------+---------------------------------------------------------+
"""

from __future__ import annotations

import torch

from trainer_ext.candidates import CandidateStore
from trainer_ext.losses import IGNORE_INDEX
from trainer_ext.objectives import ConseqObjective, Row


class ContrastiveCollator:
    """Builds contrastive batches from dataset features (``input_ids``, ``labels``, the id column) and the store."""

    def __init__(self, store: CandidateStore, tokenizer, objective: ConseqObjective, id_column: str = "id",
                 pad_to_multiple_of: int | None = None, padding_side: str | None = None):
        self.store, self.tokenizer, self.objective = store, tokenizer, objective
        self.id_column, self.pad_to_multiple_of = id_column, pad_to_multiple_of
        self.padding_side = padding_side  # of the sources; None: the tokenizer's (a causal LM's prompts: left)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        documents: list[dict] = []
        rows: list[Row] = []
        for feature in features:
            for key in (self.id_column, "input_ids", "labels"):
                if key not in feature:
                    raise KeyError(f"ContrastiveCollator: a training example has no {key!r} field (has "
                                   f"{sorted(feature)}); tokenize sources into input_ids and references into labels")
            doc_rows = self.objective.rows(str(feature[self.id_column]), _label_list(feature["labels"]), self.store,
                                           len(documents))
            if doc_rows:
                documents.append(feature)
                rows.extend(doc_rows)
        if not rows:  # nothing trains in this batch: one zero-weight row keeps all ranks in lock-step
            documents = [features[0]]
            rows = [Row(0, _label_list(features[0]["labels"]), weight=0.0)]
        return self._tensors(documents, rows)

    def _tensors(self, documents: list[dict], rows: list[Row]) -> dict[str, torch.Tensor]:
        sources = [{"input_ids": d["input_ids"], **({"attention_mask": d["attention_mask"]}
                                                    if "attention_mask" in d else {})} for d in documents]
        batch = dict(self.tokenizer.pad(sources, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of,
                                        padding_side=self.padding_side))
        width = max(len(row.labels) for row in rows) or 1
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)  # [R, T]
        for r, row in enumerate(rows):
            labels[r, : len(row.labels)] = torch.tensor(row.labels, dtype=torch.long)
        batch.update(labels=labels, row_document=torch.tensor([row.document for row in rows]),
                     row_weight=torch.tensor([row.weight for row in rows]))
        batch.update(self.objective.batch_fields(documents, rows, width))
        return batch


def _label_list(labels) -> list[int]:
    ids = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    return [i for i in ids if i != IGNORE_INDEX]
