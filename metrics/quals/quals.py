# Copyright 2026 The QUALS contributors. Licensed under the Apache License, Version 2.0.
"""QUALS: QUestion Answering with Language model Score, a factual-consistency metric for summaries."""

import importlib
import sys
from pathlib import Path

import datasets
import evaluate


logger = evaluate.logging.get_logger(__name__)


def _import_engine():
    """The QUALS engine package, ``quals`` (``pip install quals``).

    This module must itself be named ``quals.py`` (evaluate's rule), so where its folder is on ``sys.path`` (the
    Space runs ``app.py`` beside it) or a folder holding an exported ``quals/`` metric is (``evaluate.load("quals")``
    with an editable install of the engine), Python would import the metric instead of the engine. Such folders
    are left off the path while the engine is imported; nothing else is changed.
    """
    def shadows(entry: str) -> bool:
        folder = Path(entry or ".")
        return (folder / "quals.py").is_file() or (folder / "quals" / "quals.py").is_file()

    saved = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if not shadows(entry)]
    try:
        engine = importlib.import_module("quals")
    finally:
        sys.path[:] = saved
    if not hasattr(engine, "QualsScorer"):
        raise ImportError("The QUALS metric needs the quals package (pip install quals); 'import quals' found "
                          f"{getattr(engine, '__file__', None) or list(engine.__path__)} instead")
    return engine


quals_engine = _import_engine()

_CITATION = """\
@inproceedings{nan-etal-2021-improving,
    title = "Improving Factual Consistency of Abstractive Summarization via Question Answering",
    author = "Nan, Feng and dos Santos, Cicero and Zhu, Henghui and Ng, Patrick and McKeown, Kathleen and
              Nallapati, Ramesh and Zhang, Dejiao and Wang, Zhiguo and Arnold, Andrew O. and Xiang, Bing",
    booktitle = "Proceedings of ACL-IJCNLP 2021",
    year = "2021",
    pages = "6881--6894",
    url = "https://aclanthology.org/2021.acl-long.536",
}
"""

