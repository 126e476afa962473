"""Does a trained QAGen read its passage? Held-out evaluation on whole SQuAD articles.

Reports, on articles held out from training (the split saved as ``split.json`` by ``quals train-qagen``):

- token loss: teacher-forced mean negative log-likelihood per target token of the held-out reference pairs
  (the same number the training loop logs as ``eval_loss``, on every held-out pair instead of a sample);
- answer-in-passage share: generated answers (diverse beam search, the scorer's decoder) found in *their own*
  passage, next to the share found in a *different* held-out passage (what a passage-blind model would get by
  chance), and the same two shares for question content words. "Found" is the strict filter's test (word
  boundaries after lower-casing and punctuation to spaces, so a WordPiece decoding "34. 8" matches "34.8"); the
  raw lower-cased substring test of the reference filter is reported too;
- a dozen sample pairs.

    python benchmarks/qagen_eval.py --model quals/models/mini          # its split.json says what was held out
    python benchmarks/qagen_eval.py --preset smollm2-135m --split quals/models/smollm2-qagen/split.json \\
        --out benchmarks/results/qagen_eval_smollm2.json                  # a zero-shot preset on the same articles
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from quals import diverse_beam_search, load_qagen, normalize, resolve_format
from quals.recipe import load_examples


STOPWORDS = frozenset(["the", "a", "an", "of", "in", "on", "at", "to", "for", "by", "with", "from", "and", "or", "is",
                       "was", "were", "are", "be", "been", "did", "does", "do", "what", "which", "who", "whom",
                       "whose", "when", "where", "why", "how", "that", "this", "these", "those", "it", "its", "as",
                       "than", "into", "during", "after", "before", "about", "many", "much"])


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS and len(w) > 2}


def found_in(answer: str, text: str) -> bool:
    """The strict filter's answer test: a non-empty answer on word boundaries of the normalized text."""
    return bool(normalize(answer)) and f" {normalize(answer)} " in f" {normalize(text)} "


def token_loss(qagen, examples, batch: int = 16) -> float:
    """Mean NLL per target token of the reference pairs, each passage encoded once."""
    by_passage: dict[str, list] = {}
    for e in examples:
        by_passage.setdefault(e.passage, []).append(qagen.target(e.question, e.answer))
    total, count = 0.0, 0
    for passage, targets in tqdm(by_passage.items(), desc="token loss"):
        context = qagen.encode([qagen.passage_windows(passage)[0]])[0]
        for start in range(0, len(targets), batch):
            chunk = targets[start: start + batch]
            for lp in qagen.token_logprobs([context] * len(chunk), chunk):
                total, count = total - float(lp.sum()), count + lp.numel()
    return total / count


def generate(qagen, passages: list[str], groups: int, penalty: float, batch: int = 4) -> list[list[tuple[str, str]]]:
    """Parsed (question, answer) pairs of ``groups`` diverse sequences per passage, best group first."""
    fmt, out = qagen.format, []
    for start in tqdm(range(0, len(passages), batch), desc="generate"):
        contexts = qagen.encode([qagen.passage_windows(p)[0] for p in passages[start: start + batch]])
        search = diverse_beam_search(qagen.stepper(contexts, groups), len(contexts), groups, penalty,
                                     fmt.min_new_tokens, fmt.max_new_tokens, qagen.eos_id, qagen.pad_id)
        for n in range(len(contexts)):
            pairs = []
            for g, length in enumerate(search.lengths[n].tolist()):
                _, parsed = qagen.decode_pairs(search.sequences[n, g, :length].tolist())
                pairs.extend(parsed[:1])
            out.append(pairs)
    return out


