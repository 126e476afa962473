"""Candidate summaries: the store (keyed by example id, saved with checkpoints) and their batched generation.

The store lives in the main process and is read by :class:`~trainer_ext.collator.ContrastiveCollator`; a new
round replaces its content in place, so the training DataLoader (built once by the Trainer) sees the new
candidates at the next epoch without being rebuilt.

File format (``CandidateStore.save`` / ``load``, also accepted as ``conseq_candidates_file``): JSON lines, one document
each: ``{"id": ..., "candidates": [str, ...], "candidate_ids": [[int, ...], ...]?, "candidate_scores": [...]?,
"reference_score": ...?}``; a ``<name>.meta.json`` next to it keeps the round and epoch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from trainer_ext.sampling import seedable, seeded_sampling_kwargs
from trainer_ext.selection import Selection
from trainer_ext.summarizers import Seq2SeqSummarizer, SummarizerKind


STORE_FILE = "conseq_candidates.jsonl"


@dataclass
class DocumentCandidates:
    """The candidates of one training document and their scores (``None`` = could not be scored)."""

    texts: list[str]
    token_ids: list[list[int]]
    scores: list[float | None] = field(default_factory=list)
    reference_score: float | None = None

    def to_json(self, doc_id: str) -> dict:
        return {"id": doc_id, "candidates": self.texts, "candidate_ids": self.token_ids,
                "candidate_scores": self.scores, "reference_score": self.reference_score}


class CandidateStore:
    """Candidates per example id, the current S+/S- selection, and which round/epoch produced them."""

    def __init__(self):
        self.documents: dict[str, DocumentCandidates] = {}
        self.selection = Selection()
        self.round = 0  # number of rounds generated so far
        self.epoch: int | None = None  # epoch at whose start the current candidates were made
        self.history: list[dict] = []  # per-round statistics

    def __len__(self) -> int:
        return len(self.documents)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self.documents

    def __getitem__(self, doc_id: str) -> DocumentCandidates:
        return self.documents[doc_id]

    def replace(self, documents: dict[str, DocumentCandidates], epoch: int) -> None:
        """Install a new round in place (the collator holds a reference to this object)."""
        self.documents = dict(documents)
        self.round += 1
        self.epoch = epoch

    def scores(self) -> tuple[dict[str, list[float | None]], dict[str, float | None]]:
        """(candidate scores by id, reference score by id), in store order."""
        return ({doc_id: doc.scores for doc_id, doc in self.documents.items()},
                {doc_id: doc.reference_score for doc_id, doc in self.documents.items()})

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(doc.to_json(doc_id)) + "\n" for doc_id, doc in self.documents.items())
        meta = {"round": self.round, "epoch": self.epoch, "history": self.history}
        path.with_suffix(".meta.json").write_text(json.dumps(meta), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, tokenizer=None) -> CandidateStore:
        """Read a saved store, or a user's candidates file (``candidate_ids`` then come from ``tokenizer``)."""
        path, store = Path(path), cls()
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if "id" not in record or not isinstance(record.get("candidates"), list):
                    raise ValueError(f"{path}:{line_number}: each line needs 'id' and a 'candidates' list")
                texts = [str(text) for text in record["candidates"]]
                token_ids = record.get("candidate_ids")
                if token_ids is None:
                    if tokenizer is None:
                        raise ValueError(f"{path}:{line_number}: no candidate_ids; pass a tokenizer to tokenize")
                    token_ids = tokenizer(text_target=texts)["input_ids"] if texts else []
                scores = record.get("candidate_scores") or [None] * len(texts)
                if not len(texts) == len(token_ids) == len(scores):
                    raise ValueError(f"{path}:{line_number}: candidates, candidate_ids and candidate_scores differ "
                                     "in length")
                store.documents[str(record["id"])] = DocumentCandidates(texts, token_ids, scores,
                                                                        record.get("reference_score"))
        meta_path = path.with_suffix(".meta.json")
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            store.round, store.epoch, store.history = meta["round"], meta["epoch"], meta.get("history", [])
        return store


def strip_generated(sequence: Sequence[int], eos_token_id: int | None, pad_token_id: int | None,
                    start: int = 1) -> list[int]:
    """Label ids of one generated sequence: drop what precedes the summary (``start`` tokens: the decoder start
    token, or a causal LM's prompt), cut after the first eos, drop padding."""
    ids = list(sequence[start:])
    if eos_token_id is not None and eos_token_id in ids:
        ids = ids[: ids.index(eos_token_id) + 1]
    elif pad_token_id is not None:
        while ids and ids[-1] == pad_token_id:
            ids.pop()
    return ids


@torch.no_grad()
def generate_candidates(model, tokenizer, sources: list[list[int]], generation_kwargs: dict, batch_size: int,
                        device: torch.device, show_progress: bool = True,
                        seeds: list[list[int]] | None = None, kind: SummarizerKind | None = None
                        ) -> list[list[list[int]]]:
    """K candidates (label ids) for each tokenized source, with ``model.generate`` in batches.

    ``sources``: input ids per document -> ``[document][candidate] -> ids``; K is
    ``generation_kwargs["num_return_sequences"]``. With ``seeds`` (``[document][candidate]``, see
    ``trainer_ext.sampling``) and plain sampling kwargs, each candidate is drawn from its own generator, so the
    candidates of a document do not depend on ``batch_size`` or on the documents batched with it. ``kind``
    (``trainer_ext.summarizers``; default: encoder-decoder) says how to pad the inputs and where a generated
    summary starts. The caller puts the model in generation mode.
    """
    kind = kind or Seq2SeqSummarizer()
    num_return = generation_kwargs.get("num_return_sequences", 1)
    seeded = seeds is not None and seedable(generation_kwargs)
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    out: list[list[list[int]]] = []
    for start in tqdm(range(0, len(sources), batch_size), desc="CONSEQ candidates", unit="batch",
                      disable=not show_progress):
        documents = sources[start: start + batch_size]
        if seeded:  # one row per (document, candidate), each with its own generator
            chunk = [{"input_ids": ids} for ids in documents for _ in range(num_return)]
            kwargs = seeded_sampling_kwargs(generation_kwargs, [s for row in seeds[start: start + batch_size]
                                                                for s in row])
        else:
            chunk, kwargs = [{"input_ids": ids} for ids in documents], generation_kwargs
        batch = tokenizer.pad(chunk, return_tensors="pt", padding_side=kind.padding_side).to(device)
        sequences = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   **kwargs)  # [B * K, L]: decoder start token (or the prompt), then the summary
        start = kind.summary_start(batch["input_ids"].size(1))
        rows = [strip_generated(row, eos_id, pad_id, start) for row in sequences.tolist()]
        out.extend(rows[i: i + num_return] for i in range(0, len(rows), num_return))
    return out