_DESCRIPTION = """\
QUALS scores how well a summary is supported by its source. One question-and-answer generation model
(QAGen) writes diverse question-answer pairs from the summary; pairs whose answer is not in the summary
are dropped; each kept pair is scored by teacher forcing, once with the source and once with the summary as
input. QUALS is the mean over pairs of (average token log-likelihood given the source - given the summary).
Values are log-likelihood differences in nats per token, usually <= 0: near 0 means the source supports
the summary's facts as well as the summary itself does; strongly negative means the summary asserts things
the source does not support.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str`): the summaries to score.
    sources (`list` of `str`): the source document of each summary (repeat a document to score several
        candidate summaries of it).
    filter_mode (`str`, default: as loaded, `"strict"`): `"strict"` (word-boundary answer match, hard cap
        of `max_pairs`) or `"reference"` (the released code's substring check and soft cap).
    max_pairs (`int`, default: as loaded, 10): QA pairs kept per summary.
    return_qa_pairs (`bool`, default `False`): also return the kept and rejected pairs of each summary.
    show_progress (`bool`, default `False`): show a progress bar.
Load-time keyword arguments (`evaluate.load("metrics/quals", config_name=..., **kwargs)`):
    config_name: a QAGen preset (`"default"` = `quals.DEFAULT_PRESET`; the metric's `presets` lists them all).
    model: a Hub id or local folder overriding the preset's checkpoint.
    gguf_file: a GGUF file inside `model` (causal-LM presets).
    device: `"cpu"`, `"cuda"`, `"cuda:1"`, `"mps"` (default: the best available).
    dtype: `"float32"` (default), `"bfloat16"` or `"float16"`.
    parity: `True` reproduces the released code (reference filter, penalized LL_summary, truncation).
    evidence_sentences: score each QA pair on the K source sentences nearest to it (a named variant; default 4,
        `0`: the whole source, as the paper; docs/human_correlation.md).
    sentence_pairs: also score each summary sentence as one pair (a fixed question, the sentence as its answer),
        so every sentence is checked, and QUALS is the mean over sentences (a named variant; default `True`,
        `False`: the paper's mean over QA pairs; docs/human_correlation.md).
    sentence_prior_weight: the share w of a sentence pair's reference that is its likelihood with no passage,
        (1 - w) LL_summary + w LL_no_passage (a named variant; default: the preset's, 0.25 for `smollm2-qagen` and
        0 for the others; docs/human_correlation.md). A preset's calibration applies only to the default
        settings (`probability` is `None` otherwise, unless `calibration` is fitted with them).
    calibration: a calibration JSON written by `quals calibrate` (default: the preset's own, if it has one).
Returns:
    quals (`list` of `float` or `None`): QUALS of each summary; `None` where no QA pair survived filtering
        or the input was empty or not a string (see `errors`).
    mean_quals (`float` or `None`): mean over the scored summaries.
    num_scored (`int`), num_unscored (`int`): how many summaries got a score, and how many did not.
    num_qa_pairs (`list` of `int`): kept QA pairs per summary.
    errors (`list` of `str` or `None`): why a summary has no score (empty or unreadable input, no kept pair).
    probability (`list` of `float` or `None`): P(consistent), the preset's calibration of QUALS (a monotone map;
        `None` for presets without one, and for unscored summaries).
    consistent (`list` of `bool` or `None`): probability at or above the calibration's threshold.
    qa_pairs (`list` of `dict`): only with `return_qa_pairs=True`, per summary: `kept` pairs (question, answer,
        ll_source, ll_summary, quals, per-token log-probabilities, with `evidence_sentences` the source
        sentences each was scored on, and `sentence_pair` true for a sentence pair), `rejected` pairs with
        reasons, `spans` (the summary's characters the pairs asked about, least supported first: start, end,
        text, quals) and `sentences` (start, end, text, quals per sentence).
Examples:
    A faithful summary scores above one with a swapped entity. This example uses a tiny QAGen trained on a
    synthetic world, so it runs offline in seconds; real use loads a preset such as `lmqg-t5-base`.

    >>> from quals.testing import tiny_qagen
    >>> quals = evaluate.load("metrics/quals", model=str(tiny_qagen()), device="cpu")
    >>> source = "alice visited paris on monday . the weather was warm ."
    >>> out = quals.compute(predictions=["alice visited paris on monday .", "bob visited paris on monday ."],
    ...                     sources=[source, source])
    >>> out["quals"][0] > out["quals"][1]
    True
    >>> out["num_scored"], out["num_unscored"]
    (2, 0)
    >>> out = quals.compute(predictions=["", "alice visited paris ."], sources=[source, source])
    >>> out["quals"][0] is None, out["errors"][0]
    (True, 'empty input: summary 0 is empty or whitespace only')
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Quals(evaluate.Metric):
    def __init__(self, *args, model=None, gguf_file=None, device=None, dtype="float32", parity=False,
                 evidence_sentences=None, sentence_pairs=None, sentence_prior_weight=None, calibration=None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        preset = None if self.config_name == "default" and model is not None else self.config_name
        make_config = quals_engine.QualsConfig.paper_parity if parity else quals_engine.QualsConfig
        variants = {k: v for k, v in {"evidence_sentences": evidence_sentences, "sentence_pairs": sentence_pairs,
                                      "sentence_prior_weight": sentence_prior_weight}.items()
                    if v is not None}  # None: the configuration's own (parity: off; the weight: the preset's)
        self.quals_config = make_config(preset=preset, model=model, gguf_file=gguf_file, device=device, dtype=dtype,
                                        calibration=calibration, **variants)
        self.qa_format = quals_engine.resolve_format(preset, model, gguf_file=gguf_file)  # fails on unknown presets
        self.presets = sorted(quals_engine.all_presets())  # every preset name config_name accepts ...
        self.bundled_presets = sorted(set(self.presets) - set(quals_engine.PRESETS))  # ... those shipped inside
        self.default_preset = quals_engine.DEFAULT_PRESET
        self._scorers = {}

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "sources": datasets.Value("string")}),
            homepage="https://aclanthology.org/2021.acl-long.536",
            codebase_urls=["https://github.com/amazon-science/fact-check-summarization"],
            reference_urls=["https://arxiv.org/abs/2105.04623"],
            module_type="metric",
        )

    def _scorer(self, filter_mode, max_pairs, show_progress):
        overrides = {"filter_mode": filter_mode, "max_pairs": max_pairs, "show_progress": show_progress}
        overrides = {name: value for name, value in overrides.items() if value is not None}
        key = tuple(sorted(overrides.items()))
        if key not in self._scorers:  # the QAGen model itself is loaded once per process by the engine
            self._scorers[key] = quals_engine.QualsScorer(self.quals_config, **overrides)
        return self._scorers[key]

    def _compute(self, predictions, sources, filter_mode=None, max_pairs=None, return_qa_pairs=False,
                 show_progress=False):
        scorer = self._scorer(filter_mode, max_pairs, show_progress)
        scores = scorer.score(predictions, sources, return_qa_pairs=return_qa_pairs)
        corpus = scorer.aggregate(scores)
        out = {
            "quals": [s.quals for s in scores],
            "mean_quals": corpus.mean_quals,
            "num_scored": corpus.num_scored,
            "num_unscored": corpus.num_unscored,
            "num_qa_pairs": [s.num_pairs for s in scores],
            "errors": [s.error for s in scores],
            "probability": [s.probability for s in scores],
            "consistent": [s.consistent for s in scores],
        }
        if return_qa_pairs:
            explained = [s.to_dict() for s in scores]
            out["qa_pairs"] = [{"kept": e.get("pairs", []), "rejected": e.get("rejected", []),
                                "spans": e.get("spans", []), "sentences": e.get("sentences", [])}
                               for e in explained]
        return out
