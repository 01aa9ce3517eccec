"""Self-play data for one SPRec iteration (the official data_generate.py, with its defects fixed).

usage: python -m train.self_play --model_dir models/SFT/ML100K --output_dir models/SPRec/ML100K/it0/data \
           --category ML100K --iteration 0 [--seed 42] [--recipe_args "self_play.train_sample_size=64"]
Draws the iteration's prompts from train (the stage's seed derived from the run seed and the iteration,
utils/seeds.py): the N + V the recipe's self_play section asks for (utils/recipe.py) and the contract's spares for
answers that make no pair, 10% more or, under the official contract, 500 more (`--spare_ratio r`: r x (N + V) spares
instead). It generates the current model's prediction for each and parses its title. The rejected side is that title
as generated (`--rejected raw`, the authors' recipe) or the catalog item evaluation grounds it to (`--rejected
grounded`: exact name first, else the nearest by the grounding embedding); either way a prediction that grounds to the
target, or is empty, makes no pair.
The SFT step's positives are the first N drawn records. Offline negatives instead (nothing is generated), never
an item the user interacted with (the history and target of every record of the user, valid and test included;
`--exclude record`: only the record's own history and target):
  --negatives random    random catalog items (the DPO baseline); `--num_negatives k` puts k distinct ones in each
                        row, as `rejected` plus `extra_rejected` (the other k-1), for S-DPO and DMPO
  --negatives semantic  the item least similar to the history (RosePO-style): the lowest mean cosine similarity of
                        its sentence embedding to the history items' (the grounding embedder's cached item embeddings)
`--decoding constrained` draws the self-play rejected items by catalog-constrained beam search (utils/constrained.py,
`--beams` beams, 5 by default) instead of greedy generation: always real catalog items, so nothing needs grounding;
the best beam is the rejected item (the `--num_negatives` best with several).
Writes dpo_train.jsonl, dpo_valid.jsonl, sft_train.jsonl (the iteration's fresh positives) and summary.json.
"""
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.cli import run_cli
from utils.data import category_dir, interacted, load_catalog, load_split, user_items
from utils.io import UserError, check_output_dir, write_json, write_jsonl
from utils.prompt import PROJECT, Contract, record_history, record_target, render_completion
from utils.seeds import stage_seed
from utils.stage import Stage


def random_negatives(excluded: set, catalog, rng: random.Random, k: int = 1) -> list[str]:
    """k distinct random catalog items outside `excluded`."""
    free = len(catalog) - sum(catalog.index(n) is not None for n in excluded)
    if free < k:
        raise UserError(f"the catalog has {free} item(s) outside a user's interactions, fewer than the {k} "
                        f"negative(s) asked for")
    out = []
    while len(out) < k:
        name = catalog.names[rng.randrange(len(catalog))]
        if name not in excluded and name not in out:
            out.append(name)
    return out


def semantic_negative(history_rows, excluded_rows, unit_items) -> int | None:
    """The catalog row least similar to a history (RosePO-style): the lowest mean cosine similarity of its embedding
    to the history items' embeddings (rows of `unit_items`, L2-normalised), outside `excluded_rows`; ties go to the
    smaller row (item id). None when no history item is in the catalog."""
    import numpy as np

    if not len(history_rows):
        return None
    scores = unit_items @ unit_items[list(history_rows)].mean(0)  # mean cosine similarity = dot with the mean
    scores[list(excluded_rows)] = np.inf
    return int(np.argmin(scores))


def offline_pairs(a: "Args", drawn, prompts, catalog, data_dir, rng, counts, contract=PROJECT):
    """One row per drawn record with the stage's offline negatives (`a.negatives` random: `a.num_negatives` of them;
    semantic: one), never an item the user (`a.exclude` record: the record) interacted with."""
    negatives, k, embedding_model = a.negatives, a.num_negatives, a.embedding_model
    by_user = user_items(data_dir) if a.exclude == "user" else {}  # "record": only the record's own history and target
    if negatives == "semantic":
        import numpy as np

        from utils.grounding import default_embedding_model, item_embeddings

        emb = item_embeddings(catalog, embedding_model or default_embedding_model()).astype(np.float64)
        unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    pairs = []
    for j, r in enumerate(drawn):
        excluded = interacted(r, by_user)
        if negatives == "random":
            names = random_negatives(excluded, catalog, rng, k)
        else:
            rows = [i for i in (catalog.index(h) for h in record_history(r)) if i is not None]
            row = semantic_negative(rows, [i for i in map(catalog.index, excluded) if i is not None], unit)
            if row is None:
                counts["dropped_no_history"] = counts.get("dropped_no_history", 0) + 1
                continue
            names = [catalog.names[row]]
        pair = {"prompt": prompts[j], "chosen": contract.chosen(r),
                "rejected": contract.rejected(names[0]), "rejected_raw": names[0], "record": j}
        if k > 1:
            pair["extra_rejected"] = [contract.rejected(n) for n in names[1:]]
        pairs.append(pair)
    return pairs


