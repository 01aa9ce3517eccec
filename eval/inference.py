"""Predict for each test record with the model's prompt contract: greedy decoding, constrained beam search, or the
candidate protocol.

usage: python -m eval.inference --model_dir models/SFT/ML100K --category ML100K [--test_sample_size 200]
       [--evaluate] [--topk 1,5] [--embedding_model PATH] [--decoding greedy|constrained|candidates]
       [--candidates 20] [--candidate_seed 0]
       (or through accelerate: the records are sharded across processes and gathered in order)
--decoding greedy (the default, the official protocol): the shared generation routine writes
  <model_dir>/test_result.json, the test records each with a `predict` list holding the generated text.
--decoding constrained: catalog-constrained beam search (utils/constrained.py) with K beams, K the largest of --topk,
  writes <model_dir>/test_result_constrained.json: `predict` holds the K best catalog items' answers, best first, and
  `logprobs` their sequence log-probabilities. Its eval files are eval_top{K}_constrained.json, its run config
  run_config_inference_constrained.json: both modes' results sit side by side in a model directory.
--decoding candidates: the candidate protocol of S-DPO, LLaRA and DMPO (utils/candidates.py): each test record's
  target and `--candidates` - 1 items the user never interacted with, drawn with `--candidate_seed` per user (the same
  candidates for every model), ranked by the model's log-probability of each one's answer (the prompt prefilled once,
  the candidates' completions scored in one batched pass over its KV cache). Writes test_result_candidates.json:
  `candidates` (the items in the order drawn), `predict` (their answers, best first) and `logprobs` (their scores);
  its eval files are eval_top{K}_candidates.json (use --topk 1,5,10,20: K = 20 is NDCG over the whole list).
The contract (utils/prompt.py) is the one the model was trained with, read from its run config: the project's, or
the authors' (`contract: official`: their evaluation prompt, 32 new tokens, their title extraction, and their
grounding model, paraphrase-MiniLM-L3-v2, unless --embedding_model names another).
With --evaluate, eval/evaluate.py then runs in the same process (one Python start-up instead of two). Both are stages
of utils/stage.py whose products are files in the model directory: a rerun reuses the predictions made with the same
settings and stops with the differing values when the settings changed (e.g. another TEST_SAMPLE_SIZE or SEED, or the
beam count K); it reuses the eval files made with the same grounding model and K and makes them again otherwise
(cheap, from the same predictions): run_config_evaluation.json (run_config_evaluation_constrained.json) records them.
"""
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from utils.cli import run_cli
from utils.data import category_dir, load_catalog, load_split, sample_records
from utils.io import UserError, write_json
from utils.prompt import Contract, model_contract, record_target, render_completion
from utils.stage import Stage


@dataclass
class Args:
    """The stage's options (the command line's --name value; tests build it directly)."""
    model_dir: str
    category: str = "ML100K"
    data_dir: str = ""
    test_sample_size: int | None = None
    seed: int = 0
    token_budget: int = 32768
    trust_remote_code: bool = False
    force: bool = False
    split: str = "test"
    evaluate: bool = False
    topk: str = "1,5"  # from the shell "1,5" arrives as the tuple (1, 5): utils.metrics.parse_ks takes both
    embedding_model: str = ""
    decoding: str = "greedy"
    report_to: str = "none"
    candidates: int = 20  # --decoding candidates: the target and candidates - 1 items the user never interacted with
    candidate_seed: int = 0  # seeds each user's draw: the same candidates for every model evaluated with it


@dataclass
class Checked:
    """What check() resolved: the model's contract and grounding model, the records, where the predictions go, their
    stage, and whether predictions made with these settings are already there."""
    model_dir: Path
    contract: Contract
    embedding_model: str
    records: list
    data_dir: Path
    out_path: Path
    stage: Stage
    reuse: bool


