"""The calibrations stored with the bundled presets are the ones the committed human-judgment report fitted.

``benchmarks/human_correlation.py`` fits each configuration's calibration on QAGS-C + QAGS-X and writes it into
its report (``calibration`` section); the bundled presets' ``quals_format.json`` carry the same three numbers
(docs/calibration.md). This test reads only files of the repository.
"""

import json
from pathlib import Path

import pytest

from quals import Calibration
from quals.engine.model_folders import bundled_presets


REPORT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "human_correlation.json"


@pytest.mark.parametrize("name", sorted(bundled_presets()))
def test_a_bundled_preset_carries_the_calibration_its_report_fitted(name):
    fmt = bundled_presets()[name]
    fitted = json.loads(REPORT.read_text(encoding="utf-8"))["calibration"][name]
    assert fmt.calibration is not None, f"{name} has no calibration; copy it from {REPORT.name}"
    assert fmt.calibration == pytest.approx((fitted["slope"], fitted["intercept"], fitted["threshold"]), abs=1e-9)
    calibration = Calibration(*fmt.calibration)
    assert calibration.slope > 0  # higher QUALS, more likely consistent
    assert 0 < calibration.probability(-1.0) < calibration.probability(0.0) < 1
