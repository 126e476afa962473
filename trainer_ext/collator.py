"""ContrastiveCollator: turn a batch of training documents into the rows the contrastive loss needs.

The training DataLoader walks over all documents every epoch (so epochs keep a fixed length, and resuming and
gradient accumulation work as in any Trainer run); the collator reads the current round from the store and emits,
per document, only the rows that train:

- ``unlikelihood``: the reference if the document is in S+, its selected candidate if it is in S- (paired mode:
  both, so a document's positive and negative sit in the same batch);
- ``margin_rank``: the reference (MLE term) and all its scored candidates sorted best-first (ranking term).

Each source is encoded once: rows point to their document with ``row_document``. A batch in which no document
trains gets one zero-weight placeholder row, so every rank still runs a forward and backward pass (DDP needs it).

Output (``D`` documents kept, ``R`` rows, ``S``/``T`` source/target lengths, ``C`` = ``num_candidates``):

+---------------------+-----------+---------------------------------------------------------+
| key                 | shape     | meaning                                                 |
+=====================+===========+=========================================================+
| ``input_ids``       | ``[D,S]`` | sources (padded with the tokenizer)                     |
| ``attention_mask``  | ``[D,S]`` |                                                         |
| ``labels``          | ``[R,T]`` | summary token ids, ``-100`` padding                     |
| ``row_document``    | ``[R]``   | index of the row's document in ``input_ids``            |
| ``row_weight``      | ``[R]``   | 1.0, or 0.0 for the placeholder row                     |
| ``is_negative``     | ``[R]``   | unlikelihood: row is in S-                              |
| ``negative_token_`` | ``[R,T]`` | unlikelihood, ``unlikelihood_tokens="novel"`` only:     |
| ``mask``            |           | S- tokens absent from the source                        |
| ``is_reference``    | ``[R]``   | margin_rank: reference row (MLE term)                   |
| ``candidate_index`` | ``[R]``   | margin_rank: ``d * C + rank`` in the score grid, or -1  |
| ``candidate_mask``  | ``[D,C]`` | margin_rank: which grid cells hold a candidate          |
+---------------------+-----------+---------------------------------------------------------+
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer_ext.candidates import CandidateStore
from trainer_ext.losses import IGNORE_INDEX
from trainer_ext.selection import is_score


@dataclass
class _Row:
    document: int
    labels: list[int]
    weight: float = 1.0
    negative: bool = False
    reference: bool = False
    candidate_index: int = -1


class ContrastiveCollator:
    """Builds contrastive batches from dataset features (``input_ids``, ``labels``, the id column) and the store."""

    def __init__(self, store: CandidateStore, tokenizer, id_column: str = "id", loss_type: str = "unlikelihood",
                 num_candidates: int = 6, pad_to_multiple_of: int | None = None, unlikelihood_tokens: str = "all"):
        self.store, self.tokenizer, self.id_column = store, tokenizer, id_column
        self.loss_type, self.num_candidates, self.pad_to_multiple_of = loss_type, num_candidates, pad_to_multiple_of
        self.unlikelihood_tokens = unlikelihood_tokens

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        documents: list[dict] = []
        rows: list[_Row] = []
        for feature in features:
            for key in (self.id_column, "input_ids", "labels"):
                if key not in feature:
                    raise KeyError(f"ContrastiveCollator: a training example has no {key!r} field (has "
                                   f"{sorted(feature)}); tokenize sources into input_ids and references into labels")
            doc_rows = self._rows(str(feature[self.id_column]), feature, len(documents))
            if doc_rows:
                documents.append(feature)
                rows.extend(doc_rows)
        if not rows:  # nothing trains in this batch: one zero-weight row keeps all ranks in lock-step
            documents = [features[0]]
            rows = [_Row(0, _label_list(features[0]["labels"]), weight=0.0)]
        return self._tensors(documents, rows)

    def _rows(self, doc_id: str, feature: dict, position: int) -> list[_Row]:
        reference = _label_list(feature["labels"])
        if self.loss_type == "unlikelihood":
            selection, rows = self.store.selection, []
            if doc_id in self._positive_ids(selection):
                rows.append(_Row(position, reference))
            if doc_id in selection.negatives:
                index = selection.negatives[doc_id]
                rows.append(_Row(position, self.store[doc_id].token_ids[index], negative=True))
            return rows
        if doc_id not in self.store:
            return []
        doc = self.store[doc_id]
        ranked = sorted((i for i, s in enumerate(doc.scores) if is_score(s)), key=lambda i: -doc.scores[i])
        ranked = ranked[: self.num_candidates]
        if len(ranked) < 2:
            return []
        rows = [_Row(position, reference, reference=True)]
        rows += [_Row(position, doc.token_ids[i], candidate_index=position * self.num_candidates + rank)
                 for rank, i in enumerate(ranked)]
        return rows

    def _positive_ids(self, selection) -> set[str]:
        if getattr(self, "_cached_selection", None) is not selection:
            self._cached_selection, self._cached_positives = selection, set(selection.positives)
        return self._cached_positives

    def _tensors(self, documents: list[dict], rows: list[_Row]) -> dict[str, torch.Tensor]:
        sources = [{"input_ids": d["input_ids"], **({"attention_mask": d["attention_mask"]}
                                                    if "attention_mask" in d else {})} for d in documents]
        batch = dict(self.tokenizer.pad(sources, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of))
        width = max(len(row.labels) for row in rows) or 1
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)  # [R, T]
        for r, row in enumerate(rows):
            labels[r, : len(row.labels)] = torch.tensor(row.labels, dtype=torch.long)
        batch.update(labels=labels, row_document=torch.tensor([row.document for row in rows]),
                     row_weight=torch.tensor([row.weight for row in rows]))
        if self.loss_type == "unlikelihood":
            batch["is_negative"] = torch.tensor([row.negative for row in rows])
            if self.unlikelihood_tokens == "novel":  # penalize only S- tokens that the source does not contain
                source_tokens = [set(d["input_ids"]) for d in documents]
                batch["negative_token_mask"] = torch.tensor(
                    [[row.negative and t not in source_tokens[row.document] for t in row.labels]
                     + [False] * (width - len(row.labels)) for row in rows])  # [R, T]
        else:
            batch["is_reference"] = torch.tensor([row.reference for row in rows])
            batch["candidate_index"] = torch.tensor([row.candidate_index for row in rows])
            mask = torch.zeros(len(documents) * self.num_candidates, dtype=torch.bool)
            placed = batch["candidate_index"][batch["candidate_index"] >= 0]
            mask[placed] = True
            batch["candidate_mask"] = mask.view(len(documents), self.num_candidates)  # [D, C]
        return batch


def _label_list(labels) -> list[int]:
    ids = labels.tolist() if isinstance(labels, torch.Tensor) else list(labels)
    return [i for i in ids if i != IGNORE_INDEX]
