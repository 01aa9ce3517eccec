"""The golden run: what a short seeded run of the small model must give, digit for digit, on the locked versions.

tests/test_pipeline.py runs SFT and two SPRec iterations at toy sizes through the scripts (with the scripts' default
KERNELS=portable: 2 threads, one instruction set) and compares what the run produced with tests/golden/toy_run.json:
every eval file's metrics, each training stage's loss and steps, each self-play summary, and a hash of each per-user
file and of each trained model's weights (the most sensitive digits: one changed bit anywhere in training shows). A
dependency or a code change that moves a digit fails CI with the file and the field that moved. A deliberate change
regenerates the golden file in a commit that says why:

    GOLDEN_WRITE=1 python -m pytest tests/test_pipeline.py -k golden
"""
import hashlib
import json
from pathlib import Path

GOLDEN = Path(__file__).with_name("golden") / "toy_run.json"
# Eval-file fields that are facts of the result (not where it was written).
EVAL_FIELDS = ("topk", "n", "n_skipped", "HR", "NDCG", "diversity", "DivRatio", "ORRatio", "MGU", "DGU",
               "ValidRatio", "embedding_model", "decoding", "test_records")
TRAIN_FIELDS = ("train_loss", "steps", "warmup_steps_effective", "train_records", "pairs")


def facts(run_root) -> dict:
    """{file relative to the run root: {field: value}} for every result file of a run."""
    root = Path(run_root)
    out = {}
    for path in sorted(root.rglob("*")):
        rel, name = path.relative_to(root).as_posix(), path.name
        if not path.is_file() or ".partial" in rel:
            continue
        if name.startswith("eval_top") and name.endswith(".json"):
            row = json.loads(path.read_text())
            out[rel] = {k: row.get(k) for k in EVAL_FIELDS}
        elif name in ("run_config_sft.json", "run_config_dpo.json"):
            args = json.loads(path.read_text())["args"]
            out[rel] = {k: args[k] for k in TRAIN_FIELDS if k in args}
        elif name == "summary.json":  # the self-play counts (not its timings)
            out[rel] = {k: v for k, v in json.loads(path.read_text()).items() if not k.endswith("seconds")}
        elif (name.startswith("eval_users") and name.endswith(".jsonl")) or name.endswith(".safetensors"):
            out[rel] = {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}  # predictions; trained weights
    return out


def differences(expected: dict, actual: dict) -> list[str]:
    """One line per file or field that differs: `file: field expected -> actual`."""
    lines = []
    for rel in sorted(set(expected) | set(actual)):
        if rel not in actual:
            lines.append(f"{rel}: missing from the run")
        elif rel not in expected:
            lines.append(f"{rel}: not in the golden file")
        else:
            a, b = expected[rel], actual[rel]
            lines += [f"{rel}: {k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
                      if a.get(k) != b.get(k)]
    return lines