def ground_to_catalog(titles, catalog, embedding_model: str) -> list[str]:
    """Each title mapped to a catalog name: itself when it is one, else the item evaluation grounds it to (its
    nearest; an empty title too). Each distinct non-catalog title is grounded once."""
    from utils.grounding import ground_titles

    todo = [t for t in dict.fromkeys(titles) if catalog.index(t) is None]
    if not todo:
        return list(titles)
    top = ground_titles(todo, catalog, 1, embedding_model or None)[:, 0]
    grounded = {t: catalog.names[i] for t, i in zip(todo, top)}
    return [grounded.get(t, t) for t in titles]


def self_play_pairs(drawn, prompts, outputs, catalog, rejected: str, embedding_model: str, per_record: int,
                    contract=PROJECT):
    """Pairs from the model's own predictions (`per_record` per prompt). The contract reads each prediction's title
    (utils/prompt.py); a prediction without one (the project: empty or unparseable, since grounding it would give the
    item nearest the empty string, the same arbitrary item every time; the official contract: no quoted span) makes
    no pair. The project grounds each title to the catalog item evaluation would give it, which decides whether the
    prediction is the target (then no pair; the authors' code compared nothing). The rejected side is the model's own
    title text (`raw`, as the authors' code) or that grounded item (`grounded`). Dropped predictions are counted."""
    titles = [contract.rejected_title(t) for texts in outputs for t in texts]  # None: no title
    grounds = contract.drops_predicted_target or rejected == "grounded"
    items = ground_to_catalog([t or "" for t in titles], catalog, embedding_model) if grounds else titles
    pairs, counts = [], {"drawn": len(drawn), "generated": len(titles), "parsed": 0, "valid": 0,
                         "dropped_equal": 0, "dropped_empty": 0}
    for j, r in enumerate(drawn):
        target = record_target(r)
        span = slice(j * per_record, (j + 1) * per_record)
        for title, item in zip(titles[span], items[span]):
            counts["parsed"] += title is not None
            counts["valid"] += title is not None and catalog.index(title) is not None
            if title is None:
                counts["dropped_empty"] += 1
            elif contract.drops_predicted_target and item == target:
                counts["dropped_equal"] += 1
            else:
                pairs.append({"prompt": prompts[j], "chosen": contract.chosen(r),
                              "rejected": contract.rejected(item if rejected == "grounded" else title),
                              "rejected_raw": title, "record": j})
    return pairs, counts


def check_options(negatives, rejected, exclude, num_negatives, decoding, temperature, beams) -> None:
    """The options' combinations, before anything is read or loaded."""
    if negatives not in ("self", "random", "semantic") or rejected not in ("grounded", "raw"):
        raise UserError("--negatives must be 'self', 'random' or 'semantic'; --rejected 'grounded' or 'raw'")
    if exclude not in ("user", "record"):
        raise UserError(f"--exclude must be 'user' (every item of the user) or 'record' (the record's own), got "
                        f"{exclude!r}")
    if num_negatives < 1 or (num_negatives > 1 and negatives == "semantic"):
        raise UserError(f"--num_negatives must be 1 or more (1 with --negatives semantic), got {num_negatives}")
    if decoding not in ("greedy", "constrained"):
        raise UserError(f"--decoding must be 'greedy' or 'constrained', got {decoding!r}")
    if decoding == "constrained" and (temperature > 0 or not 1 <= num_negatives <= beams):
        raise UserError("--decoding constrained is a deterministic beam search: it needs --temperature 0 and "
                        "1 <= --num_negatives <= --beams")
    if decoding == "greedy" and num_negatives > 1 and negatives == "self" and temperature <= 0:
        raise UserError("--num_negatives > 1 with --negatives self needs sampling: set --temperature > 0")


