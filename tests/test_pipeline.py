"""End to end through the shell scripts at toy sizes: layout, resumability, interruption, data parallelism."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

# A toy SFT (16 steps) generates no title yet, so greedy self-play would make no pair: the toy runs draw their rejected
# items by constrained beam search (always catalog items). Greedy self-play end to end: tests/test_pretrained.py.
TOY_RECIPE = ("sft.sample_size=256 sft.valid_sample_size=16 sft.num_train_epochs=1 self_play.train_sample_size=32 "
              "self_play.valid_sample_size=8")
TOY = {"SELF_PLAY_DECODING": "constrained", "RECIPE_ARGS": TOY_RECIPE, "TEST_SAMPLE_SIZE": "48",
       "SFT_STEP_TEST_SAMPLE_SIZE": "24", "SEED": "7", "CATEGORIES": "ML100K",
       "BASE_MODEL": ""}
METRICS = ("n", "n_skipped", "HR", "NDCG", "diversity", "DivRatio", "ORRatio", "MGU", "DGU", "ValidRatio")


def env_for(root, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    env.update(TOY, OUTPUT_ROOT=str(root), PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"],
               VIRTUAL_ENV=str(os.path.dirname(os.path.dirname(sys.executable))), **extra)
    return env


def sh(root, *args, check=True, **extra):
    p = subprocess.run(["bash", *args], cwd=ROOT, env=env_for(root, **extra), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    return p


def metrics(model_dir, k):
    row = json.loads((model_dir / f"eval_top{k}.json").read_text())
    return {key: row[key] for key in METRICS}


@pytest.fixture(scope="module")
def run(ml100k, tmp_path_factory):
    """SFT then 2 SPRec iterations, uninterrupted; the reference for the tests below."""
    root = tmp_path_factory.mktemp("run")
    logs = sh(root, "shell/SFT.sh"), sh(root, "shell/SPRec.sh", "2")
    return root, "".join(p.stdout + p.stderr for p in logs)


def test_layout_and_eval_files(run):
    root, log = run
    model_dirs = [root / "SFT/ML100K"] + [root / f"SPRec/ML100K/it{i}/{s}" for i in (0, 1) for s in ("SFT", "DPO")]
    fingerprints = {}
    for d in model_dirs:
        assert (d / "DONE").is_file(), d
        n = 24 if d.name == "SFT" and d.parent.name.startswith("it") else 48  # SFT steps: the fixed subset
        for k in (1, 5):
            row = json.loads((d / f"eval_top{k}.json").read_text())
            assert row["topk"] == k and row["n"] == n and isinstance(row["HR"], float)
            fingerprints.setdefault(n, set()).add(row["test_records"])
        assert len(json.loads((d / "test_result.json").read_text())) == n
        assert list(d.glob("*.safetensors")) and not list(d.glob("*.bin"))
    assert all(len(f) == 1 for f in fingerprints.values()) and len(fingerprints) == 2  # one subset each, two subsets
    for i in (0, 1):
        data = root / f"SPRec/ML100K/it{i}/data"
        summary = json.loads((data / "summary.json").read_text())
        assert summary["kept_train"] == 32 and summary["drawn"] == 44
        pairs = [json.loads(x) for x in (data / "dpo_train.jsonl").read_text().splitlines()]
        assert all(p["chosen"] != p["rejected"] for p in pairs)
        assert json.loads((data / "run_config_self_play.json").read_text())["args"]["seed"] == 7
    assert "FutureWarning" not in log and "DeprecationWarning" not in log, log[-3000:]
    assert not list(root.rglob("*.partial"))


def test_the_golden_run_gives_the_committed_digits(run):
    """The toy run above is the golden run: every eval file, training loss, self-play summary and per-user file must
    equal tests/golden/toy_run.json exactly (tests/golden.py says how to regenerate it after a deliberate change)."""
    import golden

    root, _ = run
    actual = golden.facts(root)
    if os.environ.get("GOLDEN_WRITE") == "1":
        golden.GOLDEN.parent.mkdir(exist_ok=True)
        golden.GOLDEN.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(golden.GOLDEN.read_text())
    moved = golden.differences(expected, actual)
    assert not moved, (f"the golden run moved ({len(moved)} field(s)); a deliberate change regenerates "
                       f"{golden.GOLDEN.relative_to(ROOT)} (tests/golden.py):\n" + "\n".join(moved[:40]))


def test_a_rerun_of_a_finished_run_skips_every_stage_without_torch(run, tmp_path):
    """Every stage, evaluation included, checks its settings and skips without importing torch. (A larger ITERATIONS
    running only the new iteration is the killed-run test below: it extends a finished 1-iteration run to 2.)"""
    root, _ = run
    ext = tmp_path / "ext"
    shutil.copytree(root, ext)
    before = {p: p.stat().st_mtime_ns for p in ext.rglob("DONE")}
    again = sh(ext, "shell/SPRec.sh", "2", PYTHONPROFILEIMPORTTIME="1")
    skipped = again.stdout.count("complete; skipping") + again.stdout.count("skipping generation")
    assert skipped == 10 and not re.search(r"\|\s+torch$", again.stderr, re.M), again.stdout[-3000:]
    assert {p: p.stat().st_mtime_ns for p in before} == before


def run_until(root, marker, wait_for=None):
    """Start SPRec.sh 2 and SIGKILL its whole process group once `marker` is printed (and `wait_for` exists)."""
    p = subprocess.Popen(["bash", "shell/SPRec.sh", "2"], cwd=ROOT, env=env_for(root), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if marker in line:
            deadline = time.time() + 120
            while wait_for is not None and not wait_for.exists() and time.time() < deadline:
                time.sleep(0.01)
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return "".join(lines)
    p.wait()
    raise AssertionError(f"the run ended before {marker!r}")


def test_killed_run_resumes_to_the_same_result(run, tmp_path):
    """SIGKILL during self-play generation, then during a training stage; each rerun skips finished stages, and
    the final metrics equal those of the uninterrupted run with the same seed. (Iteration 0 is copied from that run:
    iteration 1 starts from it exactly as in a fresh run, and the test costs one iteration, not two. So this is also
    a finished 1-iteration run extended to 2: only the new iteration runs.)"""
    root, _ = run
    new = tmp_path / "new"
    shutil.copytree(root / "SFT", new / "SFT")
    it = new / "SPRec/ML100K"
    shutil.copytree(root / "SPRec/ML100K/it0", it / "it0")
    finished = {q: q.stat().st_mtime_ns for q in (it / "it0").rglob("DONE")}
    assert len(finished) == 3
    log = run_until(new, "[self-play] iteration 1")  # generating iteration 1's pairs
    assert "[self-play] iteration 0" not in log and "[sft] start" not in log, log[-3000:]  # it0 and SFT: reused
    assert not (it / "it1/data").exists()
    run_until(new, "[dpo] start", wait_for=it / "it1/DPO.partial")  # training iteration 1's DPO step
    assert (it / "it1/DPO.partial").is_dir() and not (it / "it1/DPO").exists()
    finished.update({q: q.stat().st_mtime_ns for q in (it / "it1").rglob("DONE")})
    log = sh(new, "shell/SPRec.sh", "2").stdout
    assert {q: q.stat().st_mtime_ns for q in finished} == finished  # nothing finished was redone
    assert "[self-play] iteration" not in log and "[sft] start" not in log and "[dpo] start" in log
    for stage in ("it1/SFT", "it1/DPO"):
        for k in (1, 5):
            assert metrics(it / stage, k) == metrics(root / "SPRec/ML100K" / stage, k)
    assert not list(new.rglob("*.partial"))


def sft(tiny_model, out, recipe_args):
    """train.sft on the small model in this process (no interpreter start), as one CPU process runs it."""
    from conftest import run_module

    p = run_module("train.sft", "--category", "ML100K", "--base_model", tiny_model, "--output_dir", out,
                   "--recipe_args", recipe_args)
    assert p.returncode == 0, p.stderr[-3000:]
    return p, json.loads((out / "run_config_sft.json").read_text())["args"]


def test_sft_takes_the_recipes_optimizer_steps_on_one_cpu_process(tiny_model, tmp_path):
    """The global batch is the recipe: 1 process accumulates 2 steps of 8 (2 gloo processes take 1 step of 8 each:
    the same 4 steps over 64 records, checked by the two-machine test below)."""
    p, config = sft(tiny_model, tmp_path / "SFT/ML100K", "sft.sample_size=64 sft.valid_sample_size=8 "
                    "sft.num_train_epochs=1 sft.global_batch_size=16 sft.per_device_train_batch_size=8")
    assert config["world_size"] == config["processes"] == 1 and config["grad_accum"] == 2
    assert config["global_batch_size"] == 16 and config["steps"] == 4  # 64 records / 16 per step, on any count
    assert "global batch 16 = 8 per device x" in p.stdout


def test_a_per_device_batch_that_does_not_divide_the_global_batch_is_lowered(tiny_model, tmp_path):
    """The per-device batch is an upper bound (utils.trl_config.batch_plan): 8 per device with a global batch of 12
    runs 6 per device x 2 accumulation steps, the same 12 records per optimizer step."""
    p, config = sft(tiny_model, tmp_path / "out", "sft.sample_size=24 sft.valid_sample_size=4 sft.num_train_epochs=1 "
                    "sft.global_batch_size=12 sft.per_device_train_batch_size=8")
    assert "global batch 12 = 6 per device x 1 process(es) x 2 accumulation step(s)" in p.stdout
    assert config["steps"] == 2


def test_accumulation_and_one_large_batch_train_alike(tiny_model, tmp_path):
    """The per-device batch is memory, not the recipe: 2 per device x 4 accumulation steps and 8 x 1 take the same
    optimizer steps over the same records, to the same loss within float tolerance."""
    losses = {}
    for per_device in (2, 8):
        _, config = sft(tiny_model, tmp_path / f"pd{per_device}", "sft.sample_size=32 sft.valid_sample_size=4 "
                        f"sft.num_train_epochs=1 sft.global_batch_size=8 sft.per_device_train_batch_size={per_device}")
        assert (config["steps"], config["grad_accum"]) == (4, 8 // per_device)
        losses[per_device] = config["train_loss"]
    assert losses[2] == pytest.approx(losses[8], rel=1e-4)


@pytest.mark.parametrize("args, message", [
    (["shell/SPRec.sh", "0"], "the iteration count must be a positive integer, got '0'"),
    (["shell/SPRec.sh", "two"], "the iteration count must be a positive integer, got 'two'"),
    (["shell/SPRec.sh"], "usage: bash shell/SPRec.sh"),
    (["shell/SPRec.sh", "a", "2"], "GPU id 'a' is not a non-negative integer"),
    (["shell/SFT.sh", "-1"], "GPU id '-1' is not a non-negative integer"),
])
def test_usage_errors(tmp_path, args, message):
    p = sh(tmp_path, *args, check=False)
    assert p.returncode == 2 and message in p.stderr, p.stderr


@pytest.mark.parametrize("env, message", [
    ({"METHOD": "PPO"}, "METHOD must be one of SPRec, DPO, DPO+SFT, S-DPO, DMPO, SemanticDPO, GenreSFT, "
                        "SFT-only, got 'PPO'"),
    ({"METHOD": "S-DPO", "NUM_NEGATIVES": "0"}, "NUM_NEGATIVES must be a positive integer, got '0'"),
    # a tracker without its package: one line before self-play generates anything (the package is not installed)
    ({"REPORT_TO": "tensorboard"}, "REPORT_TO=tensorboard needs the tensorboard package: pip install tensorboard"),
])
def test_method_errors(tmp_path, env, message):
    p = sh(tmp_path, "shell/SPRec.sh", "1", check=False, **env)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not (tmp_path / "SPRec").exists()


def test_a_rerun_with_changed_settings_stops_and_changes_nothing(run, tmp_path):
    """A finished stage is reused only with the settings that made it; a changed one is named, nothing is touched."""
    root, _ = run
    new = tmp_path / "new"
    shutil.copytree(root / "SFT", new / "SFT")
    files = {q: q.stat().st_mtime_ns for q in new.rglob("*") if q.is_file() and q.suffix != ".lock"}
    p = sh(new, "shell/SFT.sh", check=False, RECIPE_ARGS=TOY_RECIPE + " sft.learning_rate=1e-3")
    assert p.returncode == 2 and "error: the SFT stage" in p.stderr, p.stderr
    assert "resolved_recipe.sft.learning_rate 0.003 -> 0.001" in p.stderr, p.stderr
    assert "set a new OUTPUT_ROOT" in p.stderr
    p = sh(new, "shell/SFT.sh", check=False, TEST_SAMPLE_SIZE="40")  # training unchanged, evaluation changed
    assert p.returncode == 2 and "test_sample_size 48 -> 40" in p.stderr, p.stderr
    assert "is complete; skipping" in p.stdout
    log = sh(new, "shell/SFT.sh").stdout  # the same settings: everything is reused
    assert "skipping generation" in log and "already evaluated with these settings; skipping" in log
    assert {q: q.stat().st_mtime_ns for q in files} == files


def test_two_machines_on_loopback_equal_one_machine_with_two_processes(ml100k, tmp_path):
    """Multi-node launching: two "machines" on 127.0.0.1 (machine ranks 0 and 1, one gloo process each, one shared
    OUTPUT_ROOT) run SFT and one SPRec iteration. SFT's training and its evaluation (generation sharded over the
    global ranks by the one routine self-play generates with too) equal those of one machine with 2 processes; the
    SPRec iteration runs on both machines, and machine 0 alone writes."""
    import socket

    small = dict(RECIPE_ARGS="sft.sample_size=64 sft.valid_sample_size=8 sft.num_train_epochs=1 "
                 "sft.per_device_train_batch_size=8 "
                 "self_play.train_sample_size=16 self_play.valid_sample_size=8 sft_step.per_device_train_batch_size=8 "
                 "dpo.per_device_train_batch_size=4", TEST_SAMPLE_SIZE="32", EVAL_SFT_STEP="0")
    one = tmp_path / "one"
    p = subprocess.run(["bash", "shell/SFT.sh"], cwd=ROOT, env=env_for(one, CPU_PROCESSES="2", **small),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    # Each "machine" takes one of this machine's cores, as a real one has its own (left at 2 threads each, the two
    # processes oversubscribe 2 cores and spin: evaluation took 30x longer). The one-machine run's 2 processes also
    # get 1 thread each.
    two = tmp_path / "two"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    machines = [subprocess.Popen(["bash", "-c", "bash shell/SFT.sh && bash shell/SPRec.sh 1"], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env=env_for(two, NUM_MACHINES="2", MACHINE_RANK=str(rank), MAIN_PROCESS_PORT=port,
                                             CPU_THREADS="1", **small))
                for rank in (0, 1)]
    logs = [m.communicate(timeout=900)[0] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for k in (1, 5):
        assert metrics(two / "SFT/ML100K", k) == metrics(one / "SFT/ML100K", k)
    configs = [json.loads((root / "SFT/ML100K/run_config_sft.json").read_text())["args"] for root in (one, two)]
    assert configs[0]["train_loss"] == configs[1]["train_loss"]
    for config in configs:  # the same 4 steps as one process (the test above), with no accumulation
        assert (config["steps"], config["grad_accum"], config["processes"], config["world_size"]) == (4, 1, 2, 2)
    it = two / "SPRec/ML100K/it0"
    for path in (it / "data/run_config_self_play.json", it / "DPO/run_config_dpo.json",
                 it / "DPO/run_config_inference.json"):
        assert json.loads(path.read_text())["args"]["world_size"] == 2, path
    assert (it / "DPO/eval_top5.json").is_file()
    # Only the main process of machine 0 writes: the other machine's log has no "wrote" line.
    for stage in ("[sft] wrote", "[self-play] wrote", "[dpo] wrote", "[inference] wrote"):
        assert stage in logs[0] and stage not in logs[1], stage
    assert "had defaults used instead" not in logs[0] + logs[1]  # every launch value is passed: no accelerate warning
