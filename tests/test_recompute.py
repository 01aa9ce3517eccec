"""eval/recompute.py: every statistics file the README cites, and every eval file beside a per-user file, is
recomputed from results/ alone and equals its committed copy; a moved digit is named."""
import json
import shutil

import pytest
from conftest import ROOT

from eval import recompute
from utils.io import UserError


def test_every_committed_statistics_file_is_recomputed_byte_for_byte(capsys):
    recompute.run()
    out = capsys.readouterr().out
    assert out.count("same  ") == len(recompute.STATS_FILES) + 2 * len(recompute.SLICES_FILES) and "DIFFERS" not in out


def test_a_moved_digit_names_its_file(tmp_path, monkeypatch):
    moved = tmp_path / "results/roster/ML100K_stats.md"
    moved.parent.mkdir(parents=True)
    text = (ROOT / "results/roster/ML100K_stats.md").read_text()
    moved.write_text(text.replace("+0.0339", "+0.0340", 1))
    shutil.copytree(ROOT / "results/roster", tmp_path / "results/roster", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("ML100K_stats.md"))
    monkeypatch.setattr(recompute, "ROOT", tmp_path)
    monkeypatch.setattr(recompute, "STATS_FILES", {"results/roster/ML100K_stats.md": ["results/roster"]})
    monkeypatch.setattr(recompute, "SLICES_FILES", {})
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


def _copy_demo(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "results/demo", tmp_path / "results/demo")
    monkeypatch.setattr(recompute, "ROOT", tmp_path)
    monkeypatch.setattr(recompute, "STATS_FILES", {})
    monkeypatch.setattr(recompute, "SLICES_FILES", {})
    return tmp_path / "results/demo"


def test_every_committed_eval_file_is_recomputed_from_its_per_user_file():
    assert recompute.recompute_eval_files(write=False, add_contexts=False) == []
    assert len(recompute.eval_dirs()) >= 100  # every committed run with per-user files, not a lucky few


def test_a_moved_metric_in_an_eval_file_is_named_and_rewritten(tmp_path, monkeypatch, capsys):
    demo = _copy_demo(tmp_path, monkeypatch)
    path = demo / "SFT/ML100K/eval_top5.json"
    ev = json.loads(path.read_text())
    ev["Gini"] += 1e-9  # one metric moved in its last digits
    del ev["TailShare"]  # and one missing (an eval file written before the metric existed)
    path.write_text(json.dumps(ev, indent=2) + "\n")
    with pytest.raises(SystemExit) as e:
        recompute.run()
    assert e.value.code == 1 and "DIFFERS  results/demo/SFT/ML100K/eval_top5.json" in capsys.readouterr().out
    assert json.loads(path.read_text()) == ev  # checking writes nothing
    recompute.run(write=True)
    fixed = json.loads(path.read_text())
    assert list(fixed) == list(json.loads((ROOT / "results/demo/SFT/ML100K/eval_top5.json").read_text()))
    assert fixed == json.loads((ROOT / "results/demo/SFT/ML100K/eval_top5.json").read_text())
    recompute.run()  # and now it passes


def test_a_missing_context_is_added_only_from_the_same_dataset(tmp_path, monkeypatch, ml100k):
    demo = _copy_demo(tmp_path, monkeypatch)
    for p in demo.rglob("eval_context.json"):
        p.unlink()
    with pytest.raises(UserError, match="--add_contexts True --write True"):
        recompute.run()
    users = demo / "SFT/ML100K/eval_users.jsonl"
    lines = users.read_text().splitlines()
    row = json.loads(lines[3])
    row["deciles"][0] = (row["deciles"][0] + 1) % 10  # as if evaluated on another train split
    users.write_text("\n".join(lines[:3] + [json.dumps(row)] + lines[4:]) + "\n")
    with pytest.raises(UserError, match="eval_users.jsonl, line 4: its popularity deciles are not those of"):
        recompute.run(write=True, add_contexts=True)
    users.write_text("\n".join(lines) + "\n")
    recompute.run(write=True, add_contexts=True)
    for p in demo.rglob("eval_context.json"):
        assert p.read_bytes() == (ROOT / p.relative_to(tmp_path)).read_bytes()
