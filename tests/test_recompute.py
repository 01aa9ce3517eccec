"""eval/recompute.py: every statistics file the README cites is recomputed from results/ alone and equals its
committed copy; a moved digit is named."""
import shutil

import pytest
from conftest import ROOT

from eval import recompute


def test_every_committed_statistics_file_is_recomputed_byte_for_byte(capsys):
    recompute.run()
    out = capsys.readouterr().out
    assert out.count("same  ") == len(recompute.STATS_FILES) and "DIFFERS" not in out


def test_a_moved_digit_names_its_file(tmp_path, monkeypatch):
    moved = tmp_path / "results/roster/ML100K_stats.md"
    moved.parent.mkdir(parents=True)
    text = (ROOT / "results/roster/ML100K_stats.md").read_text()
    moved.write_text(text.replace("+0.0339", "+0.0340", 1))
    shutil.copytree(ROOT / "results/roster", tmp_path / "results/roster", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("ML100K_stats.md"))
    monkeypatch.setattr(recompute, "ROOT", tmp_path)
    monkeypatch.setattr(recompute, "STATS_FILES", {"results/roster/ML100K_stats.md": ["results/roster"]})
    with pytest.raises(SystemExit) as e:
        recompute.run()
    assert e.value.code == 1
    assert "+0.0340" in moved.read_text()  # checking writes nothing


def test_no_committed_result_names_a_machine_path():
    """Run configs, eval files, reports and logs under results/ name paths relative to the run's clone (utils.stage.
    portable), never this or another machine's directories."""
    import re

    machine = re.compile(r"(?<![\w.~$-])/(home|work|tmp|root|Users|mnt|scratch)/")
    named = [str(f.relative_to(ROOT)) for f in sorted((ROOT / "results").rglob("*"))
             if f.suffix in (".json", ".md", ".txt") and machine.search(f.read_text(encoding="utf-8"))]
    assert not named, named