def draw(data: Path, seed: int, count: int):
    """(catalog, the iteration's records, its random stream seeded `seed`, the stage's): `count` train records whose
    target is in the catalog (the pairs wanted and the contract's spares, Contract.prompts_to_draw), or all of them
    when there are fewer."""
    catalog = load_catalog(data)
    train = [r for r in load_split(data, "train") if catalog.index(record_target(r)) is not None]
    rng = random.Random(seed)
    drawn = rng.sample(train, min(len(train), count))
    return catalog, drawn, rng


def model_predictions(a: "Args", checked: "Checked", prompts, catalog, state) -> list[list[str]]:
    """The current model's `a.num_negatives` answers per prompt, sharded over the processes: greedy (or sampled,
    seeded with the stage's seed) generation as the contract generates (its length limit, where it stops, what it
    keeps), or the best catalog items by constrained beam search."""
    from utils.modeling import load_model, load_tokenizer

    num_negatives, contract = a.num_negatives, checked.contract
    tokenizer = load_tokenizer(checked.model_dir, trust_remote_code=a.trust_remote_code, padding_side="left")
    model = load_model(checked.model_dir, merge=True, trust_remote_code=a.trust_remote_code, device=state.device)
    if a.decoding == "constrained":
        from utils.constrained import beam_search_sharded
        from utils.generation import Batching

        if len(catalog) < num_negatives:
            raise UserError(f"--num_negatives {num_negatives} is more than the catalog's {len(catalog)} items")
        ranked = beam_search_sharded(model, tokenizer, prompts, catalog.names, k=a.beams,
                                     batching=Batching(a.token_budget, desc="self-play constrained beams"))
        return [[render_completion(catalog.names[i]) for i, _ in b[:num_negatives]] for b in ranked]
    from utils.generation import Batching, Sampling, generate_sharded

    texts = generate_sharded(model, tokenizer, prompts,
                             max_new_tokens=contract.max_new_tokens(tokenizer, catalog.names, "sampling"),
                             one_line=contract.one_line,
                             sampling=Sampling(num_negatives, a.temperature, checked.seed),
                             batching=Batching(a.token_budget, desc="self-play sampling"))
    return [[contract.answer(t) for t in answers] for answers in texts]


@dataclass
class Args:
    """The stage's options (the command line's --name value; tests build it directly)."""
    output_dir: str
    model_dir: str = ""
    category: str = "ML100K"
    data_dir: str = ""
    iteration: int = 0
    seed: int = 42
    recipe: str = ""
    recipe_args: str = ""
    spare_ratio: float | None = None  # None: the contract's spare (Contract.prompts_to_draw)
    negatives: str = "self"
    rejected: str = "raw"
    temperature: float = 0.0
    num_negatives: int = 1
    token_budget: int = 32768
    embedding_model: str = ""
    trust_remote_code: bool = False
    decoding: str = "greedy"
    beams: int = 5
    exclude: str = "user"


@dataclass
class Checked:
    """What check() resolved: the stage, the model that samples (absolute with --negatives self; offline negatives
    use none), the recipe's sizes and its contract."""
    stage: Stage
    model_dir: str
    train_sample_size: int
    valid_sample_size: int
    prompts: int  # drawn: the pairs wanted and the spares
    recipe_note: str  # the recipe's name and why it was chosen, for the start line
    contract: Contract
    seed: int  # the stage's own seed (utils/seeds.py): the draw, the offline negatives, the sampling


