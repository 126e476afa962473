"""Result types: what QUALS returns for one summary, and for each QA pair behind the score."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from quals.filtering import Rejection


@dataclass
class QAPair:
    """One kept QA pair and the numbers behind its contribution to QUALS.

    ``quals = ll_source - ll_reference`` over the scored tokens (``QualsConfig.score_tokens``: the whole pair, as
    the paper, or its answer only), where the reference is the summary (the paper) or no passage at all
    (``QualsConfig.ll_reference``). The per-token lists cover every target token, whatever was scored.
    """

    question: str
    answer: str
    quals: float  # this pair's contribution to the summary's QUALS
    ll_source: float  # mean log-likelihood of the scored tokens given the source (best window)
    ll_summary: float  # the same given the summary (or the search score, in parity mode)
    tokens: list[str]  # the target tokens
    source_logprobs: list[float]  # per-token log-probabilities given the source
    summary_logprobs: list[float]  # per-token log-probabilities given the summary (teacher forced)
    search_score: float | None = None  # penalized cumulative generation score, when the pair came from one sequence
    source_window: int = 0  # which source window gave ll_source
    answer_start: int = 0  # index in ``tokens`` of the first answer token (after the separator)
    ll_prior: float | None = None  # the same given no passage (computed with ll_reference="no_passage")
    prior_logprobs: list[float] | None = None


@dataclass
class SummaryScore:
    """QUALS of one summary. ``quals`` is ``None`` when nothing could be scored; ``error`` then says why."""

    index: int
    quals: float | None
    num_pairs: int = 0
    num_generated: int = 0
    source_handling: str = "full"  # "full", "windows" (best window per pair) or "truncated"
    num_source_windows: int = 0
    summary_truncated: bool = False
    error: str | None = None
    pairs: list[QAPair] | None = None  # with return_qa_pairs=True, least supported first
    rejected: list[Rejection] | None = None  # with return_qa_pairs=True

    def to_dict(self) -> dict:
        """JSON-ready dict (pairs and rejections included only when they were requested)."""
        out = asdict(self)
        if self.pairs is None:
            out.pop("pairs")
        if self.rejected is None:
            out.pop("rejected")
        return out


def unscored_reason(error: str | None) -> str:
    """The reason an unscored summary is counted under: its error up to the first colon.

    >>> unscored_reason("empty input: summary 3 is empty or whitespace only")
    'empty input'
    >>> unscored_reason(None)
    'unknown'
    """
    return (error or "unknown").split(":")[0]


@dataclass
class CorpusSummary:
    """Aggregate over many summaries: the mean over scored ones, and how many could not be scored."""

    mean_quals: float | None
    num_scored: int
    num_unscored: int
    errors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, scores: list[SummaryScore]) -> CorpusSummary:
        values = [s.quals for s in scores if s.quals is not None]
        errors: dict[str, int] = {}
        for s in scores:
            if s.quals is None:
                reason = unscored_reason(s.error)
                errors[reason] = errors.get(reason, 0) + 1
        mean = sum(values) / len(values) if values else None
        return cls(mean, len(values), len(scores) - len(values), errors)
