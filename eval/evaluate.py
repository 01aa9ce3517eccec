"""Evaluate generated predictions: ground titles to catalog items, compute every metric at each K.

usage: python -m eval.evaluate --result_json models/SFT/ML100K/test_result.json --category ML100K [--topk 1,5]
       [--data_dir DIR] [--output_dir DIR] [--embedding_model PATH] [--decoding greedy|constrained|candidates]
       [--contract project|official|bare-dpo-prompt|official-schedule]
Writes eval_top{K}.json (overwritten, never appended) beside the result file or in --output_dir, and
eval_users.jsonl: one line per evaluated test user (its top-K items, their popularity deciles, the target's rank;
utils.metrics.user_rows), from which eval/stats.py recomputes everything without the dataset or the embedding model,
and eval_context.json: each item's training popularity (how often it is a train target: the deciles, ARP, the head
and the tail) and each user's number of train records, from the category's train split. The official
test_result.json shape (records with a `predict` list) is what eval/inference.py writes, so both are accepted.
How the top-K is formed depends on how the predictions were decoded (--decoding, as eval/inference.py was run):
  greedy       one generated text per record; its parsed title is grounded to the nearest catalog item, and the
               top-K is that item and its K-1 nearest neighbours in embedding space (the official definition).
  constrained  the `predict` list holds K catalog items' answers, best first (test_result_constrained.json); they
               are the top-K as they are: no grounding, no neighbours, ValidRatio 1. The eval files are named
               eval_top{K}_constrained.json and eval_users_constrained.jsonl, so both modes' files can sit side
               by side in a model directory.
  candidates   the candidate protocol (eval/inference.py --decoding candidates): `candidates` holds the target and 19
               items the user never interacted with, `predict` all of them ranked by the model's log-probability of
               each one's answer, best first; HR@K and NDCG@K over the 20 (K = 20: the whole list). Files
               eval_top{K}_candidates.json and eval_users_candidates.jsonl (with each user's candidates and scores).
The title of a greedy generation is read by the prompt contract (utils/prompt.py; --contract, by default the one the
result file's model directory was trained with): the project's `parse_title`, or the authors' extraction (an empty
text is "NAN"; else from the first quote to the next quote or the end; else the first line). An empty
--embedding_model is the contract's grounding model: all-MiniLM-L6-v2, or the authors' paraphrase-MiniLM-L3-v2 under
the official contract.
Generations that are all empty still evaluate (docs/metrics.md grounds the empty title like any other: ValidRatio 0,
every record on the same items) with one warning line: a collapsed model is a result to report, not a crash.
"""
import sys
from dataclasses import dataclass
from pathlib import Path

from utils.cli import run_cli
from utils.data import category_dir, load_catalog, read_records
from utils.io import UserError, check_output_dir
from utils.metrics import METRIC_KEYS, check_decoding, parse_ks, prediction_text, write_eval_files
from utils.prompt import contract_named, model_contract, parse_title, record_target


def candidate_rows(record, path, index, catalog, n_candidates: int) -> tuple[list[int], dict]:
    """(the catalog rows of a candidate-protocol record's `predict` list, best first; its per-user fields: the
    candidates in the order drawn and each one's log-probability)."""
    cands, pred, scores = record.get("candidates"), record.get("predict"), record.get("logprobs")
    if not (isinstance(cands, list) and isinstance(pred, list) and isinstance(scores, list)
            and all(isinstance(x, str) for x in cands + pred) and len(scores) == len(pred)
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in scores)):
        raise UserError(f"{path}: record {index} has no 'candidates', 'predict' and 'logprobs' lists of the candidate "
                        f"protocol (eval/inference.py --decoding candidates writes them)")
    target = catalog.index(record_target(record))
    if target is None:  # not evaluated (its target is not a catalog item): no candidates were drawn
        return [], {}
    drawn = [catalog.index(c) for c in cands]
    rows = [catalog.index(parse_title(p)) for p in pred]
    problem = ("a candidate that is not a catalog item" if None in drawn + rows
               else "a candidate twice" if len(set(drawn)) < len(drawn)
               else "a ranking that is not its candidates" if sorted(rows) != sorted(drawn)
               else f"{len(drawn)} candidates, not {n_candidates}" if len(drawn) != n_candidates
               else "scores that are not best first" if any(a < b for a, b in zip(scores, scores[1:]))
               else "candidates without its target" if target not in drawn else None)
    if problem:
        raise UserError(f"{path}: record {index} has {problem}; evaluate the test_result_candidates.json that "
                        f"eval/inference.py --decoding candidates writes")
    score = dict(zip(rows, scores))
    return rows, {"candidates": drawn, "logprobs": [score[r] for r in drawn]}


