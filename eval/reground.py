"""Evaluate committed predictions again with another grounding model: no model, no training, no generation.

usage: python -m eval.reground --run_root results/demo --out_root results/grounding/demo \
           --embedding_model paraphrase-MiniLM-L3-v2 [--category ML100K] [--topk 1,5]
Every model directory of the run root keeps its generated text per test user (eval_users.jsonl). Its test records are
rebuilt from the category's test split by user (checked against the eval file's fingerprint of the evaluated
records), the texts become predictions again, and eval/evaluate.py grounds and scores them with `--embedding_model`
into the same layout under `--out_root`: eval files and per-user files, which eval.report and eval.stats read as
they read the originals. MostPop and the other reference rows (Random, SASRec, GRU4Rec) rank the catalog and ground
nothing: their files are copied. A greedy evaluation is what is regrounded (constrained beams name catalog items and
need no grounding).
"""
import shutil
import tempfile
from pathlib import Path

from utils.cli import run_cli
from utils.data import category_dir, load_split, records_fingerprint
from utils.io import UserError, read_json, read_jsonl, write_json
from utils.metrics import eval_name, parse_ks, users_name


def rebuilt_records(users_file: Path, eval_file: Path, test: list) -> tuple[list, list]:
    """(the evaluated test records with their predictions, in evaluation order; their texts) of a model directory."""
    by_user = {str(r.get("user")): r for r in test}
    rows = [row for _, row in read_jsonl(users_file)]
    if not rows or any("text" not in row for row in rows):
        raise UserError(f"{users_file}: no generated texts (made before per-user files kept them?): cannot reground")
    missing = [row["user"] for row in rows if str(row["user"]) not in by_user]
    if missing:
        raise UserError(f"{users_file}: user {missing[0]} is not in the test split: another dataset?")
    records = [by_user[str(row["user"])] for row in rows]
    expected = read_json(eval_file).get("test_records")
    if records_fingerprint(records) != expected:
        raise UserError(f"{users_file}: the rebuilt records are not the evaluated ones (fingerprint "
                        f"{records_fingerprint(records)} != {expected} in {eval_file.name})")
    return [{**r, "predict": [row["text"]]} for r, row in zip(records, rows)], [row["text"] for row in rows]


def run(run_root: str, out_root: str, embedding_model: str, category: str = "ML100K", data_dir: str = "",
        topk="1,5"):
    from eval import evaluate
    from eval.collect import model_dirs
    from utils.methods import BY_NAME
    from utils.prompt import model_contract  # titles are read as the model's contract reads them

    root, out_root = Path(run_root), Path(out_root)
    if not root.is_dir():
        raise UserError(f"run root {root} does not exist")
    if out_root.resolve() == root.resolve():
        raise UserError("--out_root must differ from --run_root (the original eval files stay as they are)")
    ks = parse_ks(topk)
    data = Path(data_dir) if data_dir else category_dir(category)
    test = load_split(data, "test")
    dirs = model_dirs(root, category)
    if not dirs:
        raise UserError(f"no model directory of {category} under {root}")
    for key, d in dirs.items():
        out = out_root / d.relative_to(root)
        users_file, eval_file = d / users_name(), d / eval_name(ks[-1])
        if not (users_file.is_file() and eval_file.is_file()):
            print(f"[reground] {d}: no greedy evaluation; skipped")
            continue
        out.mkdir(parents=True, exist_ok=True)
        if key.method == "MostPop" or BY_NAME[key.method].made_by:  # ranked lists (MostPop, Random, SASRec...)
            for f in [users_file, *(d / eval_name(k) for k in ks)]:
                shutil.copy(f, out / f.name)
            continue
        records, _ = rebuilt_records(users_file, eval_file, test)
        model = read_json(eval_file).get("model") or str(d)
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "test_result.json"
            write_json(result, records)
            evaluate.main(evaluate.Args(str(result), category=category, data_dir=str(data), topk=topk,
                                        output_dir=str(out), embedding_model=embedding_model, model=model,
                                        contract=model_contract(d).name))


if __name__ == "__main__":
    run_cli(run)
