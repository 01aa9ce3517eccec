"""SASRec (or GRU4Rec) from RecBole 1.2.1 on the project's split, its top-K lists scored by the project's metrics:
the reference a conventional sequential recommender sets beside MostPop.

usage: python -m eval.sasrec --category ML100K --output_dir models/SASRec/ML100K [--model SASRec|GRU4Rec]
       [--max_len 50] [--epochs 200] [--patience 10] [--seed 42] [--raw GROUPLENS_DIR]
It runs in RecBole's own environment, .venv-recbole (`.venv-recbole/bin/python -m eval.sasrec ...`), which
bash shell/setup.sh envs/recbole makes; `bash shell/sasrec.sh` makes it and runs this.

1. Sequences. Each user's whole item sequence, up to and including the test item, is rebuilt from ML-100K by the
   project's own protocol (data.protocol.user_sequences on the copy in the recbole wheel, as `python -m data.prepare
   ml-100k` reads it, or on --raw, a GroupLens ml-100k folder), item ids = catalog rows (the merged titles), and
   checked against every record of the split (`check_against_split`: each test target is the user's last item,
   each valid target the one before, each train target an earlier one, each history the items just before it).
2. Training (eval/recbole_model.py, the one module that imports RecBole): atomic files with the sequence order as
   the timestamp, RecBole's leave-one-out split (checked to equal the sequences), so it trains on every prefix
   -> next item row before the valid item (what the LLM may see: its train windows are a sample of these), stops
   early on the valid item (--patience epochs without a better valid NDCG@10) and never sees the test item.
3. Scoring: our own forward pass for each test user, input = the sequence before the test item (its last --max_len
   items; --max_len 10 is what the LLM sees), scores over the whole catalog, top-K without removing items the user
   has seen (the paper's protocol, as for MostPop's lists). Ties go to the smaller catalog row.
4. Output: eval_top{K}.json and eval_users.jsonl (eval.mostpop.write_list_evals: utils.metrics, as MostPop), the
   seen-items-removed variant under seen_removed/ (an extra, never the headline), and run_config_<model>.json
   (library and versions, seed, epochs run, best epoch, history length, hyperparameters, train time, the curve).
   A finished directory is reused when its settings match (utils/stage.py); no weights are written.
"""
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from eval.mostpop import full_ranks, train_context, write_list_evals
from utils.cli import comma_list, run_cli
from utils.data import REPO_ROOT, category_dir, load_catalog, load_split, sample_records, split_path
from utils.io import UserError, check_output_dir, read_json
from utils.markers import finish_stage, is_done, start_stage
from utils.metrics import Ranking, evaluated_records, parse_ks
from utils.prompt import record_history, record_target
from utils.provenance import check_same_settings, write_run_config

MODELS = ("SASRec", "GRU4Rec")
SEEN_REMOVED = "seen_removed"  # the subdirectory of the seen-items-removed variant


# ---------------------------------------------------------------------------------------------- sequences
def source_sequences(catalog, raw: str = "") -> dict[str, list[int]]:
    """{user: catalog rows in time order} for every user of ML-100K, as the project's protocol orders them: from
    --raw (a GroupLens ml-100k folder) or the copy in the recbole wheel (data.prepare ml-100k's default)."""
    from data import movielens
    from data.protocol import user_sequences

    if raw:
        items, interactions = movielens.read_grouplens_100k(Path(raw))
    else:
        items, interactions = movielens.read_recbole(movielens.fetch_recbole_wheel(REPO_ROOT / ".cache" / "downloads"))
    out = {}
    for user, names in user_sequences(items, interactions):
        rows = [catalog.index(n) for n in names]
        if None in rows:
            raise UserError(f"item {names[rows.index(None)]!r} of user {user} is not in the catalog: the split was "
                            f"not made from this source (--raw)")
        out[str(user)] = rows
    return out