def check(a: Args) -> Checked:
    """Every check on the user's input before torch is imported; a rerun with other settings stops here with the
    differences (--force predicts again)."""
    from utils.metrics import check_decoding, parse_ks, result_name
    from utils.modeling import check_model_dir
    from utils.tracking import check_tracker

    args = asdict(a)
    check_model_dir(a.model_dir, "--model_dir")
    check_tracker(a.report_to)
    check_decoding(a.decoding)
    if a.evaluate or a.decoding != "greedy":
        parse_ks(a.topk)  # a bad --topk fails now, not after generation
    model_dir = Path(a.model_dir)
    contract = model_contract(model_dir)
    args.update(contract.settings())  # nothing for the project's contract: older run configs still compare equal
    name = "inference" if a.decoding == "greedy" else f"inference_{a.decoding}"
    if a.decoding == "constrained":  # the beam count changes the predictions (a wider beam can find a better top-1)
        args["beams"] = parse_ks(a.topk)[-1]
    if a.decoding == "candidates":
        if not isinstance(a.candidates, int) or isinstance(a.candidates, bool) or a.candidates < 2:
            raise UserError(f"--candidates must be an integer >= 2 (the target and at least one other), got "
                            f"{a.candidates!r}")
        if parse_ks(a.topk)[-1] > a.candidates:
            raise UserError(f"--topk {parse_ks(a.topk)[-1]} is more than the {a.candidates} candidates")
    else:  # the candidate options only change candidate predictions: older run configs still compare equal
        del args["candidates"], args["candidate_seed"]
    out_path = model_dir / result_name(a.split, a.decoding)
    data_dir = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    records = sample_records(load_split(data_dir, a.split), a.test_sample_size, a.seed)
    stage = Stage(name, model_dir, args, what="the predictions", tag="inference", products=[out_path])
    reuse = not a.force and stage.skip("delete it (or pass --force) to predict again",
                                       f"{out_path} exists with {len(records)} predictions; skipping generation "
                                       f"(--force to redo)")
    embedding_model = a.embedding_model or contract.embedding_model  # the official contract grounds with the authors'
    return Checked(model_dir, contract, embedding_model, records, data_dir, out_path, stage, reuse)


def main(a: Args) -> None:
    from utils.device import launched_as_main

    checked = check(a)
    model_dir, contract, records, out_path = checked.model_dir, checked.contract, checked.records, checked.out_path
    if checked.reuse:  # without accelerate's state: a finished evaluation skips without torch
        if a.evaluate and launched_as_main():
            evaluate_results(a, checked)
        return
    from utils.device import process_state, release_memory
    from utils.modeling import load_model, load_tokenizer

    state = process_state()
    checked.stage.begin()
    catalog = load_catalog(checked.data_dir)
    tokenizer = load_tokenizer(model_dir, trust_remote_code=a.trust_remote_code, padding_side="left")
    model = load_model(model_dir, merge=True, trust_remote_code=a.trust_remote_code, device=state.device)
    prompts = [contract.generation_prompt(r) for r in records]
    if state.is_main_process:
        print(f"[inference] {model_dir}: {len(prompts)} {a.split} prompts on {state.num_processes} process(es), "
              f"{state.device}, {a.decoding} decoding. First prompt:\n{prompts[0]}", flush=True)
    t0 = time.time()
    if a.decoding == "constrained":
        from utils.constrained import beam_search_sharded
        from utils.generation import Batching

        beams = beam_search_sharded(model, tokenizer, prompts, catalog.names, k=checked.stage.args["beams"],
                                    batching=Batching(a.token_budget, desc=f"{a.split} inference (constrained)"))
        predicted = [{"predict": [render_completion(catalog.names[i]) for i, _ in b],
                      "logprobs": [round(s, 6) for _, s in b]} for b in beams]
    elif a.decoding == "candidates":
        predicted = predict_candidates(model, tokenizer, records, prompts, catalog, checked.data_dir, a)
    else:
        from utils.generation import Batching, Sampling, generate_sharded

        texts = generate_sharded(model, tokenizer, prompts,
                                 max_new_tokens=contract.max_new_tokens(tokenizer, catalog.names, "evaluation"),
                                 one_line=contract.one_line, sampling=Sampling(seed=a.seed),
                                 batching=Batching(a.token_budget, desc=f"{a.split} inference"))
        predicted = [{"predict": [contract.answer(t) for t in answers]} for answers in texts]
    if state.is_main_process:
        write_json(out_path, [{**r, **p} for r, p in zip(records, predicted)])
    checked.stage.finish({"records": len(records), "world_size": state.num_processes,
                          "generation_seconds": round(time.time() - t0, 2)},
                         f"wrote {out_path} ({time.time() - t0:.1f} s generation)")
    del model
    release_memory()
    if a.evaluate and state.is_main_process:
        evaluate_results(a, checked)
    state.wait_for_everyone()


