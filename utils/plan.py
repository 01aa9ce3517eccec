"""The run plan: every step a launch script takes, decided here from its variables, its arguments and its GPU ids.

usage: bash shell/<script>.sh [GPU ids...] [ARGS...] --dry-run         # prints the plan, runs nothing
       python -m utils.plan SCRIPT [ARGS...] --gpus "0 1" --out FILE  # what shell/common.sh's run_plan asks
       python -m utils.plan copy SRC DEST                             # a finished model into another run root
A script keeps what a user edits (its variable block, exported to this module) and the mechanics of GPU ids,
launchers and locks (shell/common.sh). Every decision about a run is made here: its stages and their order, each
one's command line, output, seed (utils/seeds.py), recipe section and launcher; the run layout (utils/methods.py);
the checks of the variables (category names, the method, switches, the tracker, KERNELS, retired variables). Steps:
    export NAME VALUE, unset NAME   the environment of every later step (KERNELS: threads and kernels)
    lock PATH                       one run per output directory at a time (held until the script ends)
    launcher ARGS...                accelerate launch's arguments for the launch steps below (none: plain python)
    launch ARGS...                  python ARGS through the launcher: accelerate over the GPU ids or CPU processes
    main ARGS...                    python ARGS, one process (builds, MostPop, reports; machine 0's plan only)
    recbole ARGS...                 RecBole's python (.venv-recbole) with ARGS, one process (machine 0's plan only)
    run COMMAND...                  a command as it is, on every machine (another script and its own plan)
    say TEXT                        a line to print
A plan is recorded in <run root>/plans/<name>.json before it runs (machine 0); --dry-run prints it instead, with
the plans of the scripts it runs.
"""
import importlib.util
import os
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from utils.io import UserError, write_json
from utils.seeds import stage_seed


@dataclass
class Step:
    kind: str  # export, unset, lock, launcher, launch, main, recbole, run, say
    argv: list = field(default_factory=list)
    title: str = ""  # the banner printed before it runs
    output: str = ""  # the directory (or file) it makes
    seed: int | None = None  # the seed it trains with (utils/seeds.py), for training stages
    section: str = ""  # the recipe section it trains with


class Variables:
    """A script's variables as its block exported them: every one the block names is set there."""

    def __init__(self, environ, script: str):
        self.env, self.script = environ, script

    def __getitem__(self, name: str) -> str:
        if name not in self.env:
            raise UserError(f"{name} is not set: a plan is made by a launch script (bash shell/{self.script}.sh), "
                            f"whose variable block sets it")
        return self.env[name]

    def get(self, name: str, default: str = "") -> str:
        return self.env.get(name, default)

    def switch(self, name: str) -> bool:
        value = self[name]
        if value not in ("0", "1"):
            raise UserError(f"{name} must be 0 or 1, got {value!r}")
        return value == "1"

    def words(self, name: str) -> list[str]:
        return self[name].split()


def positive_int(value: str, what: str) -> int:
    if not re.fullmatch(r"[0-9]+", value) or int(value) == 0:
        raise UserError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def run_seed(v: Variables) -> int:
    value = v["SEED"]
    if not re.fullmatch(r"[0-9]+", value):
        raise UserError(f"SEED must be a non-negative integer, got {value!r}")
    stage_seed(int(value), "sft")  # in the rule's range
    return int(value)


