"""Result types: what QUALS returns for one summary, and for each QA pair behind the score."""

from __future__ import annotations

import statistics
from array import array
from dataclasses import asdict, dataclass

from quals.engine.filtering import Rejection


@dataclass
class QAPair:
    """One kept QA pair and the numbers behind its contribution to QUALS.

    ``quals = ll_source - ll_reference`` over the scored tokens (``QualsConfig.score_tokens``: the whole pair, as
    the paper, or its answer only), where the reference is the summary (the paper) or no passage at all
    (``QualsConfig.ll_reference``; for a sentence pair, a mix of the two: ``QualsConfig.sentence_prior_weight``,
    ``reference_ll``). The per-token lists cover every target token, whatever was scored.
    """

    question: str
    answer: str
    quals: float  # this pair's contribution to the summary's QUALS
    ll_source: float  # mean log-likelihood of the scored tokens given the source (best window, or its evidence)
    ll_summary: float  # the same given the summary (or the search score, in parity mode)
    tokens: list[str]  # the target tokens
    source_logprobs: list[float]  # per-token log-probabilities given the source
    summary_logprobs: list[float]  # per-token log-probabilities given the summary (teacher forced)
    search_score: float | None = None  # penalized cumulative generation score, when the pair came from one sequence
    source_window: int = 0  # which source window gave ll_source
    answer_start: int = 0  # index in ``tokens`` of the first answer token (after the separator)
    ll_prior: float | None = None  # the same given no passage (when its reference needs it)
    prior_logprobs: list[float] | None = None
    evidence: str | None = None  # the source sentences the pair was scored on (QualsConfig.evidence_sentences)
    sentence_pair: bool = False  # a summary sentence as the answer to a fixed question (QualsConfig.sentence_pairs)


def prior_share(ll_reference: str, sentence_pair: bool, sentence_prior_weight: float) -> float:
    """The share of a pair's reference that is its LL given no passage: 1 with ``ll_reference="no_passage"``, else
    ``sentence_prior_weight`` for a sentence pair and 0 for a QA pair (the paper's LL_summary)."""
    if ll_reference == "no_passage":
        return 1.0
    return sentence_prior_weight if sentence_pair else 0.0


def reference_ll(ll_summary: float, ll_prior: float | None, prior_share: float) -> float:
    """What a pair's LL_source is compared with: LL given the summary, LL given no passage (``prior_share`` 1), or
    ``(1 - prior_share) LL_summary + prior_share LL_prior`` (a sentence pair's ``sentence_prior_weight``)."""
    if prior_share == 0:
        return ll_summary
    if ll_prior is None:
        raise ValueError("a reference with a no-passage share needs the pair's LL given no passage")
    return ll_prior if prior_share == 1 else (1 - prior_share) * ll_summary + prior_share * ll_prior


@dataclass
class SummaryScore:
    """QUALS of one summary. ``quals`` is ``None`` when nothing could be scored; ``error`` then says why."""

    index: int
    quals: float | None
    num_pairs: int = 0
    num_generated: int = 0
    source_handling: str = "full"  # "full", "windows" (best window per pair), "truncated" or "evidence"
    num_source_windows: int = 0
    summary_truncated: bool = False
    error: str | None = None
    probability: float | None = None  # P(consistent) from the preset's calibration (None: none fitted, or unscored)
    consistent: bool | None = None  # probability >= the calibration's threshold
    pairs: list[QAPair] | None = None  # with return_qa_pairs=True, least supported first
    rejected: list[Rejection] | None = None  # with return_qa_pairs=True
    spans: list | None = None  # with return_qa_pairs=True: explain.Span, least supported first
    sentences: list | None = None  # with return_qa_pairs=True: explain.SentenceScore, in summary order

    def to_dict(self) -> dict:
        """JSON-ready dict (pairs and rejections included only when they were requested)."""
        out = asdict(self)
        for name in ("pairs", "rejected", "spans", "sentences"):
            if getattr(self, name) is None:
                out.pop(name)
        return out


def unscored_reason(error: str | None) -> str:
    """The reason an unscored summary is counted under: its error up to the first colon.

    >>> unscored_reason("empty input: summary 3 is empty or whitespace only")
    'empty input'
    >>> unscored_reason(None)
    'unknown'
    """
    return (error or "unknown").split(":")[0]


class CorpusSummary:
    """Aggregate over many summaries: the mean over scored ones, and how many could not be scored and why.

    A running tally (8 bytes per scored summary, for the median): ``add`` takes a ``SummaryScore`` or an output
    record (a dict with ``quals`` and ``error``), so the API, the command line and merged corpus runs count
    unscored summaries the same way.

    >>> corpus = CorpusSummary.of([SummaryScore(0, -0.5), SummaryScore(1, None, error="empty input: summary 1")])
    >>> corpus.mean_quals, corpus.num_scored, corpus.num_unscored, corpus.errors
    (-0.5, 1, 1, {'empty input': 1})
    """

    def __init__(self):
        self.values = array("d")
        self.errors: dict[str, int] = {}

    @classmethod
    def of(cls, scores: list[SummaryScore] | list[dict]) -> CorpusSummary:
        corpus = cls()
        for score in scores:
            corpus.add(score)
        return corpus

    def add(self, score: SummaryScore | dict) -> None:
        quals, error = (score.get("quals"), score.get("error")) if isinstance(score, dict) else (score.quals,
                                                                                                 score.error)
        if quals is not None:
            self.values.append(quals)
        else:
            reason = unscored_reason(error)
            self.errors[reason] = self.errors.get(reason, 0) + 1

    @property
    def num_scored(self) -> int:
        return len(self.values)

    @property
    def num_unscored(self) -> int:
        return sum(self.errors.values())

    @property
    def mean_quals(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    def table(self, seconds: float | None = None) -> str:
        """The closing table of a command-line run."""
        values, rows = self.values, self.num_scored + self.num_unscored
        lines = [f"{'summaries':<22}{rows}", f"{'scored':<22}{len(values)}", f"{'unscored':<22}{self.num_unscored}"]
        lines += [f"  {reason + ' ':<20}{count}" for reason, count in sorted(self.errors.items())]
        if values:
            spread = f"{min(values):.4f} / {statistics.median(values):.4f} / {max(values):.4f}"
            lines += [f"{'mean QUALS':<22}{statistics.fmean(values):.4f}",
                      f"{'std':<22}{statistics.pstdev(values):.4f}", f"{'min / median / max':<22}{spread}"]
        if seconds is not None:
            lines.append(f"{'time':<22}{seconds:.1f} s ({rows / max(seconds, 1e-9):.2f} summaries/s)")
        return "\n".join(["", "QUALS summary", "-" * 40, *lines])
