"""The bad-input catalogue: every case fails with exit code 2, one `error: ...` line on stderr naming what is wrong
(and where, and what to do), no traceback, and nothing half-written left behind (no `*.partial`, no temp file).

Cases already covered elsewhere: malformed/empty split files, bad records and catalogs at the loader level
(test_data.py); a bad iteration count and GPU ids that are not integers (test_pipeline.py).
"""
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_module

from utils.io import UserError, write_json

CATALOG_FILES = ("id2name.json", "name2id.json", "name2genre.json", "genre_dict.json")


# ---------------------------------------------------------------------------------------------------- helpers
def env(**extra) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    e.update(PATH=os.path.dirname(sys.executable) + os.pathsep + e["PATH"], HF_HUB_OFFLINE="1",
             VIRTUAL_ENV=os.path.dirname(os.path.dirname(sys.executable)), CUDA_VISIBLE_DEVICES="", **extra)
    return e


def py(*args) -> subprocess.CompletedProcess:
    """`python -m module ...`, run in-process (the scripts' cases below start real processes)."""
    assert args[0] == "-m"
    return run_module(*args[1:])


def sh(*args, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *map(str, args)], cwd=ROOT, env=env(**extra), capture_output=True, text=True,
                          timeout=120)


def user_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2 and exactly one line on stderr, `error: ...`, containing every needle."""
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-4000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def nothing_left(root: Path, *outputs: Path) -> None:
    """No partial stage directory, no temporary file and none of `outputs` under `root`."""
    assert not [p for p in root.rglob("*") if p.name.endswith((".partial", ".tmp"))], list(root.rglob("*"))
    for out in outputs:
        assert not out.exists(), out


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A directory that passes the model-directory check (nothing in these tests gets as far as loading it)."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


@pytest.fixture
def category(tmp_path, ml100k) -> Path:
    """A copy of the ML100K catalog with two test records, as a --data_dir."""
    d = tmp_path / "Cat"
    d.mkdir()
    for f in CATALOG_FILES:
        shutil.copy(ml100k / f, d / f)
    records = json.loads((ml100k / "test.json").read_text())[:2]
    for split in ("train", "valid", "test"):
        (d / f"{split}.json").write_text(json.dumps(records))
    return d


# ---------------------------------------------------------------------------------------------- models
def test_missing_base_model(tmp_path, ml100k):  # data exists: the model is what is wrong
    out = tmp_path / "out"
    user_error(py("-m", "train.sft", "--output_dir", out, "--base_model", "/nonexistent"),
               "--base_model /nonexistent does not exist", "hub id")
    nothing_left(tmp_path, out)


def test_a_user_error_on_two_processes_is_one_line(tmp_path, tiny_model):
    """Both processes of a launch meet the bad global batch: one line, exit 2, no torch or accelerate traceback."""
    line = user_error(sh("shell/SFT.sh", OUTPUT_ROOT=str(tmp_path), CPU_PROCESSES="2", BASE_MODEL=str(tiny_model),
                         RECIPE_ARGS="sft.global_batch_size=3 sft.sample_size=8"),
                      "global batch 3 does not split evenly over 2 process(es)")
    assert "Traceback" not in line
    nothing_left(tmp_path)


def test_unknown_pretrained_short_name(tmp_path, ml100k):
    user_error(sh("shell/SFT.sh", OUTPUT_ROOT=str(tmp_path), BASE_MODEL="gpt9"),
               "unknown pretrained model 'gpt9': known short names are smollm2")
    nothing_left(tmp_path, tmp_path / "SFT/ML100K")


def test_lora_targets_that_the_architecture_lacks(tmp_path, tiny_model):
    """A small model trained with LoRA (`--full_finetune false`, the GPU recipe's lora section) on module names it
    does not have: one line."""
    out = tmp_path / "out"
    user_error(py("-m", "train.sft", "--output_dir", out, "--base_model", tiny_model, "--full_finetune", "false",
                  "--recipe", "recipes/pretrained-gpu.yaml",
                  "--recipe_args", "lora.target_modules=query_key_value sft.sample_size=8"),
               "lora.target_modules query_key_value: no such linear layer in LlamaForCausalLM")
    nothing_left(tmp_path, out)


@pytest.mark.parametrize("args, message", [
    # A tracker whose package is missing (transformers failed after the model loaded, with a traceback).
    (["--report_to", "tensorboard"], "REPORT_TO=tensorboard needs the tensorboard package: pip install tensorboard"),
    (["--report_to", "mlflow"], "REPORT_TO=mlflow: use none, wandb or tensorboard"),
    # QLoRA needs LoRA, a GPU and bitsandbytes.
    (["--full_finetune", "false", "--recipe", "recipes/pretrained-gpu.yaml", "--load_in_4bit", "True"],
     "LOAD_IN_4BIT needs a CUDA GPU (bitsandbytes 4-bit kernels): on the CPU set LOAD_IN_4BIT=0"),
    (["--load_in_4bit", "True"], "LOAD_IN_4BIT quantizes a frozen base for LoRA: the embedded small model is trained"),
    # Recipe fields: a misspelt one (in any section, whichever stage reads it), one the stage sets itself, one that is
    # not section.field=value, a section the small model's recipe lacks, a recipe file that is not there.
    (["--recipe_args", "sft.weight_decy=0.1"], "RECIPE_ARGS sft.weight_decy: SFTConfig has no such field (did you "
                                                "mean weight_decay"),
    (["--recipe_args", "dpo.bta=0.1"], "RECIPE_ARGS dpo.bta: DPOConfig has no such field (did you mean beta"),
    (["--recipe_args", "sft.seed=3"], "RECIPE_ARGS sft.seed: the stage sets it"),
    (["--recipe_args", "weight_decay=0.1"], "RECIPE_ARGS: 'weight_decay=0.1' is not section.field=value"),
    (["--recipe_args", "lora.r=4"], "RECIPE_ARGS lora.*: recipe /"),
    (["--recipe", "recipes/pretrained-gpu.yaml", "--recipe_args", "lora.rank=4"],
     "RECIPE_ARGS lora.rank: LoraConfig has no such field"),
    (["--recipe", "nope.yaml"], "recipe nope.yaml does not exist (the recipes here: demo.yaml, pretrained-cpu.yaml, "),
])
def test_training_options_that_cannot_work_here(tmp_path, tiny_model, args, message):
    """Said in one line before any weight is loaded, nothing written."""
    out = tmp_path / "out"
    user_error(py("-m", "train.sft", "--output_dir", out, "--base_model", tiny_model, *args), message)
    nothing_left(tmp_path, out)


@pytest.mark.parametrize("cmd, flag", [
    (["-m", "train.sft", "--resume_from", "/nonexistent", "--output_dir", "{out}"], "--resume_from"),
    (["-m", "train.dpo", "--model_dir", "/nonexistent", "--data_dir", "{tmp}", "--output_dir", "{out}"], "--model_dir"),
    (["-m", "train.self_play", "--model_dir", "/nonexistent", "--output_dir", "{out}"], "--model_dir"),
    (["-m", "eval.inference", "--model_dir", "/nonexistent"], "--model_dir"),
])
def test_missing_model_dir(tmp_path, ml100k, cmd, flag):
    out = tmp_path / "out"
    args = [a.format(out=out, tmp=tmp_path) for a in cmd]
    user_error(py(*args), f"{flag} /nonexistent does not exist", "give a trained model directory")
    nothing_left(tmp_path, out)


def test_model_dir_without_a_model(tmp_path):
    """An unfinished stage directory (no config) is refused with a hint, not a transformers traceback."""
    unfinished = tmp_path / "SFT.partial"
    unfinished.mkdir()
    user_error(py("-m", "eval.inference", "--model_dir", unfinished), f"--model_dir {unfinished} holds no model",
               "unfinished stage")
    assert not list(unfinished.iterdir())


def test_no_gpu_for_gpu_ids(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: GPU id 0 exists")
    user_error(sh("shell/SFT.sh", "0", OUTPUT_ROOT=str(tmp_path)), "GPU ids 0 given but there is no NVIDIA GPU",
               "pass no ids to run on the CPU")
    nothing_left(tmp_path, tmp_path / "SFT")


# ------------------------------------------------------------------------------------------------ data
def test_empty_split_through_cli(tmp_path, category, fake_model):
    (category / "test.json").write_text("[]")
    out = tmp_path / "mostpop"
    user_error(py("-m", "eval.mostpop", "--data_dir", category, "--output_dir", out),
               f"{category / 'test.json'}: the split is empty")
    empty = tmp_path / "sft_train.jsonl"
    empty.write_text("")
    sft_out = tmp_path / "sft"
    user_error(py("-m", "train.sft", "--data_dir", category, "--train_file", empty, "--base_model", fake_model,
                  "--output_dir", sft_out), f"{empty}: the split is empty")
    nothing_left(tmp_path, out, sft_out)


@pytest.mark.parametrize("cmd", [
    ["-m", "train.sft", "--output_dir", "{out}", "--category", "Nope"],
    ["-m", "eval.mostpop", "--output_dir", "{out}", "--category", "Nope"],
])
def test_unknown_category(tmp_path, cmd):
    out = tmp_path / "out"
    user_error(py(*[a.format(out=out) for a in cmd]), "unknown category 'Nope': no directory", "data/Nope")
    nothing_left(tmp_path, out)


@pytest.mark.parametrize("cmd, name", [
    (["-m", "train.sft", "--output_dir", "{out}", "--category", "../data/ML100K"], "../data/ML100K"),
    (["-m", "eval.mostpop", "--output_dir", "{out}", "--category", "a/b"], "a/b"),
    (["-m", "utils.tiny_model", "--out", "{out}", "--category", ".."], ".."),
])
def test_category_name_with_slash_or_dots(tmp_path, cmd, name):
    out = tmp_path / "out"
    user_error(py(*[a.format(out=out) for a in cmd]), f"bad category name {name!r}", "no '/', no '..'")
    nothing_left(tmp_path, out)


def test_category_name_in_shell_script(tmp_path):
    user_error(sh("shell/SFT.sh", OUTPUT_ROOT=str(tmp_path), CATEGORIES="../etc"), "bad category name '../etc'")
    nothing_left(tmp_path, tmp_path / "SFT")


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "p", "chosen": "c", "rejected": "r"}\n{"prompt": "p", "chosen": ', "malformed JSON at line 2"),
    ('{"prompt": "p", "chosen": "c", "rejected": "r"}\n["p", "c", "r"]\n', "line 2 needs an object with string"),
    ('{"prompt": "p", "chosen": "c"}\n', "line 1 needs an object with string 'prompt', 'chosen' and 'rejected'"),
    ("\n", "no pairs (rerun train/self_play.py)"),
])
def test_malformed_dpo_pairs(tmp_path, fake_model, content, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dpo_train.jsonl").write_text(content)
    (data / "dpo_valid.jsonl").write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    out = tmp_path / "DPO"
    user_error(py("-m", "train.dpo", "--model_dir", fake_model, "--data_dir", data, "--output_dir", out),
               f"{data / 'dpo_train.jsonl'}: {message}")
    nothing_left(tmp_path, out)


# ---------------------------------------------------------------------------------------------- evaluation
@pytest.fixture
def result_json(tmp_path, ml100k) -> Path:
    """A test_result.json of 6 ML100K records whose generations are all empty."""
    d = tmp_path / "run"
    d.mkdir()
    records = json.loads((ml100k / "test.json").read_text())[:6]
    p = d / "test_result.json"
    p.write_text(json.dumps([{**r, "predict": [""]} for r in records]))
    return p


@pytest.mark.parametrize("topk", ["0", "-1", "abc", "1.5", "1,x", "True", "1,0"])
def test_invalid_topk(result_json, topk):
    user_error(py("-m", "eval.evaluate", "--result_json", result_json, "--topk", topk),
               f"--topk must be positive integers separated by commas (e.g. 1,5), got '{topk}'")
    assert not list(result_json.parent.glob("eval_top*.json"))


def test_topk_larger_than_catalog(tmp_path, result_json):
    user_error(py("-m", "eval.evaluate", "--result_json", result_json, "--topk", "1,5000"),
               "--topk 5000 is larger than the catalog (1664 items)")
    user_error(py("-m", "eval.mostpop", "--output_dir", tmp_path / "mp", "--topk", "0"), "--topk must be positive")
    assert not list(result_json.parent.glob("eval_top*.json")) and not (tmp_path / "mp").exists()


def test_all_empty_generations_still_evaluate(result_json):
    """Decided behaviour: the spec parses an empty generation to the empty title and grounds it like any other, so a
    model that generated nothing is a legitimate (bad) result: the eval files are written (ValidRatio 0, every record
    on the same items), exit 0, and one warning line says what happened. A run never stops on it."""
    p = py("-m", "eval.evaluate", "--result_json", result_json)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    warnings = [x for x in p.stderr.splitlines() if x.startswith("warning: ")]
    assert len(warnings) == 1 and f"every prediction in {result_json} is empty" in warnings[0]
    for k in (1, 5):
        row = json.loads((result_json.parent / f"eval_top{k}.json").read_text())
        assert row["n"] == 6 and row["ValidRatio"] == 0.0 and row["diversity"] == k


# ---------------------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("cmd", [
    ["-m", "train.sft", "--output_dir", "{out}", "--base_model", "{model}"],
    ["-m", "eval.mostpop", "--output_dir", "{out}"],
    ["-m", "eval.evaluate", "--result_json", "{tmp}/missing.json", "--output_dir", "{out}"],
])
def test_output_under_a_regular_file(tmp_path, fake_model, cmd):
    """Tests run as root, so read-only permissions stop nothing; a parent that is a file makes mkdir fail."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    out = blocker / "out"
    args = [a.format(out=out, model=fake_model, tmp=tmp_path) for a in cmd]
    user_error(py(*args), f"cannot create {out}: {blocker} is not a directory", "choose another output path")
    assert blocker.read_text() == "a file, not a directory"
    nothing_left(tmp_path)


def test_failed_write_leaves_no_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(UserError, match=f"cannot write {blocker / 'x' / 'a.json'}: Not a directory"):
        write_json(blocker / "x" / "a.json", {"a": 1})
    with pytest.raises(TypeError):  # a failure half-way through writing: the temporary file goes, the old stays
        write_json(tmp_path / "b.json", {"a": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


# ---------------------------------------------------------------------------------------------- concurrency
def _hold(lock: Path):
    lock.parent.mkdir(parents=True, exist_ok=True)
    f = open(lock, "w")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return f


def test_second_sprec_run_on_the_same_directory(tmp_path):
    """SPRec.sh needs a finished SFT directory before it takes the lock; the held lock makes it stop at once (the SFT
    directory holds no model, so had the lock not stopped it, self-play would fail fast instead of training)."""
    (tmp_path / "SFT" / "ML100K").mkdir(parents=True)
    (tmp_path / "SFT" / "ML100K" / "DONE").write_text("")
    lock = tmp_path / "SPRec" / "ML100K" / ".lock"
    with _hold(lock):
        user_error(sh("shell/SPRec.sh", "1", OUTPUT_ROOT=str(tmp_path), CATEGORIES="ML100K", METHOD="SPRec"),
                   f"another run is using {lock.parent}", "wait for it or stop it")
    assert sorted(p.name for p in lock.parent.iterdir()) == [".lock"]
    nothing_left(tmp_path)


def test_second_sft_run_on_the_same_directory(tmp_path):
    lock = tmp_path / "SFT" / ".ML100K.lock"
    with _hold(lock):
        user_error(sh("shell/SFT.sh", OUTPUT_ROOT=str(tmp_path), CATEGORIES="ML100K", BASE_MODEL="/nonexistent"),
                   f"another run is using {lock.parent}")
    assert sorted(p.name for p in lock.parent.iterdir()) == [".ML100K.lock"]
    nothing_left(tmp_path)
