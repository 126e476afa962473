"""A tiny offline summarization task for tests and examples: a word-level tokenizer, a tiny BART, and templated
documents (``quals.testing.SyntheticWorld``) whose reference summary is their first sentence.

>>> model, tokenizer, dataset = tiny_summarization_task(num_documents=4)
>>> sorted(dataset.column_names)
['attention_mask', 'document', 'id', 'input_ids', 'labels', 'summary']
"""

from __future__ import annotations

from datasets import Dataset

from quals.testing import SyntheticWorld, chat_tokenizer, tiny_bart, tiny_causal_lm, word_tokenizer


def synthetic_documents(num_documents: int, seed: int = 0) -> Dataset:
    """``id``, ``document`` and its reference ``summary`` (the document's first sentence) for each document."""
    world = SyntheticWorld(seed)
    rows = []
    for i in range(num_documents):
        fact = world.fact()
        rows.append({"id": f"doc-{i}", "document": world.document(fact), "summary": world.sentence(fact)})
    return Dataset.from_list(rows)


def tiny_summarization_task(num_documents: int = 16, seed: int = 0, with_ids: bool = True):
    """(model, tokenizer, tokenized ``datasets.Dataset`` with ``document``/``summary`` text columns)."""
    tokenizer = word_tokenizer()
    model = tiny_bart(len(tokenizer), d_model=32, layers=1, seed=seed)
    dataset = synthetic_documents(num_documents, seed).map(
        lambda batch: tokenizer(batch["document"], text_target=batch["summary"]), batched=True)
    return model, tokenizer, dataset if with_ids else dataset.remove_columns("id")


def tiny_causal_summarization_task(num_documents: int = 16, seed: int = 0, instruction: str = "Summarize."):
    """(model, tokenizer, tokenized ``datasets.Dataset``) for a decoder-only summarizer: a tiny Llama, a ChatML
    tokenizer, ``input_ids`` = the chat prompt (document and instruction, up to the assistant's turn), ``labels`` =
    the summary and the end-of-turn token; the ``document``/``summary`` text columns stay."""
    tokenizer = chat_tokenizer()
    model = tiny_causal_lm(len(tokenizer), d_model=32, layers=1, seed=seed)

    def tokenize(row):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": f"{row['document']}\n{instruction}"}],
                                               add_generation_prompt=True, tokenize=False)
        return {"input_ids": tokenizer(prompt, add_special_tokens=False).input_ids,
                "labels": tokenizer(row["summary"] + tokenizer.eos_token, add_special_tokens=False).input_ids}

    return model, tokenizer, synthetic_documents(num_documents, seed).map(tokenize)


def word_overlap_scorer(summaries: list[str], sources: list[str]) -> list[float | None]:
    """Share of a summary's words that occur in its source (None for an empty summary): a cheap stand-in scorer."""
    scores: list[float | None] = []
    for summary, source in zip(summaries, sources, strict=True):
        words = summary.split()
        scores.append(sum(word in set(source.split()) for word in words) / len(words) if words else None)
    return scores
