"""utils/plan.py: what each launch script runs, in order, with which command line, output, seed and recipe section;
its checks of the variables; its three forms (the dry run, the record in the run, the steps shell/common.sh reads)."""
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from utils import plan
from utils.io import UserError
from utils.markers import is_done
from utils.seeds import stage_seed

SPREC = {"CATEGORIES": "ML100K", "METHOD": "SPRec", "OUTPUT_ROOT": "runs/x", "RECIPE": "", "RECIPE_ARGS": "",
         "NUM_NEGATIVES": "3", "SELF_PLAY_DECODING": "greedy", "SPARE_RATIO": "", "EVAL_SFT_STEP": "1",
         "SFT_STEP_TEST_SAMPLE_SIZE": "24",
         "GRADIENT_CHECKPOINTING": "0", "LOAD_IN_4BIT": "0", "SEED": "42", "TEST_SAMPLE_SIZE": "48",
         "REPORT_TO": "none"}
SFT = {k: SPREC[k] for k in ("CATEGORIES", "OUTPUT_ROOT", "RECIPE", "RECIPE_ARGS", "GRADIENT_CHECKPOINTING",
                              "LOAD_IN_4BIT", "SEED", "TEST_SAMPLE_SIZE", "REPORT_TO")} | {"BASE_MODEL": ""}


def make(name, env, args=(), dry_run=True):
    return plan.make_plan(name, env, [], list(args), dry_run)


def launched(steps):
    return [s for s in steps if s.kind == "launch"]


def flag(step, name):
    return step.argv[step.argv.index(name) + 1]


def script_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("CONDA_PREFIX", "CUDA_VISIBLE_DEVICES")}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"],
               VIRTUAL_ENV=os.path.dirname(os.path.dirname(sys.executable)), **extra)
    return env


def test_each_machine_of_several_holds_its_own_lock_and_machine_0_alone_runs_the_one_process_steps(ml100k):
    env = {k: v for k, v in SFT.items() if k != "BASE_MODEL"} | {"BASE_MODEL": "", "NUM_MACHINES": "2"}
    for rank in ("0", "1"):
        steps = make("SFT", env | {"MACHINE_RANK": rank})
        assert [s.argv for s in steps if s.kind == "lock"] == [[f"runs/x/SFT/.ML100K.lock.machine{rank}"]]
        assert [s.argv[1] for s in steps if s.kind == "main"] == (["utils.tiny_model"] if rank == "0" else [])
        assert [s.argv[1] for s in launched(steps)] == ["train.sft", "eval.inference"]
        assert plan.launcher_of(steps)[-2:] == ["--main_process_port", "29500"]


def test_an_sprec_plan_is_every_stage_of_every_iteration_in_order(ml100k):
    steps = make("SPRec", SPREC, ["2"])
    assert [s.kind for s in steps[:7]] == ["export"] * 5 + ["launcher", "lock"]
    assert steps[5].argv == [] and steps[6].argv == ["runs/x/SPRec/ML100K/.lock"]  # one CPU process: plain python
    modules = [s.argv[1] for s in launched(steps)]
    assert modules == ["train.self_play", "train.sft", "eval.inference", "train.dpo", "eval.inference"] * 2
    for i in (0, 1):
        play, sft, sft_eval, dpo, dpo_eval = launched(steps)[5 * i:5 * i + 5]
        it = f"runs/x/SPRec/ML100K/it{i}"
        assert [s.output for s in (play, sft, dpo)] == [f"{it}/data", f"{it}/SFT", f"{it}/DPO"]
        assert [s.seed for s in (play, sft, dpo)] == [stage_seed(42, stage, i) for stage in ("self_play", "sft_step",
                                                                                             "dpo")]
        assert [s.section for s in (play, sft, dpo)] == ["self_play", "sft_step", "dpo"]
        for s in (play, sft, dpo):  # the stage derives its seed from the run seed and the iteration (utils/seeds.py)
            assert (flag(s, "--seed"), flag(s, "--iteration")) == ("42", str(i))
        assert flag(play, "--model_dir") == ("runs/x/SFT/ML100K" if i == 0 else "runs/x/SPRec/ML100K/it0/DPO")
        assert flag(sft, "--train_file") == f"{it}/data/sft_train.jsonl" and flag(dpo, "--model_dir") == f"{it}/SFT"
        assert flag(sft_eval, "--test_sample_size") == "24" and flag(dpo_eval, "--test_sample_size") == "48"
        assert flag(sft_eval, "--seed") == "42"  # the sampled test users: the run seed's, the same for every model
    assert steps[-1].kind == "say" and "2 iteration(s) in runs/x/SPRec/ML100K" in steps[-1].title


