"""utils/stage.py: a stage writes into <dir>.partial and appears in one rename with its run config and DONE; a finished
stage is skipped with the same settings and stops with others; a crashed attempt's leftovers never survive."""
import pytest

from utils.io import UserError, read_json
from utils.markers import is_done
from utils.stage import Stage


def run_stage(out, args, crash=False):
    stage = Stage("sft", out, args, what="the SFT stage")
    if stage.skip():
        return "skipped"
    tmp = stage.begin()
    (tmp / "weights.txt").write_text(str(args["lr"]))
    if crash:
        raise RuntimeError("killed")
    stage.finish({"steps": 3}, f"wrote {out}")
    return "ran"


def test_a_stage_appears_whole_and_is_skipped_on_a_rerun(tmp_path, capsys):
    out = tmp_path / "SFT" / "ML100K"
    with pytest.raises(RuntimeError):
        run_stage(out, {"lr": 0.1}, crash=True)
    assert not out.exists() and (tmp_path / "SFT" / "ML100K.partial" / "weights.txt").is_file()
    assert run_stage(out, {"lr": 0.1}) == "ran"
    assert is_done(out) and not (tmp_path / "SFT" / "ML100K.partial").exists()
    config = read_json(out / "run_config_sft.json")
    assert config["args"] == {"lr": 0.1, "steps": 3} and config["settings"]["lr"] == 0.1
    # the threads and kernels that decide the digits are result-changing; the machine's facts are recorded beside
    assert config["settings"]["numerics"]["device"] == "cpu" and config["settings"]["numerics"]["threads"] >= 1
    assert {"cpu_model", "cores_visible", "OMP_NUM_THREADS", "MKL_CBWR"} <= set(config["environment"])
    assert f"[sft] wrote {out}" in capsys.readouterr().out
    assert run_stage(out, {"lr": 0.1}) == "skipped"
    assert "is complete; skipping" in capsys.readouterr().out


def test_a_finished_stage_with_other_settings_stops_and_changes_nothing(tmp_path):
    out = tmp_path / "SFT" / "ML100K"
    run_stage(out, {"lr": 0.1})
    with pytest.raises(UserError, match=r"the SFT stage .* was made with other settings \(lr 0\.1 -> 0\.2\)"):
        run_stage(out, {"lr": 0.2})
    assert (out / "weights.txt").read_text() == "0.1"


def test_a_stage_made_with_other_kernels_or_threads_is_not_reused(tmp_path, monkeypatch):
    """The thread count and the kernels change a run's digits (utils/numerics.py): a finished stage made with others
    stops a rerun, naming what changed; one recorded before they were is refused too."""
    import json

    out = tmp_path / "SFT" / "ML100K"
    assert run_stage(out, {"lr": 0.1}) == "ran"
    path = out / "run_config_sft.json"
    config = read_json(path)
    config["settings"]["numerics"]["mkl_kernels"] = "AVX2"
    path.write_text(json.dumps(config))
    with pytest.raises(UserError, match="numerics.mkl_kernels 'AVX2' -> "):
        run_stage(out, {"lr": 0.1})
    del config["settings"]["numerics"]
    path.write_text(json.dumps(config))
    with pytest.raises(UserError, match="before threads and kernels were recorded"):
        run_stage(out, {"lr": 0.1})


def test_a_stage_made_in_bf16_is_not_resumed_in_fp32(tmp_path, monkeypatch):
    """KERNELS=bf16 (bf16 autocast on the CPU) is recorded as a result-changing setting: a stage finished with it stops
    a rerun without it, by name; fp32 runs record nothing new, so their older run configs still compare equal."""
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    out = tmp_path / "SFT" / "ML100K"
    monkeypatch.setenv("KERNELS", "bf16")
    assert run_stage(out, {"lr": 0.1}) == "ran"
    assert read_json(out / "run_config_sft.json")["settings"]["numerics"]["autocast"] == "bf16"
    monkeypatch.setenv("KERNELS", "native")
    with pytest.raises(UserError, match="numerics.autocast 'bf16' -> None"):
        run_stage(out, {"lr": 0.1})


def make_products(model_dir, args, redo_on_change=False, crash=False):
    """A stage whose products are files in an existing directory (evaluation's predictions in a model directory)."""
    product = model_dir / "test_result.json"
    stage = Stage("inference", model_dir, args, what="the predictions", products=[product],
                  redo_on_change=redo_on_change)
    if stage.skip():
        return "skipped"
    stage.begin()
    product.write_text(str(args["seed"]))
    if crash:
        raise RuntimeError("killed")
    stage.finish({"records": 2})
    return "ran"


def test_a_stage_of_products_is_finished_by_its_files_and_its_run_config(tmp_path):
    """Finished when its files and its run config are there: a crash after a file but before the run config, or a
    missing file, makes it again; other settings stop it, or with redo_on_change make it again."""
    model_dir = tmp_path / "SFT" / "ML100K"
    model_dir.mkdir(parents=True)
    assert make_products(model_dir, {"seed": 1}) == "ran" and make_products(model_dir, {"seed": 1}) == "skipped"
    with pytest.raises(RuntimeError):
        make_products(model_dir, {"seed": 2}, redo_on_change=True, crash=True)
    assert not (model_dir / "run_config_inference.json").exists()  # the old run config went before the new files
    assert make_products(model_dir, {"seed": 1}) == "ran"
    (model_dir / "test_result.json").unlink()
    assert make_products(model_dir, {"seed": 1}) == "ran"
    with pytest.raises(UserError, match=r"the predictions .*test_result.json was made with other settings "
                                        r"\(seed 1 -> 3\)"):
        make_products(model_dir, {"seed": 3})
    assert make_products(model_dir, {"seed": 3}, redo_on_change=True) == "ran"
    assert (model_dir / "test_result.json").read_text() == "3" and not is_done(model_dir)
