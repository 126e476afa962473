"""QualsScorer: the QUALS metric (Nan et al., ACL 2021) for batches of (summary, source) pairs.

For each summary y of source x:
  1. QAGen writes G question-answer pairs from y with diverse beam search;
  2. the pairs are filtered (the answer must occur in y; de-duplication; about ``max_pairs`` kept);
  3. each kept pair z is scored by teacher forcing: LL_x(z) given the source, LL_y(z) given the summary
     (mean token log-likelihood);
  4. QUALS(x, y) = mean over kept pairs of LL_x(z) - LL_y(z).

Speed comes from batching: many summaries decode together (all their groups step-synchronously with the
KV cache), and each distinct source is encoded once, its encoder states reused for all pairs of all its
summaries (an LRU cache keeps them across calls, so K candidates of one document share one encoding).

>>> scorer = QualsScorer(preset="lmqg-t5-small")                         # doctest: +SKIP
>>> scorer.score(["Joshua will fight Klitschko."], [article])[0].quals   # doctest: +SKIP
-0.42
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from quals.engine.calibration import Calibration
from quals.engine.candidates import Generated, parse_sequences
from quals.engine.config import QualsConfig
from quals.engine.diverse_beam_search import diverse_beam_search
from quals.engine.evidence import evidence_passage
from quals.engine.explain import merge_spans, sentence_scores, summary_quals
from quals.engine.filtering import Candidate, Rejection, filter_pairs
from quals.engine.inputs import as_list, input_error, unreadable_reason
from quals.engine.loading import load_qagen, resolve_format
from quals.engine.progress import LongSourceProgress
from quals.engine.qagen import Context, QAGenModel, Target
from quals.engine.results import CorpusSummary, QAPair, SummaryScore, prior_share, reference_ll
from quals.engine.sentence_pairs import claim_sentences, sentence_pairs, set_aside_own_question
from quals.engine.source_cache import SourceCache


@dataclass
class Generation:
    """What QAGen wrote for one summary (stage 1): its G sequences, parsed into candidate pairs."""

    summary: str
    context: Context  # the summary as the model read it (its first window)
    summary_truncated: bool  # the summary was longer than the model's input
    sequences: list[Generated]  # per group: ids, raw and penalized log-probs [T]
    candidates: list[Candidate]
    unparseable: list[Rejection]


class QualsScorer:
    """Score summaries against their sources with QUALS.

    ``score`` runs three public stages on chunks of valid inputs: ``generate`` (QA pairs from each summary),
    ``select`` (filtering) and ``score_pairs`` (teacher forcing on sources and summaries).

    Args:
        config: a ``QualsConfig`` (``QualsConfig.paper_parity()`` reproduces the released code).
        qagen: an already loaded ``QAGenModel`` (otherwise loaded lazily on first use, once per process).
        **overrides: any ``QualsConfig`` field, e.g. ``QualsScorer(preset="mini", device="cuda")``.
    """

    def __init__(self, config: QualsConfig | None = None, *, qagen: QAGenModel | None = None,
                 source_cache_size: int = 256, source_cache_bytes: int = 2 << 30, **overrides):
        self.config = dataclasses.replace(config or QualsConfig(), **overrides)
        self.format = qagen.format if qagen is not None else resolve_format(
            self.config.preset, self.config.model, self.config.qa_separator, self.config.gguf_file)
        self._qagen = qagen
        self.source_cache = SourceCache(source_cache_size, source_cache_bytes)
        self._empty: Context | None = None  # an empty passage, encoded on first use (ll_reference="no_passage")
        self.decoder_rows = 0  # rows the QA generation fed to the decoder, summed over steps
        fmt, cfg = self.format, self.config
        self.settings = cfg.with_format(fmt)  # the config, with the preset's values where it leaves them to it
        self.calibration = (Calibration.load(cfg.calibration) if cfg.calibration
                            else Calibration(*fmt.calibration) if fmt.calibration and cfg.scores_as_calibrated(fmt)
                            else None)
        if cfg.ll_summary == "search" and fmt.multi_pair:
            raise ValueError(f"ll_summary='search' needs a one-pair-per-sequence format; {fmt.name!r} writes several "
                             "pairs per sequence, so a pair has no search score of its own")

    @property
    def qagen(self) -> QAGenModel:
        """The QAGen model, loaded on first use."""
        if self._qagen is None:
            self._qagen = load_qagen(self.format, self.config.device, self.config.dtype, self.config.allow_pickle)
        return self._qagen

    def load(self) -> QAGenModel:
        """Load the QAGen model now (it is otherwise loaded on first use); raises ``ModelLoadError``."""
        return self.qagen

    # ------------------------------------------------------------------ public API
    def score(self, summaries: Sequence[str], sources: Sequence[str], return_qa_pairs: bool = False,
              show_progress: bool | None = None, ids: Sequence[int] | None = None) -> list[SummaryScore]:
        """QUALS of each summary against its source, in input order.

        Invalid items (``None``, non-strings, empty or whitespace-only texts) and texts the model cannot read (another
        script, mostly unknown tokens: ``min_script_share``, ``max_unknown_share``) get ``quals=None`` and an
        ``error`` naming the problem; the other items are scored normally. Mismatched lengths raise.
        ``show_progress`` overrides the config for the bar over summaries (a caller drawing its own passes
        ``False``); sources long enough to need many windows get a bar of their own when the config shows progress.
        ``ids`` number the items in errors and in ``SummaryScore.index`` (default ``0..n-1``; a caller scoring rows
        of a larger file passes their row numbers).
        """
        summaries, sources = as_list(summaries, "summaries"), as_list(sources, "sources")
        if len(summaries) != len(sources):
            raise ValueError(f"Got {len(summaries)} summaries but {len(sources)} sources; they must pair up 1:1")
        ids = list(range(len(summaries))) if ids is None else list(ids)
        if len(ids) != len(summaries):
            raise ValueError(f"Got {len(ids)} ids for {len(summaries)} summaries")
        results: list[SummaryScore | None] = [None] * len(summaries)
        valid = []
        for i, (summary, source) in enumerate(zip(summaries, sources, strict=True)):
            n = ids[i]
            error = (input_error(summary, "summary", n) or input_error(source, "source", n)
                     or self._unreadable(summary, "summary", n) or self._unreadable(source, "source", n))
            if error:
                results[i] = SummaryScore(index=n, quals=None, error=error)
            else:
                valid.append(i)
        chunk = max(1, self.config.max_batch_tokens // (self.settings.num_beam_groups * 32))
        shown = self.config.show_progress if show_progress is None else show_progress
        with tqdm(total=len(summaries), desc="QUALS", unit="summary", disable=not shown) as bar:
            bar.update(len(summaries) - len(valid))
            for start in range(0, len(valid), chunk):
                indices = valid[start: start + chunk]
                generations = self.generate([summaries[i] for i in indices])
                selections = [self.select(generation) for generation in generations]
                scored = self.score_pairs(generations, selections, [sources[i] for i in indices], return_qa_pairs)
                for i, result in zip(indices, scored, strict=True):
                    results[i] = dataclasses.replace(result, index=ids[i])
                bar.update(len(indices))
        return results

    def _unreadable(self, text: str, what: str, index: int) -> str | None:
        cfg = self.config
        if cfg.min_script_share <= 0 and cfg.max_unknown_share >= 1:
            return None
        tokenizer = self.qagen.tokenizer if cfg.max_unknown_share < 1 else None
        return unreadable_reason(text, what, index, self.format.scripts, cfg.min_script_share, tokenizer,
                                 cfg.max_unknown_share)

    def _decision(self, quals: float | None) -> tuple[float | None, bool | None]:
        """``probability`` and ``consistent`` for a QUALS value (``None`` without a calibration)."""
        if self.calibration is None:
            return None, None
        return self.calibration.probability(quals), self.calibration.decide(quals)

    def quals(self, summaries: Sequence[str], sources: Sequence[str]) -> list[float | None]:
        """Just the scores (``None`` where nothing could be scored)."""
        return [r.quals for r in self.score(summaries, sources)]

    @staticmethod
    def aggregate(scores: list[SummaryScore]) -> CorpusSummary:
        """Mean over scored summaries plus the count (and reasons) of unscored ones."""
        return CorpusSummary.of(scores)

    # ------------------------------------------------------------------ the three stages
    def generate(self, summaries: list[str]) -> list[Generation]:
        """Stage 1: diverse beam search on each summary (batched by token budget), parsed into candidate pairs."""
        qagen, run = self.qagen, self.settings
        groups = run.num_beam_groups
        inputs = [qagen.passage_windows(s, run.max_source_tokens, 0.0) for s in summaries]
        contexts = self._encode([windows[0] for windows in inputs])
        per_item = groups * (max(c.length for c in contexts) + run.max_new_tokens + 1)
        batch = max(1, run.max_batch_tokens // per_item)
        out = []
        for start in range(0, len(contexts), batch):
            part = contexts[start: start + batch]
            search = diverse_beam_search(
                qagen.stepper(part, groups, run.share_context_cache), len(part), groups, run.diversity_penalty,
                run.min_new_tokens, run.max_new_tokens, qagen.eos_id, qagen.pad_id, run.penalty_candidates,
                run.share_prefixes)
            self.decoder_rows += search.decoder_rows
            sequences, raw = search.sequences.cpu(), search.token_logprobs.cpu()  # [N, G, T]
            penalized = search.penalized_logprobs.cpu()  # [N, G, T]
            for n, context in enumerate(part):
                generated = [(sequences[n, g, :length].tolist(), raw[n, g, :length], penalized[n, g, :length])
                             for g, length in enumerate(search.lengths[n].tolist())]
                k = start + n
                out.append(Generation(summaries[k], context, len(inputs[k]) > 1, generated,
                                      *parse_sequences(qagen, generated)))
        return out

    def select(self, generation: Generation) -> tuple[list[Candidate], list[Rejection]]:
        """Stage 2: the pairs QUALS keeps for a summary (``filter_mode``, ``max_pairs``), and the rejected ones."""
        candidates, own = generation.candidates, []
        if self.config.sentence_pairs:
            candidates, own = set_aside_own_question(candidates)
        kept, rejected = filter_pairs(candidates, generation.summary, self.config.filter_mode, self.config.max_pairs)
        if self.config.sentence_pairs:  # every sentence read as the answer to SENTENCE_QUESTION (not filtered)
            budget = self.settings.max_source_tokens if generation.summary_truncated else None
            kept += sentence_pairs(claim_sentences(generation.summary, budget, self._num_tokens), self.qagen.target)
        return kept, generation.unparseable + own + rejected

    def _num_tokens(self, text: str) -> int:
        return len(self.qagen.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score_pairs(self, generations: list[Generation], selections: list[tuple[list[Candidate], list[Rejection]]],
                    sources: list[str], return_qa_pairs: bool = False) -> list[SummaryScore]:
        """Stage 3: teacher-force each kept pair on its summary's source (each distinct source encoded once; with
        ``evidence_sentences``, on the source sentences nearest the pair instead), and on the summary unless the
        search already did; QUALS per summary."""
        qagen, per_summary = self.qagen, selections
        summary_contexts = [g.context for g in generations]
        long_sources = LongSourceProgress(self.config.show_progress)
        evidence = self.config.evidence_sentences  # 0: every pair reads the whole source (its windows)
        if evidence:
            for i, (kept, _) in enumerate(per_summary):
                for cand in kept:
                    question = "" if cand.payload.get("sentence_pair") else cand.question  # the fixed one says nothing
                    cand.payload["evidence"] = evidence_passage(sources[i], question, cand.answer, evidence)
        passages = self._passage_contexts([cand.payload["evidence"] for kept, _ in per_summary for cand in kept]
                                          if evidence else sources, long_sources)
        jobs = []  # (summary index, kept index, context, target, window | "summary" | "prior")
        summary_lp: dict[tuple[int, int], torch.Tensor] = {}
        for i, (kept, _) in enumerate(per_summary):
            for j, cand in enumerate(kept):
                target = cand.payload["target"]
                cand.payload["answer_start"] = qagen.answer_start(target)
                if self._prior_share(cand):
                    jobs.append((i, j, self._empty_passage(), target, "prior"))
                generated = cand.payload.get("generated_logprobs") if self.config.reuse_search_logprobs else None
                if self.config.ll_summary == "teacher_forced" and generated is not None:
                    summary_lp[i, j] = generated  # raw log-probs of exactly these ids given the summary
                elif self.config.ll_summary == "teacher_forced":
                    jobs.append((i, j, summary_contexts[i], target, "summary"))
                for w, window in enumerate(passages[cand.payload["evidence"] if evidence else sources[i]][0]):
                    jobs.append((i, j, window, target, w))
        logprobs = self._token_logprobs([(job[2], job[3]) for job in jobs], long_sources.add(len(jobs)))
        long_sources.close()

        source_lp: dict[tuple[int, int], tuple[torch.Tensor, int]] = {}
        prior_lp: dict[tuple[int, int], torch.Tensor] = {}
        for (i, j, _, _, where), lp in zip(jobs, logprobs, strict=True):
            if where == "summary":
                summary_lp[i, j] = lp
            elif where == "prior":
                prior_lp[i, j] = lp
            elif (i, j) not in source_lp or self._mean(lp, per_summary[i][0][j]) > self._mean(source_lp[i, j][0],
                                                                                              per_summary[i][0][j]):
                source_lp[i, j] = (lp, where)  # the window that supports the pair best

        results = []
        for i, (kept, rejected) in enumerate(per_summary):
            pairs = [self._pair(cand, source_lp[i, j], summary_lp.get((i, j)), prior_lp.get((i, j)))
                     for j, cand in enumerate(kept)]
            if evidence:  # the distinct passages its pairs were scored on
                handling, windows_used = "evidence", len({cand.payload["evidence"] for cand in kept})
            else:
                windows_used, windows_needed = len(passages[sources[i]][0]), passages[sources[i]][1]
                handling = ("full" if windows_needed == 1 else
                            "truncated" if windows_used < windows_needed else "windows")
            result = SummaryScore(
                index=i,
                quals=summary_quals(generations[i].summary, pairs),
                num_pairs=len(pairs),
                num_generated=self.settings.num_beam_groups,
                source_handling=handling,
                num_source_windows=windows_used,
                summary_truncated=generations[i].summary_truncated,
                error=None if pairs else "no QA pair survived filtering",
            )
            result.probability, result.consistent = self._decision(result.quals)
            if return_qa_pairs:
                result.pairs = sorted(pairs, key=lambda p: p.quals)
                result.rejected = rejected
                result.spans = merge_spans(generations[i].summary, pairs)
                result.sentences = sentence_scores(generations[i].summary, pairs, result.quals)
            results.append(result)
        return results

    def _mean(self, logprobs: torch.Tensor, cand: Candidate) -> float:
        """Mean log-likelihood of the scored tokens: all of them, or the answer's (``score_tokens``; always the
        answer's for a sentence pair, whose question is fixed)."""
        answer_only = self.config.score_tokens == "answer" or cand.payload.get("sentence_pair", False)
        start = cand.payload["answer_start"] if answer_only else 0
        return float(logprobs[start:].mean())

    def _prior_share(self, cand: Candidate) -> float:
        return prior_share(self.config.ll_reference, cand.payload.get("sentence_pair", False),
                           self.settings.sentence_prior_weight)

    def _pair(self, cand: Candidate, source: tuple[torch.Tensor, int], summary_lp: torch.Tensor | None,
              prior_lp: torch.Tensor | None) -> QAPair:
        source_lp, window = source
        target: Target = cand.payload["target"]
        if summary_lp is None:  # parity: LL_summary from the penalized search score
            summary_lp = cand.payload["penalized"]
        tokens = self.qagen.tokenizer.convert_ids_to_tokens(target.ids[target.num_unscored:])[: len(source_lp)]
        ll_source, ll_summary = self._mean(source_lp, cand), self._mean(summary_lp, cand)
        ll_prior = None if prior_lp is None else self._mean(prior_lp, cand)
        reference = reference_ll(ll_summary, ll_prior, self._prior_share(cand))
        return QAPair(question=cand.question, answer=cand.answer, quals=ll_source - reference, ll_source=ll_source,
                      ll_summary=ll_summary, tokens=tokens, source_logprobs=source_lp.tolist(),
                      summary_logprobs=summary_lp.tolist(), search_score=cand.payload.get("search_score"),
                      source_window=window, answer_start=cand.payload["answer_start"], ll_prior=ll_prior,
                      prior_logprobs=None if prior_lp is None else prior_lp.tolist(),
                      evidence=cand.payload.get("evidence"), sentence_pair=cand.payload.get("sentence_pair", False))

    def _empty_passage(self) -> Context:
        """The context of an empty passage (the reference of ``ll_reference="no_passage"``), encoded once."""
        if self._empty is None:
            self._empty = self._encode([self.qagen.passage_windows("", self.settings.max_source_tokens)[0]])[0]
        return self._empty

    def _passage_contexts(self, texts: list[str], long_sources: LongSourceProgress
                          ) -> dict[str, tuple[list[Context], int]]:
        """Each distinct text's encoded windows (only the first in 'truncate' mode) and the number it needs.

        Texts not in the LRU cache are encoded together in budget-sized batches, so a source shared by several
        summaries, or an evidence passage shared by several pairs, is encoded once, even across calls.
        """
        entries = {text: self.source_cache.get(text) for text in dict.fromkeys(texts)}
        missing: dict[str, tuple[list[list[int]], int]] = {}
        for text in [text for text, entry in entries.items() if entry is None]:
            windows = self.qagen.passage_windows(text, self.settings.max_source_tokens, self.config.window_overlap)
            needed = len(windows)
            if self.config.long_source == "truncate":
                windows = windows[:1]
            elif self.config.max_source_windows is not None:
                windows = windows[: self.config.max_source_windows]
            missing[text] = (windows, needed)
        flat = [window for windows, _ in missing.values() for window in windows]
        longest = max((len(windows) for windows, _ in missing.values()), default=0)
        encoded = iter(self._encode(flat, long_sources.add(len(flat), source_windows=longest)))
        for text, (windows, needed) in missing.items():
            entries[text] = ([next(encoded) for _ in windows], needed)
            self.source_cache.put(text, entries[text])
        return entries

    # ------------------------------------------------------------------ batching
    def _encode(self, inputs: list[list[int]], progress: Callable[[int], object] | None = None) -> list[Context]:
        order = sorted(range(len(inputs)), key=lambda k: len(inputs[k]), reverse=True)
        contexts: list[Context | None] = [None] * len(inputs)
        for batch in _budget_batches(order, lambda k: len(inputs[k]), self.config.max_batch_tokens):
            for k, context in zip(batch, self.qagen.encode([inputs[k] for k in batch]), strict=True):
                contexts[k] = context
            if progress is not None:
                progress(len(batch))
        return contexts

    def _token_logprobs(self, jobs: list[tuple[Context, Target]], progress: Callable[[int], object] | None = None
                        ) -> list[torch.Tensor]:
        """Teacher-forced log-probs for (context, target) jobs, batched by padded token count."""
        def cost(k: int) -> int:
            return jobs[k][0].length + len(jobs[k][1].ids)

        order = sorted(range(len(jobs)), key=cost, reverse=True)
        out: list[torch.Tensor | None] = [None] * len(jobs)
        for batch in _budget_batches(order, cost, self.config.max_batch_tokens):
            rows = self.qagen.token_logprobs([jobs[k][0] for k in batch], [jobs[k][1] for k in batch],
                                             self.config.share_context_cache)
            for k, lp in zip(batch, rows, strict=True):
                out[k] = lp
            if progress is not None:
                progress(len(batch))
        return out


def _budget_batches(order: list[int], cost, budget: int):
    """Split ``order`` (sorted by decreasing cost) into batches whose rows x max cost stay within ``budget``."""
    batch: list[int] = []
    for k in order:
        if batch and (len(batch) + 1) * cost(batch[0]) > budget:
            yield batch
            batch = []
        batch.append(k)
    if batch:
        yield batch