@pytest.mark.parametrize("env, modules, check", [
    ({"METHOD": "DPO"}, ["train.self_play", "train.dpo", "eval.inference"],
     lambda s: flag(s[0], "--negatives") == "random"),
    ({"METHOD": "GenreSFT"}, ["train.self_play", "train.sft", "eval.inference"],
     lambda s: flag(s[1], "--genre_weighting") == "True" and flag(s[2], "--test_sample_size") == "48"),
    ({"METHOD": "S-DPO"}, ["train.self_play", "train.dpo", "eval.inference"],
     lambda s: flag(s[0], "--num_negatives") == "3" and flag(s[1], "--recipe_args") == "dpo.loss_type=sdpo"),
    ({"EVAL_SFT_STEP": "0", "RECIPE_ARGS": "dpo.beta=0.2"}, ["train.self_play", "train.sft", "train.dpo",
                                                              "eval.inference"],
     lambda s: flag(s[2], "--recipe_args") == "dpo.beta=0.2" and "--spare_ratio" not in s[0].argv),
    ({"METHOD": "DPO", "SPARE_RATIO": "1.5"}, ["train.self_play", "train.dpo", "eval.inference"],
     lambda s: flag(s[0], "--spare_ratio") == "1.5"),
])
def test_each_method_takes_its_own_steps(ml100k, env, modules, check):
    steps = launched(make("SPRec", SPREC | env, ["1"]))
    assert [s.argv[1] for s in steps] == modules and check(steps)


def test_a_run_needs_its_finished_sft_model(ml100k, tmp_path):
    with pytest.raises(UserError, match=r"SFT/ML100K is not finished: run bash shell/SFT.sh first"):
        make("SPRec", SPREC | {"OUTPUT_ROOT": str(tmp_path)}, ["1"], dry_run=False)


