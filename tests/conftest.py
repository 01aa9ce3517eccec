"""Shared fixtures: the real ML-100K category (built once if missing) and a freshly built small model."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ml100k() -> Path:
    """data/ML100K, prepared from the recbole wheel the first time (the demo's own data)."""
    d = ROOT / "data" / "ML100K"
    if not (d / "DONE").is_file():
        subprocess.run([sys.executable, "-m", "data.prepare", "ml-100k"], cwd=ROOT, check=True)
    return d


@pytest.fixture(scope="session")
def tiny_model(ml100k, tmp_path_factory) -> Path:
    """An untrained embedded-style model for ML100K (small vocabulary so it builds in seconds)."""
    from utils.tiny_model import build

    out = tmp_path_factory.mktemp("tiny") / "model"
    build(category="ML100K", out=str(out), vocab_size=1024, hidden=64, layers=2, heads=2, corpus_records=500)
    return out
