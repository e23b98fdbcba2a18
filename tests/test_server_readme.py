"""The README's labeling-service walk-through, run as written (bash + curl) against a live server."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from crowdloop.server.app import SEED_VARIABLE
from crowdloop.server.process import ServerProcess

README = Path(__file__).resolve().parents[1] / "README.md"


def walk_through() -> str:
    section = README.read_text().split("## The labeling service", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return blocks[1]  # the first block lists the commands, the second is the walk-through


@pytest.mark.skipif(shutil.which("curl") is None, reason="the walk-through uses curl, which is not installed")
def test_readme_walk_through_works(tmp_path, monkeypatch):
    monkeypatch.setenv(SEED_VARIABLE, "1")  # the gold draws fixed: the walk-through runs the same every time
    with ServerProcess(f"sqlite:///{tmp_path / 'crowdloop.db'}") as server:
        env = {**os.environ, "API": server.base_url, "ADMIN": server.admin_token}
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", walk_through()], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        # the walk-through's helper shows why a request failed: the problem+json body, on stderr
        helpers = walk_through().split("\n# 1.", 1)[0]
        failed = subprocess.run(["bash", "-c", helpers + '\npost /projects "not-a-valid-admin-token"'], env=env,
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert failed.returncode != 0 and '"status":401' in failed.stderr, failed.stderr
    assert done.returncode == 0, done.stderr
    labels_csv = done.stdout[done.stdout.index("task,label,confidence,status") :]
    labels = pd.read_csv(io.StringIO(labels_csv)).set_index("task")
    assert set(labels.index) == {f"p{k}" for k in range(1, 9)}  # the gold items too, marked gold
    assert set(labels.index[labels["status"] == "gold"]) == {"p6", "p7"}
    assert labels.loc["p8", "status"] == "reviewed"  # the crowd disagreed: escalated, then the reviewer's label
    assert labels.loc["p8", "confidence"] == 1.0  # a review is final
    accepted = labels[labels["status"] == "accepted"]
    assert len(accepted) >= 4 and (accepted["confidence"] >= 0.9).all()
    assert accepted.loc["p2", "label"] == "Footwear > Boots"
    answers = pd.read_csv(tmp_path / "answers.csv")
    assert {"alice", "bob", "carol"} <= set(answers["worker"])