@pytest.mark.parametrize("name, env, args, message", [
    ("SPRec", {"METHOD": "PPO"}, ["1"], "METHOD must be one of SPRec, DPO"),
    ("SPRec", {"METHOD": "S-DPO", "NUM_NEGATIVES": "0"}, ["1"], "NUM_NEGATIVES must be a positive integer, got '0'"),
    ("SPRec", {"EVAL_SFT_STEP": "yes"}, ["1"], "EVAL_SFT_STEP must be 0 or 1, got 'yes'"),
    ("SPRec", {"SELF_PLAY_DECODING": "beam"}, ["1"], "SELF_PLAY_DECODING must be greedy or constrained"),
    ("SPRec", {"DECODING": "greedy beam"}, ["1"], "DECODING must name one or more of greedy, constrained, "
                                                   "candidates, got 'beam'"),
    ("SPRec", {}, ["0"], "the iteration count must be a positive integer, got '0'"),
    ("SPRec", {"SEED": "-1"}, ["1"], "SEED must be a non-negative integer, got '-1'"),
    ("SPRec", {"SEED": "500000"}, ["1"], r"the run seed \(SEED\) must be an integer from 0 to 429495"),
    ("SFT", {"KERNELS": "fast"}, [], "KERNELS must be portable, native or bf16, got 'fast'"),
    ("SFT", {"CPU_THREADS": "0"}, [], "CPU_THREADS must be a positive integer, got '0'"),
    ("SFT", {"CATEGORIES": "../x"}, [], "bad category name '../x'"),
    ("SFT", {"CATEGORIES": "NoSuch"}, [], "unknown category 'NoSuch'"),
    ("SFT", {"REPORT_TO": "mlflow"}, [], "REPORT_TO=mlflow: use none, wandb or tensorboard"),
    ("SFT", {"GRADIENT_CHECKPOINTING": "2"}, [], "GRADIENT_CHECKPOINTING must be 0 or 1"),
    # settings that moved into the recipes stop every script, naming the new form
    ("SFT", {"SFT_SAMPLE_SIZE": "64"}, [], 'SFT_SAMPLE_SIZE is no longer read (the recipes hold it, utils/recipe.py): '
                                          'unset it and set RECIPE_ARGS="sft.sample_size=64" instead'),
    ("SFT", {"LR": "1e-4"}, [], 'set RECIPE_ARGS="dpo.learning_rate=1e-4 sft_step.learning_rate=1e-4" instead'),
    ("SFT", {"PRECOMPUTE_REF": "1"}, [], 'set RECIPE_ARGS="dpo.precompute_ref_log_probs=true" instead'),
    ("SFT", {"SFT_TRAINER_ARGS": "x=1"}, [], 'set RECIPE_ARGS="sft.<field>=value" instead'),
    ("SFT", {"MODEL_KIND": "pretrained"}, [], "MODEL_KIND is no longer read: the recipe follows the model"),
    ("scaling", {"POINTS": "256:ML100K:1:1", "RECIPE": "", "RECIPE_ARGS": "", "SEED": "1", "OUTPUT_ROOT": "x"}, [],
     r"bad point '256:ML100K:1:1': want HIDDENxLAYERS:CATEGORY:SAMPLE:EPOCHS\[:LR\]"),
    ("scaling", {"POINTS": "256x6:ML100K:1:1:2e-3:9", "RECIPE": "", "RECIPE_ARGS": "", "SEED": "1",
                 "OUTPUT_ROOT": "x"}, [], "bad point '256x6:ML100K:1:1:2e-3:9'"),
    ("sasrec", {"MODEL": "BERT4Rec", "CATEGORY": "ML100K", "OUTPUT_ROOT": "x", "SEED": "1"}, [],
     "MODEL must be one of SASRec, GRU4Rec, got 'BERT4Rec'"),
])
def test_bad_variables_are_one_line_before_anything_runs(ml100k, name, env, args, message):
    base = SPREC if name == "SPRec" else SFT if name == "SFT" else {}
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)") if "\\" not in message
                       else message):
        make(name, base | env, args)


def test_a_variable_the_block_sets_is_required():
    with pytest.raises(UserError, match="SEED is not set: a plan is made by a launch script"):
        make("SFT", {})


@pytest.mark.parametrize("kernels, threads, environment", [
    ("", "", {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2",
              "KERNELS": "portable", "OMP_NUM_THREADS": "2"}),
    ("native", "3", {"-ATEN_CPU_CAPABILITY": None, "-MKL_CBWR": None, "-ONEDNN_MAX_CPU_ISA": None,
                     "KERNELS": "native", "OMP_NUM_THREADS": "3"}),
])
def test_kernels_decide_the_environment_of_every_stage(ml100k, kernels, threads, environment):
    steps = make("SFT", SFT | {"KERNELS": kernels, "CPU_THREADS": threads})
    got = {(s.argv[0] if s.kind == "export" else "-" + s.argv[0]): (s.argv[1] if s.kind == "export" else None)
           for s in steps if s.kind in ("export", "unset")}
    assert got == environment


