"""A real two-process run: ``torchrun --nproc_per_node 2`` on CPU with the gloo backend."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_process_run_builds_identical_sets_on_both_ranks(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               str(WORKER), str(tmp_path)]
    # own process group, so that a hang kills torchrun's workers too, not only torchrun
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        pytest.fail("two-process run timed out:\n" + stderr[-4000:])
    assert process.returncode == 0, stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    first, second = ranks
    assert first["rounds"] == second["rounds"] == 2  # one round per epoch
    assert first["positives"] == second["positives"] and first["negatives"] == second["negatives"]
    assert first["positives"] and first["negatives"]
    assert first["candidates"] == second["candidates"] and len(first["candidates"]) == 10  # gathered shards
    # each rank generated and scored only its half: 5 documents x 2 candidates per round, references once
    assert first["scored_locally"] == second["scored_locally"] == 2 * 5 * 2 + 5
    assert first["parameters"] == second["parameters"]  # DDP kept the replicas in sync
    assert first["losses"] and first["losses"] == pytest.approx(second["losses"])
    # the logged parts are averaged over ranks like the loss, so they add up to it (rank 0's alone would not)
    assert first["loss_parts"] == pytest.approx(first["losses"], rel=1e-4, abs=1e-6)
    assert second["loss_parts"] == pytest.approx(first["loss_parts"])
    assert None not in first["margins"] and first["margins"] == pytest.approx(second["margins"])  # gathered