def check_against_split(sequences: dict, data_dir, catalog, history_len: int) -> None:
    """Every record of the split must be a window of its user's sequence: the test target the last item, the valid
    target the one before, a train target an earlier one (never the first), each history the up to `history_len`
    items just before its target, in order. The first mismatch stops with its file, record and user."""
    positions = {u: {r: i for i, r in enumerate(s)} for u, s in sequences.items()}
    for split in ("test", "valid", "train"):
        path = split_path(data_dir, split)
        for i, r in enumerate(load_split(data_dir, split)):
            user = str(r.get("user"))
            where = f"{path}: record {i} (user {user})"
            if user not in sequences:
                raise UserError(f"{where}: no such user in the source's sequences (--raw)")
            seq, pos = sequences[user], positions[user]
            target = catalog.index(record_target(r))
            p = pos.get(target, -1)
            n = len(seq)
            if p < 0 or not {"test": p == n - 1, "valid": p == n - 2, "train": 1 <= p <= n - 3}[split]:
                raise UserError(f"{where}: its target is at place {p} of the user's {n} items, which is not where a "
                                f"{split} target is (the split and the source's sequences differ)")
            history = [catalog.index(h) for h in record_history(r)]
            if history != seq[max(0, p - history_len):p]:
                raise UserError(f"{where}: its history is not the {history_len} items before its target in the "
                                f"user's sequence (the split and the source's sequences differ)")


def write_atomic_files(sequences: dict, catalog, directory, name: str) -> Path:
    """RecBole's atomic files <directory>/<name>/<name>.inter and .item: one interaction per row, the item its
    catalog row, the timestamp its place in the user's sequence (so RecBole's time order is exactly ours); every
    catalog row in the .item file with its (merged) title, so every item is scored."""
    d = Path(directory) / name
    d.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{user}\t{row}\t{t}" for user, seq in sequences.items() for t, row in enumerate(seq)]
    (d / f"{name}.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq", *(f"{row}\t{title}" for row, title in enumerate(catalog.names))]
    (d / f"{name}.item").write_text("\n".join(items) + "\n")
    return d


# ------------------------------------------------------------------------------------------------- export
@dataclass
class TestUsers:
    """The test records a model's scores are for, and what their eval files are written against
    (eval.mostpop.write_list_evals): the records, the evaluated ones (`keep`, a catalog target) and their targets'
    catalog rows, how many were skipped, the catalog, the training popularity, the K values, the category."""
    records: list
    keep: list
    targets: np.ndarray
    n_skipped: int
    catalog: object
    context: object
    ks: list
    category: str


def export(scores: np.ndarray, users: TestUsers, output_dir, model: str, seen=None) -> dict:
    """Eval files of (N, items) `scores` for the evaluated test records `users.keep`: each record's whole catalog
    ranked by score, ties to the smaller row. With `seen` (per record, the catalog rows of its input sequence) those
    items go to the bottom first: the seen-items-removed variant. Returns {K: metrics}."""
    keep, targets, catalog, ks = users.keep, users.targets, users.catalog, users.ks
    scores = np.array(scores, dtype=np.float64)
    if scores.shape != (len(keep), len(catalog)):
        raise ValueError(f"scores of shape {scores.shape}, expected {(len(keep), len(catalog))}")
    if seen is not None:
        for i, rows in enumerate(seen):
            scores[i, rows] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")
    ranking = Ranking(keep, targets, full_ranks(order, targets), order[:, :max(ks)], None, None, users.n_skipped)
    return write_list_evals(ranking, users.records, catalog, users.context, ks, output_dir, model, users.category)