def predict_candidates(model, tokenizer, records, prompts, catalog, data_dir, a: Args) -> list[dict]:
    """Each record's drawn candidates, their answers ranked by the model's log-probability and those scores."""
    from utils.candidates import BATCHING, candidate_scores_sharded, draw_candidates
    from utils.data import user_items

    by_user = user_items(data_dir)
    # a record whose target is not a catalog item is not evaluated (docs/metrics.md): it gets no candidates
    scored = [i for i, r in enumerate(records) if catalog.index(record_target(r)) is not None]
    drawn = {i: draw_candidates(records[i], catalog, by_user, a.candidate_seed, a.candidates) for i in scored}
    scores = dict(zip(scored, candidate_scores_sharded(
        model, tokenizer, [prompts[i] for i in scored], [[catalog.names[j] for j in drawn[i]] for i in scored],
        batching=replace(BATCHING, token_budget=a.token_budget, desc=f"{a.split} inference (candidates)"))))
    out = []
    for i in range(len(records)):
        rows, s = drawn.get(i, []), scores.get(i, [])
        ranked = sorted(range(len(rows)), key=lambda j: -s[j])  # stable: ties keep the drawn (shuffled) order
        out.append({"candidates": [catalog.names[j] for j in rows],
                    "predict": [render_completion(catalog.names[rows[j]]) for j in ranked],
                    "logprobs": [round(s[j], 6) for j in ranked]})
    return out


def evaluation_stage(a: Args, checked: Checked) -> Stage:
    """The eval files of the decoding mode and its per-user file, as a stage: made with these K, this contract and,
    greedy, this grounding model by name and content (constrained decoding grounds nothing)."""
    from utils.grounding import embedding_model_id
    from utils.metrics import eval_name, parse_ks, users_name

    ks = parse_ks(a.topk)
    greedy = a.decoding == "greedy"
    args = {"ks": list(ks), "decoding": a.decoding, "contract": checked.contract.name,
            "grounding_model": embedding_model_id(checked.embedding_model) if greedy else None}
    products = [checked.model_dir / eval_name(k, a.decoding) for k in ks] + [checked.model_dir / users_name(a.decoding)]
    return Stage("evaluation" if greedy else f"evaluation_{a.decoding}", checked.model_dir, args,
                 what="the eval files", tag="eval", products=products, redo_on_change=True)


def evaluate_results(a: Args, checked: Checked) -> None:
    """eval/evaluate.py on the predictions, in this process (the main one), unless made with these settings."""
    from eval import evaluate

    stage = evaluation_stage(a, checked)
    if stage.skip(message=f"{checked.model_dir} already evaluated with these settings; skipping"):
        return
    stage.begin()
    evaluate.main(evaluate.Args(str(checked.out_path), category=a.category, data_dir=str(checked.data_dir),
                                topk=a.topk, embedding_model=checked.embedding_model, decoding=a.decoding,
                                report_to=a.report_to, contract=checked.contract.name, candidates=a.candidates))
    stage.finish(message=f"{checked.model_dir} evaluated")


if __name__ == "__main__":
    run_cli(main)