# ----------------------------------------------------------------------------------------- shared steps
# Digits that travel (utils/numerics.py). KERNELS=portable (the default): CPU_THREADS threads a machine (2, whatever
# its core count), ATen's and oneDNN's AVX2 kernels (every x86-64 CPU since about 2015 has them) and MKL's COMPATIBLE
# branch (MKL's AVX2 branch differs between Intel and AMD): the same eval files on any such machine, at a measured
# speed cost (docs/reproducibility.md). KERNELS=native: the machine's own cores and fastest kernels; faster,
# and the digits are the machine's. KERNELS=bf16: native, plus bf16 autocast and bf16 frozen weights (trained weights
# stay fp32) on a CPU with bf16 instructions (AVX512-BF16, AMX; utils/device.py refuses others).
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def kernels_and_threads(v: Variables) -> tuple[str, int]:
    kernels = v.get("KERNELS") or "portable"
    if kernels not in ("portable", "native", "bf16"):
        raise UserError(f"KERNELS must be portable, native or bf16, got {kernels!r}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return kernels, positive_int(v.get("CPU_THREADS") or str(2 if kernels == "portable" else cores), "CPU_THREADS")


def kernel_steps(v: Variables) -> list[Step]:
    kernels, threads = kernels_and_threads(v)
    if kernels == "portable":
        steps = [Step("export", [name, value]) for name, value in PORTABLE_KERNELS.items()]
    else:
        steps = [Step("unset", [name]) for name in PORTABLE_KERNELS]
    return steps + [Step("export", ["KERNELS", kernels]), Step("export", ["OMP_NUM_THREADS", str(threads)])]


def launcher(v: Variables, gpus: list[str]) -> list[str]:
    """accelerate launch's arguments for this machine's launch steps: over the GPU ids (one process each: DDP, or
    FSDP / DeepSpeed with SHARDING) or over CPU_PROCESSES gloo processes, on each of NUM_MACHINES machines; none
    where one CPU process on one machine runs plain python. A config from shell/accelerate/ is always passed, so a
    user's default accelerate config never changes a run (ACCELERATE_CONFIG names another one for GPUs). The port
    is last: FREE where there is one machine, and shell/common.sh picks a free port at each launch (two runs can
    share a machine)."""
    machines = positive_int(v.get("NUM_MACHINES") or "1", "NUM_MACHINES")
    rank = v.get("MACHINE_RANK") or "0"
    if not re.fullmatch(r"[0-9]+", rank) or int(rank) >= machines:
        raise UserError(f"NUM_MACHINES={machines}, MACHINE_RANK={rank}: need 0 <= MACHINE_RANK < NUM_MACHINES")
    sharding = v.get("SHARDING") or "none"
    if sharding not in ("none", "fsdp", "zero2", "zero3"):
        raise UserError(f"SHARDING must be none, fsdp, zero2 or zero3, got {sharding!r}")
    if sharding != "none" and not gpus:
        raise UserError(f"SHARDING={sharding} needs GPUs (accelerate shards only on accelerators); on the CPU use "
                        f"SHARDING=none")
    if sharding.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
        raise UserError(f"SHARDING={sharding} needs DeepSpeed: pip install deepspeed (or use SHARDING=fsdp)")
    per_machine = len(gpus) or positive_int(v.get("CPU_PROCESSES") or "1", "CPU_PROCESSES")
    threads = []
    if not gpus:
        if per_machine == 1 and machines == 1:
            return []
        config = "multi_cpu"
        # the machine's threads shared by its processes, passed (left to accelerate, it takes the machine's cores
        # and says so in a warning on every launch)
        threads = ["--num_cpu_threads_per_process", str(max(1, kernels_and_threads(v)[1] // per_machine))]
    elif sharding != "none":
        config = sharding
    else:
        config = "single_gpu" if per_machine == 1 and machines == 1 else "multi_gpu"
    config_file = (gpus and v.get("ACCELERATE_CONFIG")) or f"shell/accelerate/{config}.yaml"
    port = (v.get("MAIN_PROCESS_PORT") or "29500") if machines > 1 else "FREE"
    return ["--config_file", config_file, "--num_processes", str(per_machine * machines), "--num_machines",
            str(machines), "--machine_rank", rank, "--main_process_ip", v.get("MAIN_PROCESS_IP") or "127.0.0.1",
            *threads, "--main_process_port", port]


def this_machine(v: Variables, steps: list[Step]) -> list[Step]:
    """The steps as this machine runs them: on several machines each holds its own lock (a shared file system), and
    the one-process steps run on machine 0 alone."""
    if positive_int(v.get("NUM_MACHINES") or "1", "NUM_MACHINES") == 1:
        return steps
    rank = v.get("MACHINE_RANK") or "0"
    locks = [Step("lock", [s.argv[0] + f".machine{rank}"], s.title) if s.kind == "lock" else s for s in steps]
    return [s for s in locks if rank == "0" or s.kind not in ("main", "recbole")]


def check_category(category: str) -> str:
    from utils.data import category_dir

    category_dir(category)  # a safe name, and data/<category> exists
    return category


def check_tracker(v: Variables) -> str:
    from utils.tracking import check_tracker

    return check_tracker(v.get("REPORT_TO") or "none")


def decodings(v: Variables) -> list[str]:
    """DECODING: the protocols each model is evaluated under, one or several ("greedy constrained"), in order."""
    from utils.metrics import DECODINGS

    names = (v.get("DECODING") or "greedy").split()
    for name in names:
        if name not in DECODINGS:
            raise UserError(f"DECODING must name one or more of {', '.join(DECODINGS)}, got {name!r}")
    return names


def evaluations(v: Variables, model_dir: str, category: str, test_sample_size: str = "",
                protocols: list[str] | None = None) -> list[Step]:
    """A model directory's evaluation under each protocol of DECODING (or `protocols`), in turn: eval/inference.py,
    then eval/evaluate.py in the same process; greedy predictions, constrained beams or the candidate protocol, then
    eval_top{K}[_<protocol>].json. A rerun reuses what was made with the same settings. TOPK and EMBEDDING_MODEL are
    the stage's own when unset."""
    steps = []
    for decoding in protocols or decodings(v):
        argv = ["-m", "eval.inference", "--model_dir", model_dir, "--category", category, "--seed", str(run_seed(v))]
        if test_sample_size:
            argv += ["--test_sample_size", test_sample_size]
        argv += ["--evaluate", "--decoding", decoding, "--report_to", check_tracker(v)]
        for name, flag in (("TOPK", "--topk"), ("EMBEDDING_MODEL", "--embedding_model")):
            if v.get(name):
                argv += [flag, v.get(name)]
        steps.append(Step("launch", argv, f"evaluating {model_dir} ({decoding} decoding)", model_dir))
    return steps


def base_model_step(v: Variables, category: str, base_model: str, recipe: str, recipe_args: str) -> Step | None:
    """The embedded defaults, built on first use (each build skips itself when built): the category's small model
    when the base model is empty (its tokenizer fitted to the texts of the recipe's contract), an embedded pretrained
    model named by its short name (BASE_MODEL=smollm2; utils/pretrained.py). Paths and hub ids are used as given."""
    if not base_model:
        return Step("main", ["-m", "utils.tiny_model", "--category", category, "--recipe", recipe, "--recipe_args",
                             recipe_args], f"the small model for {category} (built once)")
    if re.fullmatch(r"[a-z0-9]+", base_model) and not Path(base_model).exists():
        return Step("main", ["-m", "utils.pretrained", "--name", base_model],
                    f"the pretrained {base_model} (built once)")
    return None


def memory_args(v: Variables) -> list[str]:
    return ["--activation_checkpointing", str(v.switch("GRADIENT_CHECKPOINTING")),
            "--load_in_4bit", str(v.switch("LOAD_IN_4BIT"))]


def script(name: str, gpus: list[str], args=(), **env) -> Step:
    """Another launch script, run as it is with its own plan (and `env` over this one's variables)."""
    assignments = [f"{k}={value}" for k, value in env.items()]
    argv = (["env", *assignments] if assignments else []) + ["bash", f"shell/{name}.sh", *gpus, *map(str, args)]
    return Step("run", argv, " ".join([*assignments, f"shell/{name}.sh", *map(str, args)]))


# -------------------------------------------------------------------------------------------- the scripts
def plan_sft(v: Variables, gpus: list[str]) -> list[Step]:
    """SFT of the base model on each category, then its evaluation: <OUTPUT_ROOT>/SFT/<Category>."""
    from utils.methods import method_dir

    seed, memory, tracker = run_seed(v), memory_args(v), check_tracker(v)
    steps = []
    for category in map(check_category, v.words("CATEGORIES")):
        out = str(method_dir(v["OUTPUT_ROOT"], "SFT", category))
        steps.append(Step("lock", [str(Path(v["OUTPUT_ROOT"]) / "SFT" / f".{category}.lock")]))
        build = base_model_step(v, category, v["BASE_MODEL"], v["RECIPE"], v["RECIPE_ARGS"])
        steps += [build] if build else []
        steps.append(Step("launch", ["-m", "train.sft", "--category", category, "--base_model", v["BASE_MODEL"],
                                     "--output_dir", out, "--recipe", v["RECIPE"], "--recipe_args", v["RECIPE_ARGS"],
                                     "--seed", str(seed), "--iteration", "0", "--report_to", tracker, *memory],
                          f"SFT on {category} -> {out}", out, stage_seed(seed, "sft"), "sft"))
        steps += evaluations(v, out, category, v["TEST_SAMPLE_SIZE"])
    return steps


def plan_sprec(v: Variables, gpus: list[str], iterations: str = "", dry_run: bool = False) -> list[Step]:
    """METHOD's self-play iterations from <OUTPUT_ROOT>/SFT/<Category>: each samples rejected items (the model's own
    predictions, or the method's offline negatives), then the method's steps (an SFT step, a DPO step whose reference
    is the model it starts from), each evaluated. Finished stages skip themselves, so a rerun resumes and a larger
    ITERATIONS extends a finished run."""
    from utils.markers import is_done
    from utils.methods import iteration_dir, method_dir, method_settings

    n = positive_int(iterations, "the iteration count")
    method = v["METHOD"]
    m = method_settings(method, v["NUM_NEGATIVES"])
    seed, memory, tracker = run_seed(v), memory_args(v), check_tracker(v)
    eval_sft_step = v.switch("EVAL_SFT_STEP")
    recipe_args = " ".join(x for x in (v["RECIPE_ARGS"], m["recipe_args"]) if x)
    recipe = ["--recipe", v["RECIPE"], "--recipe_args", recipe_args]
    if v["SELF_PLAY_DECODING"] not in ("greedy", "constrained"):
        raise UserError(f"SELF_PLAY_DECODING must be greedy or constrained, got {v['SELF_PLAY_DECODING']!r}")
    # spare prompts = SPARE_RATIO x the pairs wanted (train.self_play checks it); empty: the contract's
    spare = ["--spare_ratio", v["SPARE_RATIO"]] if v["SPARE_RATIO"] else []
    steps = []
    for category in map(check_category, v.words("CATEGORIES")):
        sft = str(method_dir(v["OUTPUT_ROOT"], "SFT", category))
        if not dry_run and not is_done(sft):
            raise UserError(f"{sft} is not finished: run bash shell/SFT.sh first")
        run = method_dir(v["OUTPUT_ROOT"], method, category)
        steps.append(Step("lock", [str(run / ".lock")]))
        current = sft
        for i in range(n):
            it = iteration_dir(v["OUTPUT_ROOT"], method, category, i)
            data, title = str(it / "data"), f"{method} {category} iteration {i}/{n}"
            steps.append(Step("launch", ["-m", "train.self_play", "--model_dir", current, "--output_dir", data,
                                         "--category", category, "--iteration", str(i), "--seed", str(seed),
                                         "--negatives", m["negatives"], "--num_negatives", str(m["num_negatives"]),
                                         *recipe, "--embedding_model", v.get("EMBEDDING_MODEL"),
                                         "--decoding", v["SELF_PLAY_DECODING"], *spare],
                              f"{title}: self-play data", data, stage_seed(seed, "self_play", i), "self_play"))
            if m["sft_step"]:
                out = str(it / "SFT")
                steps.append(Step("launch", ["-m", "train.sft", "--category", category, "--resume_from", current,
                                             "--output_dir", out, "--train_file", str(it / "data" / "sft_train.jsonl"),
                                             "--section", "sft_step", *recipe, "--seed", str(seed), "--iteration",
                                             str(i), "--report_to", tracker, "--genre_weighting",
                                             str(m["genre_weighting"]), *memory],
                                  f"{title}: SFT step", out, stage_seed(seed, "sft_step", i), "sft_step"))
                # The SFT step's model is intermediate for SPRec and DPO+SFT (the paper evaluates it too, on a fixed
                # subset of test users when SFT_STEP_TEST_SAMPLE_SIZE is set); for SFT-only and GenreSFT the result.
                if not m["dpo_step"]:
                    steps += evaluations(v, out, category, v["TEST_SAMPLE_SIZE"])
                elif eval_sft_step:
                    steps += evaluations(v, out, category, v["SFT_STEP_TEST_SAMPLE_SIZE"] or v["TEST_SAMPLE_SIZE"])
                current = out
            if m["dpo_step"]:
                out = str(it / "DPO")
                steps.append(Step("launch", ["-m", "train.dpo", "--model_dir", current, "--data_dir", data,
                                             "--output_dir", out, *recipe, "--seed", str(seed), "--iteration", str(i),
                                             "--report_to", tracker, *memory],
                                  f"{title}: DPO step", out, stage_seed(seed, "dpo", i), "dpo"))
                steps += evaluations(v, out, category, v["TEST_SAMPLE_SIZE"])
                current = out
        steps.append(Step("say", title=f"[{method}] {category}: {n} iteration(s) in {run}"))
    return steps


def mostpop(v: Variables, category: str, out: str, test_sample_size: str) -> Step:
    argv = ["-m", "eval.mostpop", "--category", category, "--output_dir", out, "--seed", str(run_seed(v))]
    if test_sample_size:
        argv += ["--test_sample_size", test_sample_size]
    return Step("main", argv, f"MostPop on {category}", out)


def plan_baselines(v: Variables, gpus: list[str], iterations: str = "") -> list[Step]:
    """BASELINES (all: the roster of utils/methods.py), each a METHOD of shell/SPRec.sh with its variables, and
    MostPop, which needs no model."""
    from utils.methods import BASELINES, iterative_method, method_dir

    positive_int(iterations, "the iteration count")
    names = BASELINES if v["BASELINES"] == "all" else v.words("BASELINES")
    steps = []
    for name in names:
        if name == "MostPop":
            steps += [mostpop(v, c, str(method_dir(v["OUTPUT_ROOT"], "MostPop", c)), v["TEST_SAMPLE_SIZE"])
                      for c in map(check_category, v.words("CATEGORIES"))]
        else:
            iterative_method(name)  # a bad name stops now, before any baseline runs
            steps.append(script("SPRec", gpus, [iterations], METHOD=name))
    return steps


def prepare_ml100k() -> list[Step]:
    from utils.data import DATA_ROOT
    from utils.markers import is_done

    if is_done(Path(DATA_ROOT) / "ML100K"):
        return []
    return [Step("main", ["-m", "data.prepare", "ml-100k"], "preparing MovieLens-100K (data/ML100K)", "data/ML100K")]


def report(v: Variables, roots: list[str], figs_dir: str, category: str = "ML100K") -> list[Step]:
    from utils.metrics import stats_name

    joined = ",".join(roots)
    return [Step("main", ["-m", "eval.report", "--run_root", joined, "--category", category, "--figs_dir", figs_dir],
                 "report", f"{roots[0]}/{category}_results.md"),
            Step("main", ["-m", "eval.stats", "--run_root", joined, "--category", category], "paired statistics",
                 f"{roots[0]}/{stats_name(category)}")]


def plan_demo(v: Variables, gpus: list[str]) -> list[Step]:
    """The main job from a fresh clone: MovieLens-100K, SFT, SPRec's iterations, the verdict's baselines, then the
    report and the paired statistics."""
    iterations = str(positive_int(v["ITERATIONS"], "ITERATIONS"))
    root = v["OUTPUT_ROOT"]
    return [*prepare_ml100k(), script("SFT", gpus), script("SPRec", gpus, [iterations]),
            script("baselines", gpus, [iterations]), *report(v, [root], v["FIGS_DIR"]),
            Step("say", title=f"table: {root}/ML100K_results.md, figures: {v['FIGS_DIR']}/ML100K_*.png")]


def statistics(v: Variables, roots: list[str], category: str) -> list[Step]:
    """The paired statistics over the seeds' roots under each protocol of DECODING that gives top-K lists of the
    catalog (the candidate protocol ranks given candidates: no lists to pair), at K = 1 and 5, every trained model
    also against each reference row of REFERENCES (eval.stats --references)."""
    from utils.metrics import stats_name

    steps = []
    for decoding in decodings(v):
        if decoding == "candidates":
            continue
        for k in (1, 5):
            steps.append(Step("main", ["-m", "eval.stats", "--run_root", ",".join(roots), "--category", category,
                                       "--decoding", decoding, "--references", v["REFERENCES"], "--k", str(k)],
                              f"paired statistics ({decoding} decoding, K={k})",
                              f"{roots[0]}/{stats_name(category, decoding, k)}"))
    return steps


def plan_seeds(v: Variables, gpus: list[str]) -> list[Step]:
    """The demo's comparison once per seed, each in RUNS_ROOT/seed<S>, on CATEGORY, every model evaluated under each
    protocol of DECODING; then one report over the seeds and the paired statistics of each protocol."""
    from utils.methods import method_dir

    iterations = str(positive_int(v["ITERATIONS"], "ITERATIONS"))
    category = v["CATEGORY"]
    steps = prepare_ml100k() if category == "ML100K" else []  # the others are prepared by hand (data.prepare)
    if not steps:
        check_category(category)
    decodings(v)  # a bad protocol stops now, before any seed runs
    seeds = v.words("SEEDS")
    for s in seeds:
        run_seed(Variables({"SEED": s}, "seeds"))
    roots = []
    for s in seeds:
        root = str(Path(v["RUNS_ROOT"]) / f"seed{s}")
        env = {"SEED": s, "OUTPUT_ROOT": root, "CATEGORIES": category}
        if v["SFT_MODEL"]:  # every seed starts from one finished SFT model, evaluated in its own root
            sft = str(method_dir(root, "SFT", category))
            steps.append(Step("main", ["-m", "utils.plan", "copy", v["SFT_MODEL"], sft],
                              f"seed {s}: {v['SFT_MODEL']} copied", sft))
            steps += evaluations(Variables({**v.env, **env}, "seeds"), sft, category, v.get("TEST_SAMPLE_SIZE"))
        else:
            steps.append(script("SFT", gpus, **env))
        steps += [script("SPRec", gpus, [iterations], **env), script("baselines", gpus, [iterations], **env)]
        roots.append(root)
    return steps + report(v, roots, v["FIGS_DIR"], category)[:1] + statistics(v, roots, category)


def plan_eval(v: Variables, gpus: list[str]) -> list[Step]:
    """One finished model directory's evaluation (shell/eval.sh MODEL_DIR CATEGORY)."""
    from utils.markers import is_done

    model_dir, category = v["MODEL_DIR"], check_category(v["CATEGORY"])
    if not is_done(model_dir):
        raise UserError(f"{model_dir} is not a finished model directory (no DONE marker)")
    return evaluations(v, model_dir, category, v["TEST_SAMPLE_SIZE"])


def plan_learning_curve(v: Variables, gpus: list[str]) -> list[Step]:
    """SFT on growing budgets of train records, each stage continuing the previous one's model on records it has not
    seen, each evaluated on the same test users, with MostPop on them too; then the curve's table and figure."""
    from utils.methods import curve_slice, curve_stage_dir, method_dir

    category, root, seed = check_category(v["CATEGORY"]), v["OUTPUT_ROOT"], run_seed(v)
    budgets = [positive_int(b, "each of BUDGETS") for b in v.words("BUDGETS")]
    steps = [Step("lock", [str(Path(root) / f".{category}.lock")]),
             Step("main", ["-m", "eval.learning_curve", "--run_root", root, "--category", category, "--slices",
                           ",".join(map(str, budgets)), "--seed", str(seed)], "the budgets' records")]
    build = base_model_step(v, category, v["BASE_MODEL"], v["RECIPE"], v["RECIPE_ARGS"])
    steps += [build] if build else []
    previous, seen = "", 0
    for i, budget in enumerate(budgets):
        out = str(curve_stage_dir(root, budget, category))
        start = ["--resume_from", previous] if previous else ["--base_model", v["BASE_MODEL"]]
        steps.append(Step("launch", ["-m", "train.sft", "--category", category, *start, "--output_dir", out,
                                     "--train_file", str(curve_slice(root, category, budget)), "--recipe", v["RECIPE"],
                                     "--recipe_args", f"{v['RECIPE_ARGS']} sft.sample_size={budget - seen}".strip(),
                                     "--seed", str(seed), "--iteration", str(i)],
                          f"SFT to {budget} records ({budget - seen} new) -> {out}", out, stage_seed(seed, "sft", i),
                          "sft"))
        steps += evaluations(v, out, category, v["TEST_SAMPLE_SIZE"])
        previous, seen = out, budget
    steps.append(mostpop(v, category, str(method_dir(root, "MostPop", category)), v["TEST_SAMPLE_SIZE"]))
    return steps + [Step("main", ["-m", "eval.learning_curve", "--run_root", root, "--category", category],
                         "the curve's table and figure", f"{root}/{category}_curve.md")]


SCALING_POINT = re.compile(r"([0-9]+)x([0-9]+):([^:]+):([1-9][0-9]*):([1-9][0-9]*)(?::([^:]+))?")


def plan_scaling(v: Variables, gpus: list[str]) -> list[Step]:
    """The small model's scaling study: per point a small model of that size, SFT on that many records (at the
    point's learning rate, else the recipe's), greedy and constrained evaluation, MostPop on the same category:
    <OUTPUT_ROOT>/<size>-<Category>-<records>/<Category>."""
    root, seed = v["OUTPUT_ROOT"], run_seed(v)
    steps = [Step("lock", [str(Path(root) / ".lock")])]
    for point in v.words("POINTS"):
        match = SCALING_POINT.fullmatch(point)
        if not match:
            raise UserError(f"bad point {point!r}: want HIDDENxLAYERS:CATEGORY:SAMPLE:EPOCHS[:LR], e.g. "
                            f"256x6:ML100KALL:40000:1")
        hidden, layers, category, sample, epochs, lr = match.groups()
        check_category(category)
        size, base = f"{hidden}x{layers}", f"models/tiny-{hidden}x{layers}/{category}"
        out = str(Path(root) / f"{size}-{category}-{int(sample) * int(epochs)}" / category)
        steps.append(Step("main", ["-m", "utils.tiny_model", "--category", category, "--out", base, "--hidden", hidden,
                                   "--layers", layers, "--heads", str(int(hidden) // 32), "--recipe", v["RECIPE"],
                                   "--recipe_args", v["RECIPE_ARGS"]], f"the small model {size} for {category}", base))
        sizes = f"{v['RECIPE_ARGS']} sft.sample_size={sample} sft.num_train_epochs={epochs}".strip()
        sizes += f" sft.learning_rate={lr}" if lr else ""
        steps.append(Step("launch", ["-m", "train.sft", "--category", category, "--base_model", base, "--output_dir",
                                     out, "--recipe", v["RECIPE"], "--recipe_args", sizes, "--seed", str(seed)],
                          f"point {point} -> {out}", out, stage_seed(seed, "sft"), "sft"))
        steps += evaluations(v, out, category, protocols=["greedy", "constrained"])
        steps.append(mostpop(v, category, str(Path(root) / f"MostPop-{category}" / category), ""))
    return steps


def plan_sasrec(v: Variables, gpus: list[str]) -> list[Step]:
    """SASRec or GRU4Rec from RecBole on CATEGORY's split (eval/sasrec.py, in RecBole's own environment), with MostPop
    and a Random row beside it: <OUTPUT_ROOT>/<MODEL|MostPop|Random>/<Category>."""
    from utils.methods import METHODS, method_dir

    category, root, seed = check_category(v["CATEGORY"]), v["OUTPUT_ROOT"], str(run_seed(v))
    models = [m.name for m in METHODS if "eval.sasrec" in m.made_by]  # the reference rows RecBole makes
    if v["MODEL"] not in models:  # before MostPop and Random run (eval.sasrec checks its other options)
        raise UserError(f"MODEL must be one of {', '.join(models)}, got {v['MODEL']!r}")
    out = str(method_dir(root, v["MODEL"], category))
    random_dir = str(method_dir(root, "Random", category))
    return [mostpop(v, category, str(method_dir(root, "MostPop", category)), ""),
            Step("main", ["-m", "eval.random_baseline", "--category", category, "--output_dir", random_dir, "--seed",
                          seed], f"Random on {category}", random_dir),
            Step("recbole", ["-m", "eval.sasrec", "--category", category, "--output_dir", out, "--model", v["MODEL"],
                             "--max_len", v["MAX_LEN"], "--epochs", v["EPOCHS"], "--patience", v["PATIENCE"],
                             "--seed", seed, "--recbole_args", v["RECBOLE_ARGS"], "--raw", v["RAW"]],
                 f"{v['MODEL']} (RecBole) on {category}", out)]


# script name -> (plan, its positional arguments, the run root its plan is recorded in)
SCRIPTS = {
    "SFT": (plan_sft, (), "OUTPUT_ROOT"),
    "SPRec": (plan_sprec, ("ITERATIONS",), "OUTPUT_ROOT"),
    "baselines": (plan_baselines, ("ITERATIONS",), "OUTPUT_ROOT"),
    "demo": (plan_demo, (), "OUTPUT_ROOT"),
    "seeds": (plan_seeds, (), "RUNS_ROOT"),
    "eval": (plan_eval, (), ""),
    "learning_curve": (plan_learning_curve, (), "OUTPUT_ROOT"),
    "scaling": (plan_scaling, (), "OUTPUT_ROOT"),
    "sasrec": (plan_sasrec, (), "OUTPUT_ROOT"),
}


def make_plan(name: str, environ, gpus: list[str], args: list[str], dry_run: bool = False) -> list[Step]:
    """The whole plan of shell/<name>.sh: the environment every stage needs, then its own steps."""
    from utils.recipe import refuse_retired_variables

    if name not in SCRIPTS:
        raise UserError(f"no plan for {name!r}: one of {', '.join(SCRIPTS)}")
    fn, positional, _ = SCRIPTS[name]
    if len(args) != len(positional):
        raise UserError(f"shell/{name}.sh takes {' '.join(positional) or 'no arguments'} after the GPU ids, got "
                        f"{' '.join(args) or 'none'}")
    refuse_retired_variables(environ)
    v = Variables(environ, name)
    extra = {"dry_run": dry_run} if name == "SPRec" else {}
    return kernel_steps(v) + [Step("launcher", launcher(v, gpus))] + this_machine(v, fn(v, gpus, *args, **extra))


# ------------------------------------------------------------------------------------------- its forms
def plan_name(name: str, environ) -> str:
    """The plan's file name in its run root: the script's, or for shell/SPRec.sh the method's, for shell/sasrec.sh
    the model's (several share a run root)."""
    by = {"SPRec": "METHOD", "sasrec": "MODEL"}.get(name)
    return environ.get(by, name) if by else name


def launcher_of(steps: list[Step]) -> list[str]:
    return next((s.argv for s in steps if s.kind == "launcher"), [])


def plan_record(name: str, environ, gpus: list[str], args: list[str], steps: list[Step]) -> dict:
    from utils.provenance import git_commit, portable

    return portable({"script": f"shell/{name}.sh", "args": args,
                     "launcher": {"gpu_ids": gpus, "accelerate": launcher_of(steps)},
                     "git_commit": git_commit(), "steps": [asdict(s) for s in steps]})


def describe(name: str, environ, gpus: list[str], args: list[str], steps: list[Step], recorded: str) -> str:
    """The plan as a person reads it (--dry-run): each step, its command line, what it makes, its seed and recipe
    section, and how it is launched."""
    accelerate = launcher_of(steps)
    launched_by = (f"accelerate launch {shlex.join(accelerate)}".replace("--main_process_port FREE", "(a free port)")
                   + (f" on GPU ids {' '.join(gpus)}" if gpus else "") if accelerate else "python (one CPU process)")
    lines = [f"plan of bash shell/{name}.sh {' '.join([*gpus, *args])}".rstrip()
             + (f"; recorded in {recorded} when it runs" if recorded else ""),
             f"  launch steps: {launched_by}"]
    env = [f"{s.argv[0]}={s.argv[1]}" if s.kind == "export" else f"-{s.argv[0]}"
           for s in steps if s.kind in ("export", "unset")]
    lines.append(f"  environment: {' '.join(env)}")
    number = 0
    for s in steps:
        if s.kind in ("export", "unset", "launcher"):
            continue
        number += 1
        if s.kind == "lock":
            lines.append(f"{number:>3}. lock {s.argv[0]}")
            continue
        if s.kind == "say":
            lines.append(f"{number:>3}. say: {s.title}")
            continue
        python = {"run": [], "recbole": [".venv-recbole/bin/python"]}.get(s.kind, ["python"])
        command = shlex.join([*python, *s.argv])
        runs_as = {"launch": "launch", "main": "one process, machine 0", "recbole": ".venv-recbole, machine 0",
                   "run": "its own plan below"}[s.kind]
        lines.append(f"{number:>3}. {s.title}  [{runs_as}]")
        lines.append(f"       {command}")
        facts = [f"-> {s.output}"] if s.output else []
        facts += [f"seed {s.seed}"] if s.seed is not None else []
        facts += [f"recipe section {s.section}"] if s.section else []
        if facts:
            lines.append(f"       {', '.join(facts)}")
    return "\n".join(lines)


def machine_form(steps: list[Step]) -> bytes:
    """The steps for shell/common.sh's run_plan: per step its kind, title, argument count and arguments, each ended
    by a NUL byte (an argument may hold spaces, quotes or newlines)."""
    fields = []
    for s in steps:
        fields += [s.kind, s.title, str(len(s.argv)), *map(str, s.argv)]
    return b"".join(f.encode() + b"\0" for f in fields)


def dry_run_form(name: str, environ, gpus: list[str], args: list[str], steps: list[Step], recorded: str) -> list[Step]:
    """What run_plan carries out under --dry-run: the plan printed, then each script it runs printing its own."""
    out = [Step("say", title=describe(name, environ, gpus, args, steps, recorded))]
    for s in steps:
        if s.kind == "run":
            out += [Step("say", title=f"\n---- {shlex.join(s.argv)}:"), Step("run", [*s.argv, "--dry-run"])]
    return out


def copy_model(src: str, dest: str) -> None:
    """A finished model directory without its evaluations (a run evaluates its own test users), moved into place in
    one rename; a destination already made from the same model (the same training run config) is kept."""
    import filecmp
    import shutil

    from utils.markers import finish_stage, is_done, start_stage

    if not is_done(src):
        raise UserError(f"{src} is not a finished model directory (no DONE marker)")
    if is_done(dest):
        if not filecmp.cmp(Path(src) / "run_config_sft.json", Path(dest) / "run_config_sft.json", shallow=False):
            raise UserError(f"{dest} holds another model than {src} (their run_config_sft.json differ): give another "
                            f"output root")
        return
    tmp = start_stage(dest)
    for f in sorted(Path(src).iterdir()):
        evaluation = f.name.startswith(("eval_", "test_result", "run_config_inference", "run_config_evaluation"))
        if f.is_file() and f.name != "DONE" and not evaluation:
            shutil.copy2(f, tmp / f.name)
    finish_stage(dest)
    print(f"copied the finished model {src} to {dest} (without its evaluations)")


def main(argv: list[str]) -> None:
    from utils.io import fail

    try:
        if argv[:1] == ["copy"]:
            if len(argv) != 3:
                raise UserError("usage: python -m utils.plan copy SRC DEST")
            return copy_model(argv[1], argv[2])
        import argparse

        ap = argparse.ArgumentParser(prog="python -m utils.plan", description=__doc__.split("\n")[0])
        ap.add_argument("script", choices=sorted(SCRIPTS))
        ap.add_argument("args", nargs="*", help="the script's arguments after its GPU ids")
        ap.add_argument("--gpus", default="", help="the GPU ids the script was given, space-separated")
        ap.add_argument("--out", help="write the machine form here (shell/common.sh); without it, print the plan")
        ap.add_argument("--dry_run", action="store_true", help="the machine form prints the plan and runs nothing")
        a = ap.parse_args(argv)
        gpus = a.gpus.split()
        steps = make_plan(a.script, os.environ, gpus, a.args, a.dry_run)
        root_variable = SCRIPTS[a.script][2]
        record = (str(Path(os.environ[root_variable]) / "plans" / f"{plan_name(a.script, os.environ)}.json")
                  if root_variable else "")
        if a.out is None or a.dry_run:
            form = dry_run_form(a.script, os.environ, gpus, a.args, steps, record)
            if a.out is None:
                print(form[0].title)
                return
            steps = form
        elif record and os.environ.get("MACHINE_RANK", "0") == "0":
            write_json(Path(record), plan_record(a.script, os.environ, gpus, a.args, steps))
        Path(a.out).write_bytes(machine_form(steps))
    except UserError as e:
        fail(str(e))


if __name__ == "__main__":
    main(sys.argv[1:])