def test_learning_curve_and_scaling_plans(ml100k):
    env = {"CATEGORY": "ML100K", "BASE_MODEL": "smollm2", "BUDGETS": "512 1024", "RECIPE": "", "RECIPE_ARGS": "",
           "SEED": "7", "OUTPUT_ROOT": "c", "TEST_SAMPLE_SIZE": "300", "REPORT_TO": "none"}
    steps = make("learning_curve", env)
    sft = [s for s in launched(steps) if s.argv[1] == "train.sft"]
    assert [s.output for s in sft] == ["c/SFT-512/ML100K", "c/SFT-1024/ML100K"]
    assert [s.seed for s in sft] == [stage_seed(7, "sft", 0), stage_seed(7, "sft", 1)]
    assert flag(sft[0], "--base_model") == "smollm2" and flag(sft[1], "--resume_from") == "c/SFT-512/ML100K"
    assert [flag(s, "--recipe_args") for s in sft] == ["sft.sample_size=512"] * 2
    assert flag(sft[1], "--train_file") == "c/slices/ML100K/records-1024.jsonl"
    mains = [s.argv[:2] + s.argv[-2:] for s in steps if s.kind == "main"]
    assert mains[0][1] == "eval.learning_curve" and ["-m", "utils.pretrained", "--name", "smollm2"] in mains
    env = {"POINTS": "128x4:ML100K:200:2 256x6:ML100K:100:1:2e-3", "RECIPE": "r.yaml", "RECIPE_ARGS": "",
           "SEED": "7", "OUTPUT_ROOT": "s", "DECODING": "candidates"}  # a point's protocols are its own
    steps = [s for s in make("scaling", env) if s.kind in ("main", "launch") and s.argv[1] != "eval.mostpop"]
    build, sft, greedy, constrained = steps[:4]
    assert flag(build, "--heads") == "4" and flag(build, "--out") == "models/tiny-128x4/ML100K"
    assert sft.output == "s/128x4-ML100K-400/ML100K"
    assert flag(sft, "--recipe_args") == "sft.sample_size=200 sft.num_train_epochs=2"  # the recipe's learning rate
    assert (flag(greedy, "--decoding"), flag(constrained, "--decoding")) == ("greedy", "constrained")
    assert flag(steps[5], "--recipe_args") == "sft.sample_size=100 sft.num_train_epochs=1 sft.learning_rate=2e-3"
    assert steps[5].output == "s/256x6-ML100K-100/ML100K" and flag(steps[4], "--heads") == "8"


def test_seeds_start_each_root_from_one_sft_model(ml100k):
    env = {"SEEDS": "42 43", "ITERATIONS": "1", "RUNS_ROOT": "r", "FIGS_DIR": "f", "SFT_MODEL": "m/SFT/ML100K",
           "BASE_MODEL": "", "CATEGORY": "ML100K", "DECODING": "greedy", "REFERENCES": "MostPop"}
    steps = [s for s in make("seeds", env) if s.kind not in ("export", "unset")]
    copies = [s for s in steps if s.argv[:4] == ["-m", "utils.plan", "copy", "m/SFT/ML100K"]]
    assert [c.output for c in copies] == ["r/seed42/SFT/ML100K", "r/seed43/SFT/ML100K"]
    evals = [s for s in steps if s.kind == "launch"]
    assert [flag(s, "--seed") for s in evals] == ["42", "43"]
    runs = [s.argv for s in steps if s.kind == "run"]
    assert ["env", "SEED=43", "OUTPUT_ROOT=r/seed43", "CATEGORIES=ML100K", "bash", "shell/SPRec.sh", "1"] in runs
    assert flag(steps[-3], "--run_root") == "r/seed42,r/seed43" and steps[-3].argv[1] == "eval.report"
    stats = [s for s in steps if s.argv[1:2] == ["eval.stats"]]
    assert [(flag(s, "--decoding"), flag(s, "--k"), s.output) for s in stats] == [
        ("greedy", "1", "r/seed42/ML100K_stats_top1.md"), ("greedy", "5", "r/seed42/ML100K_stats.md")]
    assert all(flag(s, "--references") == "MostPop" for s in stats)


def test_seeds_on_another_category_under_several_protocols(ml100k):
    """seeds.sh CATEGORY, DECODING, REFERENCES: every seed's scripts run on the category, every model (the copied
    SFT model too) is evaluated under each protocol, and the statistics pair each protocol's top-K lists (the
    candidate protocol has none) at K=1 and 5, against each reference row."""
    env = {"SEEDS": "42 43", "ITERATIONS": "1", "RUNS_ROOT": "r", "FIGS_DIR": "f", "SFT_MODEL": "m",
           "BASE_MODEL": "", "CATEGORY": "Tiny", "DECODING": "greedy candidates constrained",
           "REFERENCES": "MostPop,SASRec"}
    with pytest.raises(UserError, match="unknown category 'Tiny'"):  # only ML100K is prepared by the plan
        make("seeds", env)
    steps = [s for s in make("seeds", env | {"CATEGORY": "ML100K"}) if s.kind not in ("export", "unset")]
    evals = [s for s in steps if s.kind == "launch"]
    assert [(flag(s, "--model_dir"), flag(s, "--decoding")) for s in evals] == [
        (f"r/seed{s}/SFT/ML100K", d) for s in (42, 43) for d in ("greedy", "candidates", "constrained")]
    runs = [s.argv for s in steps if s.kind == "run"]
    assert all("CATEGORIES=ML100K" in r for r in runs) and len(runs) == 4
    stats = [s for s in steps if s.argv[1:2] == ["eval.stats"]]
    assert [(flag(s, "--decoding"), flag(s, "--k")) for s in stats] == [
        ("greedy", "1"), ("greedy", "5"), ("constrained", "1"), ("constrained", "5")]
    assert stats[2].output == "r/seed42/ML100K_stats_constrained_top1.md"
    assert all(flag(s, "--references") == "MostPop,SASRec" for s in stats)
    with pytest.raises(UserError, match="DECODING must name one or more of"):
        make("seeds", env | {"CATEGORY": "ML100K", "DECODING": "beam"})