def check(a: Args) -> Checked | None:
    """The options' combinations, the recipe (which follows the model, utils/recipe.py) and the model, before anything
    is read or loaded; None when the data is finished with these settings (other settings stop with the differences).
    The arguments that change the result make the run config: options that change nothing in this mode stay out."""
    check_options(a.negatives, a.rejected, a.exclude, a.num_negatives, a.decoding, a.temperature, a.beams)
    args = asdict(a)
    args["stage_seed"] = stage_seed(a.seed, "self_play", a.iteration)
    if a.decoding != "constrained":  # the beam count changes nothing else
        del args["beams"]
    if a.negatives == "self":  # which items offline negatives avoid: nothing to do with self-play's own
        del args["exclude"]
    if a.negatives == "semantic" or a.rejected == "grounded":  # the grounding model picks the items: name and content
        from utils.grounding import embedding_model_id

        args["grounding_model"] = embedding_model_id(a.embedding_model)
    from utils.modeling import check_model_dir, is_small_model
    from utils.prompt import check_model_contract, contract_of
    from utils.recipe import for_stage, why

    small_model = bool(a.model_dir) and is_small_model(a.model_dir)
    args["recipe"], recipe = for_stage("self_play", a.recipe, a.recipe_args, small_model)
    args["resolved_recipe"] = recipe
    contract = contract_of(recipe)
    # The spare prompts are the contract's unless --spare_ratio replaces them; a run config records what was drawn by
    # (the project's contracts: spare_ratio 0.1 alone; the official contract: spare_ratio 0 and spare_prompts 500).
    args["spare_ratio"] = contract.spare_ratio if a.spare_ratio is None else a.spare_ratio
    if a.spare_ratio is None and contract.spare_prompts:
        args["spare_prompts"] = contract.spare_prompts
    stage = Stage("self_play", a.output_dir, args, what="the self-play data", tag="self-play")
    if stage.skip():
        return None
    model_dir = a.model_dir
    if a.negatives == "self":  # the model samples the negatives: check it before drawing anything
        if not model_dir:
            raise UserError("--model_dir is required with --negatives self (the model whose predictions are sampled)")
        model_dir = check_model_dir(model_dir, "--model_dir")
        check_model_contract(model_dir, contract, "--model_dir")
    check_output_dir(stage.out)
    n_train, n_valid = (recipe["self_play"][k] for k in ("train_sample_size", "valid_sample_size"))
    return Checked(stage, model_dir, n_train, n_valid, contract.prompts_to_draw(n_train + n_valid, a.spare_ratio),
                   f"recipe {args['recipe']}, {why(a.recipe, small_model)}", contract, args["stage_seed"])


def main(a: Args) -> None:
    checked = check(a)
    if checked is None:
        return
    stage, contract, n_train, n_valid = (checked.stage, checked.contract, checked.train_sample_size,
                                         checked.valid_sample_size)

    # The iteration's records, then its pairs: offline negatives, or the current model's own predictions.
    data = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    catalog, drawn, rng = draw(data, checked.seed, checked.prompts)
    prompts = [contract.dpo_prompt(r) for r in drawn]  # the pairs' prompts; the model samples from its own prompt
    how = f"{a.negatives} negatives" + (f", {a.decoding} decoding" if a.negatives == "self" else "")
    stage.say(f"iteration {a.iteration}: {len(drawn)} prompts drawn ({how}; {checked.recipe_note}). "
              f"First prompt:\n{prompts[0]}")
    t0 = time.time()
    if a.negatives != "self":  # nothing is generated: the main process alone makes them
        if not stage.is_main:
            return stage.stand_by()
        counts = {"drawn": len(drawn), "negatives_per_pair": a.num_negatives}
        pairs = offline_pairs(a, drawn, prompts, catalog, data, rng, counts, contract)
        per_record = 1
    else:
        outputs = model_predictions(a, checked, [contract.generation_prompt(r) for r in drawn], catalog, stage.state)
        generation_seconds = round(time.time() - t0, 1)  # model load included; the rest of `seconds` is grounding
        if not stage.is_main:
            return stage.stand_by()
        pairs, counts = self_play_pairs(drawn, prompts, outputs, catalog, a.rejected, a.embedding_model,
                                        a.num_negatives, contract)
        counts["generation_seconds"] = generation_seconds
        per_record = a.num_negatives  # k samples (or beams) of a prompt are k separate pairs

    # The first pairs fill train, the next valid; the spare draws make up for dropped ones. The SFT step's positives
    # are the first N drawn records, whatever the model predicted for them (as the authors' code).
    dpo_train = pairs[:n_train * per_record]
    dpo_valid = pairs[len(dpo_train):len(dpo_train) + n_valid * per_record]
    counts.update(kept_train=len(dpo_train), kept_valid=len(dpo_valid), seconds=round(time.time() - t0, 1))
    if len(dpo_train) < n_train * per_record:
        print(f"[self-play] warning: only {len(dpo_train)} train pairs for {n_train} wanted "
              f"(draw more spare prompts: --spare_ratio)", file=sys.stderr)
    if not dpo_train:
        raise UserError(f"iteration {a.iteration}: no usable pair (every prediction named no title, or the target)")
    tmp = stage.begin()
    write_jsonl(tmp / "dpo_train.jsonl", dpo_train)
    write_jsonl(tmp / "dpo_valid.jsonl", dpo_valid or dpo_train[:1])
    write_jsonl(tmp / "sft_train.jsonl", drawn[:n_train])
    write_json(tmp / "summary.json", counts)
    stage.finish({"world_size": stage.state.num_processes}, f"wrote {stage.out}: {counts}")


if __name__ == "__main__":
    run_cli(main)