def evaluate(fmt, split: dict, squad: str, num_passages: int, groups: int, penalty: float, seed: int,
             loss_pairs: int | None = None) -> dict:
    qagen = load_qagen(fmt, "cpu")
    model = fmt.adapter or fmt.model
    heldout = [e for e in load_examples(squad) if e.article in set(split["heldout_articles"])]
    sample = loss_pairs is not None and loss_pairs < len(heldout)
    scored = random.Random(seed).sample(heldout, loss_pairs) if sample else heldout
    started = time.time()
    loss = token_loss(qagen, scored)
    passages = list(dict.fromkeys(e.passage for e in heldout))
    rng = random.Random(seed)  # the same passages whether or not the loss was sampled
    chosen = rng.sample(passages, min(num_passages, len(passages)))
    others = [chosen[(i + 1) % len(chosen)] for i in range(len(chosen))]  # a different held-out passage
    generated = generate(qagen, chosen, groups, penalty)
    counts = {"answers": 0, "answer_in_own": 0, "answer_in_other": 0, "answer_substring_of_own": 0,
              "answer_substring_of_other": 0, "top_in_own": 0, "top_in_other": 0, "questions": 0,
              "question_overlap_own": 0, "question_overlap_other": 0, "passages_with_pairs": 0}
    samples = []
    for passage, other, pairs in zip(chosen, others, generated, strict=True):
        if not pairs:
            continue
        counts["passages_with_pairs"] += 1
        counts["top_in_own"] += found_in(pairs[0][1], passage)
        counts["top_in_other"] += found_in(pairs[0][1], other)
        for question, answer in pairs:
            counts["answers"] += 1
            counts["answer_in_own"] += found_in(answer, passage)
            counts["answer_in_other"] += found_in(answer, other)
            counts["answer_substring_of_own"] += bool(answer) and answer.lower() in passage.lower()
            counts["answer_substring_of_other"] += bool(answer) and answer.lower() in other.lower()
            counts["questions"] += 1
            words = content_words(question)
            counts["question_overlap_own"] += bool(words & content_words(passage))
            counts["question_overlap_other"] += bool(words & content_words(other))
        if len(samples) < 12:
            samples.append({"passage": passage[:200] + "...", "question": pairs[0][0], "answer": pairs[0][1],
                            "answer_in_passage": found_in(pairs[0][1], passage)})
    answers, tops = max(counts["answers"], 1), max(counts["passages_with_pairs"], 1)
    return {
        "model": model, "gguf_file": fmt.gguf_file, "heldout_articles": split["heldout_articles"],
        "heldout_pairs": len(heldout),
        "token_loss": round(loss, 4), "token_loss_pairs": len(scored), "passages_generated": len(chosen),
        "groups": groups, "diversity_penalty": penalty,
        "answer_in_own_passage": round(counts["answer_in_own"] / answers, 4),
        "answer_in_other_passage": round(counts["answer_in_other"] / answers, 4),
        "answer_substring_of_own_passage": round(counts["answer_substring_of_own"] / answers, 4),
        "answer_substring_of_other_passage": round(counts["answer_substring_of_other"] / answers, 4),
        "top_answer_in_own_passage": round(counts["top_in_own"] / tops, 4),
        "top_answer_in_other_passage": round(counts["top_in_other"] / tops, 4),
        "question_mentions_own_passage": round(counts["question_overlap_own"] / max(counts["questions"], 1), 4),
        "question_mentions_other_passage": round(counts["question_overlap_other"] / max(counts["questions"], 1), 4),
        "distinct_top_questions": len({s["question"] for s in samples}), "counts": counts, "samples": samples,
        "seconds": round(time.time() - started, 1), "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="QAGen folder (default: quals/models/mini unless --preset)")
    parser.add_argument("--preset", default=None, help="a preset (e.g. a causal LM used zero- or few-shot)")
    parser.add_argument("--gguf-file", default=None, help="GGUF file inside --model")
    parser.add_argument("--split", default=None, help="split.json written by quals train-qagen (default: the "
                                                       "model folder's own)")
    parser.add_argument("--squad", default="../shared/data/squad/dev-v1.1.reconstructed.json")
    parser.add_argument("--passages", type=int, default=60, help="held-out passages to generate from")
    parser.add_argument("--loss-pairs", type=int, default=None, help="token loss on a seeded sample of this many "
                                                                      "held-out pairs (default: all; a larger model "
                                                                      "on CPU)")
    parser.add_argument("--groups", type=int, default=5, help="diverse-beam groups per passage")
    parser.add_argument("--penalty", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/qagen_eval.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or (None if args.preset else "quals/models/mini")
    fmt = resolve_format(args.preset, model, gguf_file=args.gguf_file)
    split = Path(args.split or Path(fmt.adapter or fmt.model) / "split.json")
    if not split.is_file():
        parser.error(f"no split file at {split}: pass --split (the split.json that quals train-qagen wrote)")
    result = evaluate(fmt, json.loads(split.read_text()), args.squad, args.passages, args.groups, args.penalty,
                      args.seed, args.loss_pairs)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"token loss {result['token_loss']:.3f} | answers in own passage {result['answer_in_own_passage']:.1%} "
          f"vs other passage {result['answer_in_other_passage']:.1%} | top answer "
          f"{result['top_answer_in_own_passage']:.1%} vs {result['top_answer_in_other_passage']:.1%}")
    for s in result["samples"]:
        print(f"- {s['question']} <sep> {s['answer']}  [{'in' if s['answer_in_passage'] else 'NOT in'} passage]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