def test_evaluation_runs_each_protocol_named_in_decoding(ml100k, tmp_path):
    """DECODING="greedy constrained" (eval.sh, and every script's evaluations): one evaluation per protocol, in
    order, of the same model on the same users."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "DONE").write_text("")
    env = {"MODEL_DIR": str(model), "CATEGORY": "ML100K", "TEST_SAMPLE_SIZE": "", "TOPK": "1,5", "SEED": "42",
           "EMBEDDING_MODEL": "", "DECODING": "greedy constrained", "REPORT_TO": "none"}
    steps = launched(make("eval", env))
    assert [flag(s, "--decoding") for s in steps] == ["greedy", "constrained"]
    assert all(s.argv[:7] == ["-m", "eval.inference", "--model_dir", str(model), "--category", "ML100K", "--seed"]
               and flag(s, "--seed") == "42" for s in steps)
    sprec = launched(make("SPRec", SPREC | {"DECODING": "constrained greedy"}, ["1"]))
    assert [flag(s, "--decoding") for s in sprec if s.argv[1] == "eval.inference"] == ["constrained", "greedy"] * 2


def test_a_sasrec_plan_runs_recbole_in_its_own_environment(ml100k):
    env = {"MODEL": "GRU4Rec", "CATEGORY": "ML100K", "OUTPUT_ROOT": "o", "MAX_LEN": "10", "EPOCHS": "5",
           "PATIENCE": "2", "SEED": "3", "RECBOLE_ARGS": "hidden_size=32", "RAW": ""}
    steps = [s for s in make("sasrec", env) if s.kind not in ("export", "unset", "launcher")]
    assert [(s.kind, s.argv[1], s.output) for s in steps] == [
        ("main", "eval.mostpop", "o/MostPop/ML100K"), ("main", "eval.random_baseline", "o/Random/ML100K"),
        ("recbole", "eval.sasrec", "o/GRU4Rec/ML100K")]
    assert flag(steps[2], "--model") == "GRU4Rec" and flag(steps[2], "--max_len") == "10"
    assert flag(steps[2], "--recbole_args") == "hidden_size=32" and flag(steps[1], "--seed") == "3"
    assert plan.plan_name("sasrec", env) == "GRU4Rec"
    text = plan.describe("sasrec", env, [], [], steps, "")
    assert "[.venv-recbole, machine 0]" in text and ".venv-recbole/bin/python -m eval.sasrec" in text


def test_a_copied_model_leaves_its_evaluations_behind(tmp_path):
    """seeds.sh SFT_MODEL=DIR: each seed's root gets the model and its training record, not another run's eval files
    (the seed evaluates its own users); a second copy keeps it, a different model in the way stops."""
    src, dest = tmp_path / "src", tmp_path / "seed42/SFT/ML100K"
    src.mkdir()
    for name in ("DONE", "adapter_model.safetensors", "run_config_sft.json", "eval_top5.json", "eval_users.jsonl",
                 "test_result.json", "run_config_inference.json", "run_config_evaluation.json"):
        (src / name).write_text(name)
    plan.copy_model(str(src), str(dest))
    assert sorted(f.name for f in dest.iterdir()) == ["DONE", "adapter_model.safetensors", "run_config_sft.json"]
    plan.copy_model(str(src), str(dest))
    (src / "run_config_sft.json").write_text("another run")
    with pytest.raises(UserError, match="holds another model"):
        plan.copy_model(str(src), str(dest))
    (src / "DONE").unlink()
    with pytest.raises(UserError, match="not a finished model directory"):
        plan.copy_model(str(src), str(tmp_path / "other"))
    assert not (tmp_path / "other").exists() and is_done(dest)


def test_the_steps_reach_bash_whole(tmp_path):
    """The machine form through shell/common.sh's run_steps: arguments with spaces, quotes, a newline or nothing
    arrive as they were; the environment reaches later steps; a one-process step runs with its banner."""
    odd = ["a b", "it's \"quoted\"", "two\nlines", "", "$HOME"]
    steps = [plan.Step("export", ["PLAN_TEST", "x y"]), plan.Step("run", ["printf", "<%s>", *odd]),
             plan.Step("run", ["bash", "-c", 'echo " $PLAN_TEST"']), plan.Step("say", title="said"),
             plan.Step("main", ["-c", "print('machine 0')"], "a main step")]
    path = tmp_path / "plan"
    path.write_bytes(plan.machine_form(steps))
    p = subprocess.run(["bash", "-c", f"source shell/common.sh; exec 8<'{path}'; run_steps"], cwd=ROOT,
                       env=script_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("".join(f"<{x}>" for x in odd) + " x y\nsaid\n")
    assert "machine 0" in p.stdout and "==== a main step" in p.stdout


def test_every_script_answers_help():
    for script in sorted((ROOT / "shell").glob("*.sh")):
        if script.name in ("common.sh", "help.sh"):
            continue
        p = subprocess.run(["bash", str(script.relative_to(ROOT)), "--help"], cwd=ROOT, env=script_env(),
                           capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout.startswith(f"usage: bash shell/{script.name}"), (script, p.stderr)
        block = script.read_text().split("# ---- edit here", 1)
        if len(block) == 2:  # the variable block, whole
            assert "variables (set them in the environment" in p.stdout, script
            assert block[1].split("\n# ------")[0].strip() in p.stdout, script


def test_a_dry_run_prints_the_whole_plan_and_writes_nothing(ml100k, tmp_path):
    root = tmp_path / "models"
    p = subprocess.run(["bash", "shell/demo.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                       env=script_env(OUTPUT_ROOT=str(root), FIGS_DIR=str(tmp_path / "figs")))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for text in ("plan of bash shell/demo.sh", "plan of bash shell/SFT.sh", "plan of bash shell/SPRec.sh 1",
                 "plan of bash shell/baselines.sh 1", f"recorded in {root}/plans/DPO.json",
                 "python -m train.sft --category ML100K --base_model ''", "seed 421000", "seed 422000",
                 "seed 424000", "recipe section sft_step", "python -m eval.report --run_root", "say: table:"):
        assert text in out, text
    assert out.count("python -m train.dpo") == 3  # SPRec, DPO, DPO+SFT
    assert not tmp_path.joinpath("models").exists() and "====" not in out  # nothing ran, nothing written


def test_a_run_records_its_plan(ml100k, tmp_path):
    env = script_env(**(SFT | {"OUTPUT_ROOT": str(tmp_path)}))
    out = tmp_path / "steps"
    for rank in ("1", "0"):  # only machine 0 records
        p = subprocess.run([sys.executable, "-m", "utils.plan", "SFT", "--gpus", "", "--out", str(out)], cwd=ROOT,
                           env=env | {"MACHINE_RANK": rank, "NUM_MACHINES": "2"}, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "plans/SFT.json").is_file() == (rank == "0")
    record = json.loads((tmp_path / "plans/SFT.json").read_text())
    assert record["script"] == "shell/SFT.sh" and record["launcher"]["gpu_ids"] == [] and record["git_commit"]
    sft = next(s for s in record["steps"] if s["kind"] == "launch" and s["argv"][1] == "train.sft")
    assert sft["seed"] == stage_seed(42, "sft") and sft["section"] == "sft"
    assert record["launcher"]["accelerate"][:2] == ["--config_file", "shell/accelerate/multi_cpu.yaml"]
    assert out.read_bytes() == plan.machine_form(plan.make_plan("SFT", env | {"NUM_MACHINES": "2"}, [], []))