# --------------------------------------------------------------------------------------------------- main
@dataclass
class Args:
    """The run's options (the command line's --name value; tests build it directly)."""
    output_dir: str
    category: str = "ML100K"
    data_dir: str = ""
    raw: str = ""  # a GroupLens ml-100k folder; default: the copy in the recbole wheel (data.prepare's default)
    model: str = "SASRec"
    max_len: int = 50  # items of history the model reads (RecBole's MAX_ITEM_LIST_LENGTH); 10 = what the LLM sees
    epochs: int = 200
    patience: int = 10  # epochs without a better valid NDCG@10 before stopping
    seed: int = 42
    learning_rate: float = 0.001
    train_batch_size: int = 2048
    recbole_args: str = ""  # more RecBole settings, "key=value,key=value" (e.g. hidden_dropout_prob=0.2)
    topk: str = "1,5"
    test_sample_size: int | None = None


def recbole_settings(text: str) -> dict:
    """--recbole_args "a=1,b=0.2" as {"a": 1, "b": 0.2} (values read as YAML scalars)."""
    import yaml

    out = {}
    for item in comma_list(text, "--recbole_args") if text else []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--recbole_args: {item!r} is not key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(a: Args) -> None:
    if a.model not in MODELS:
        raise UserError(f"--model must be one of {', '.join(MODELS)}, got {a.model!r}")
    for name in ("max_len", "epochs", "patience", "train_batch_size"):
        if not isinstance(getattr(a, name), int) or getattr(a, name) < 1:
            raise UserError(f"--{name} must be a positive integer, got {getattr(a, name)!r}")
    if isinstance(a.learning_rate, bool) or not isinstance(a.learning_rate, int | float) or a.learning_rate <= 0:
        raise UserError(f"--learning_rate must be a positive number, got {a.learning_rate!r}")
    ks = parse_ks(a.topk)
    hyper = {"learning_rate": float(a.learning_rate), "train_batch_size": a.train_batch_size,
             **recbole_settings(a.recbole_args)}
    out = check_output_dir(a.output_dir)
    stage, args = a.model.lower(), asdict(a)
    if is_done(out):
        check_same_settings(out, stage, args, f"the {a.model} run {out}")
        print(f"[{stage}] {out} is complete; skipping")
        return
    data = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    category = a.category or data.name
    catalog = load_catalog(data)
    ks = parse_ks(ks, len(catalog))
    try:
        from eval import recbole_model
    except ImportError as e:
        raise UserError(f"RecBole is not importable here ({e}): run this in its own environment, made by "
                        f"'bash shell/setup.sh envs/recbole': .venv-recbole/bin/python -m eval.sasrec ...") from None

    history_len = read_json(data / "stats.json").get("history_len", 10) if (data / "stats.json").is_file() else 10
    sequences = source_sequences(catalog, a.raw)
    check_against_split(sequences, data, catalog, history_len)
    print(f"[{stage}] {len(sequences)} users' sequences match every record of {data}'s split")
    test = sample_records(load_split(data, "test"), a.test_sample_size, a.seed)
    keep, targets, n_skipped = evaluated_records(test, catalog)
    inputs = [sequences[str(test[i]["user"])][:-1] for i in keep]  # the test item is each sequence's last

    with tempfile.TemporaryDirectory(prefix="sasrec-atomic-") as tmp:
        write_atomic_files(sequences, catalog, tmp, category)
        training = recbole_model.Training(a.max_len, a.epochs, a.patience, a.seed, hyper)
        model, dataset, facts = recbole_model.train(a.model, Path(tmp), category, sequences, training,
                                                    say=lambda m: print(f"[{stage}] {m}"))
    scores = recbole_model.score(model, dataset, inputs, len(catalog))
    partial = start_stage(out)
    users = TestUsers(test, keep, targets, n_skipped, catalog, train_context(data, catalog), ks, category)
    export(scores, users, partial, a.model)
    export(scores, users, partial / SEEN_REMOVED, f"{a.model} (seen items removed)", seen=inputs)
    write_run_config(partial, stage, args, {**facts, "history_len": a.max_len, "test_users": len(keep)})
    finish_stage(out)
    print(f"[{stage}] wrote {out} (best epoch {facts['best_epoch']} of {facts['epochs_run']} run, "
          f"{facts['train_seconds']:.0f} s of training)")


if __name__ == "__main__":
    run_cli(main)