def ranked_rows(record, path, index, catalog, k: int) -> list[int]:
    """The catalog rows of a constrained-decoding record's `predict` list (its first k answers, best first)."""
    pred = record.get("predict")
    if not (isinstance(pred, list) and all(isinstance(p, str) for p in pred)):
        raise UserError(f"{path}: record {index} has no 'predict' list of ranked answers")
    rows = [catalog.index(parse_title(p)) for p in pred[:k]]
    if len(rows) < k or None in rows or len(set(rows)) < len(rows):
        what = (f"{len(rows)} answers for top-{k}" if len(rows) < k else "a title that is not a catalog item"
                if None in rows else "the same item twice")
        raise UserError(f"{path}: record {index} has {what}; constrained evaluation takes the {k} distinct catalog "
                        f"items that eval/inference.py --decoding constrained writes (rerun it, with --topk {k})")
    return rows


@dataclass
class Args:
    """The evaluation's options (the command line's --name value; tests and eval/inference.py build it directly)."""
    result_json: str
    category: str = "ML100K"
    data_dir: str = ""
    topk: str = "1,5"  # from the shell "1,5" arrives as the tuple (1, 5): utils.metrics.parse_ks takes both
    output_dir: str = ""
    embedding_model: str = ""
    model: str = ""
    decoding: str = "greedy"
    report_to: str = "none"
    contract: str = ""
    candidates: int = 20  # the candidate protocol: the target and candidates - 1 items, as eval/inference.py drew


def main(a: Args) -> None:
    from utils.data import load_split
    from utils.metrics import TrainContext, evaluate_predictions, evaluate_rankings
    from utils.tracking import check_tracker, log_eval_metrics

    parse_ks(a.topk)  # a bad --topk, --decoding or --report_to fails before any work
    check_decoding(a.decoding)
    check_tracker(a.report_to)
    result_path = Path(a.result_json)
    contract = contract_named(a.contract, "--contract") if a.contract else model_contract(result_path.parent)
    out = Path(a.output_dir) if a.output_dir else result_path.parent
    check_output_dir(out)
    data_dir = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    catalog = load_catalog(data_dir)
    ks = parse_ks(a.topk, len(catalog))
    context = TrainContext.of(load_split(data_dir, "train"), catalog)
    records = read_records(result_path)
    if a.decoding == "constrained":
        rankings = [ranked_rows(r, result_path, i, catalog, ks[-1]) for i, r in enumerate(records)]
        results, ranking = evaluate_rankings(records, rankings, catalog, ks, context.popularity)
    elif a.decoding == "candidates":
        if ks[-1] > a.candidates:
            raise UserError(f"--topk {ks[-1]} is more than the {a.candidates} candidates each user's list holds")
        rows = [candidate_rows(r, result_path, i, catalog, a.candidates) for i, r in enumerate(records)]
        results, ranking = evaluate_rankings(records, [r for r, _ in rows], catalog, ks, context.popularity,
                                             "candidates", [x for _, x in rows])
    else:
        predictions = [prediction_text(r, result_path, i) for i, r in enumerate(records)]
        if not any(p.strip() for p in predictions):  # still evaluated, the empty title grounded (docs/metrics.md)
            print(f"warning: every prediction in {result_path} is empty (the model generated no title); the metrics "
                  f"are still written: ValidRatio 0 and every record grounds to the same items", file=sys.stderr)
        results, ranking = evaluate_predictions(records, predictions, catalog, ks,
                                                a.embedding_model or contract.embedding_model or None,
                                                contract.eval_title, context.popularity)
    paths = write_eval_files(results, ranking, context, out, a.model or str(result_path.parent),
                             a.category or data_dir.name, records, a.decoding)
    for k, path in zip(results, paths):
        m = results[k]
        print(f"[evaluate] {path}: " + ", ".join(f"{k}={m[k]:.4f}" for k in METRIC_KEYS if m.get(k) is not None))
    print(f"[evaluate] {paths[-1]}: {len(ranking.keep)} users")
    log_eval_metrics(a.report_to, out, results, a.decoding)  # with REPORT_TO=wandb/tensorboard, beside the losses


if __name__ == "__main__":
    run_cli(main)
