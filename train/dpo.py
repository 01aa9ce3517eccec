"""The DPO step of an SPRec iteration: trl's DPOTrainer on self-play pairs.

usage: python -m train.dpo --model_dir models/SPRec/ML100K/it0/SFT --data_dir models/SPRec/ML100K/it0/data \
           --output_dir models/SPRec/ML100K/it0/DPO [--recipe recipes/small.yaml] [--recipe_args "dpo.beta=0.2"] \
           [--seed 42 --iteration 0]
The policy starts from `model_dir` and the reference is that same starting model, held once: for a LoRA adapter,
trl copies it into a frozen "ref" adapter on the same base; for the fully trained small model, trl loads one
reference copy from the same directory. The trl settings are the recipe's dpo section (utils/recipe.py; by default
the model's recipe in recipes/), any DPOConfig field, with --recipe_args overrides.
`dpo.precompute_ref_log_probs: true` computes the reference's log-probabilities of every pair in one batched pass
before training (the reference is fixed during the step) instead of inside each training and evaluation step.
`dpo.loss_type` takes trl's loss types (a list, e.g. [sigmoid, sft]), or alone one of the multi-negative losses
`sdpo` (S-DPO) and `dmpo` (DMPO), which read k rejected items per pair (`rejected` plus the list `extra_rejected`;
utils/custom_losses.py). Pairs with k > 1 need one of those.
The step trains with its own seed, derived from the run seed (--seed) and --iteration (utils/seeds.py).
"""
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.cli import comma_list, run_cli
from utils.device import peak_memory_mb
from utils.io import UserError, read_jsonl
from utils.prompt import Contract
from utils.seeds import stage_seed
from utils.stage import Stage
from utils.tracking import tracking_args
from utils.trl_config import (
    describe_plan,
    drop_checkpoints,
    preference_dataset,
    score_labelled_positions_only,
    trainer_kwargs,
)

MULTI_NEGATIVE = ("sdpo", "dmpo")  # utils.custom_losses.MULTI_NEGATIVE_LOSSES (named here so the checks need no torch)


def read_pairs(path: Path) -> list[dict]:
    """The self-play pairs of one split, each checked: string prompt, chosen and rejected, and the same number of
    extra rejected items in every pair."""
    pairs = []
    for lineno, p in read_jsonl(path, "run python -m train.self_play first"):
        if not (isinstance(p, dict) and all(isinstance(p.get(k), str) for k in ("prompt", "chosen", "rejected"))):
            raise UserError(f"{path}: line {lineno} needs an object with string 'prompt', 'chosen' and 'rejected'")
        extra = p.get("extra_rejected", [])
        if not (isinstance(extra, list) and all(isinstance(x, str) for x in extra)):
            raise UserError(f"{path}: line {lineno}: 'extra_rejected' must be a list of strings")
        if pairs and len(extra) != len(pairs[0].get("extra_rejected", [])):
            raise UserError(f"{path}: line {lineno} has {1 + len(extra)} rejected items, line 1 has "
                            f"{1 + len(pairs[0].get('extra_rejected', []))}: every pair needs the same number")
        pairs.append(p)
    if not pairs:
        raise UserError(f"{path}: no pairs (rerun train/self_play.py)")
    return pairs


def negatives_per_pair(pairs) -> int:
    return 1 + len(pairs[0].get("extra_rejected", []))


def read_split_pairs(data_dir, loss_types: list[str], precompute: bool) -> tuple[list, list, int, str]:
    """(train pairs, valid pairs, rejected items per pair, the multi-negative loss or ""), after checking that the
    pairs and the loss fit each other: k rejected items need sdpo or dmpo, which take no other loss term and compute
    the reference inside each step."""
    train_pairs = read_pairs(Path(data_dir) / "dpo_train.jsonl")
    valid_pairs = read_pairs(Path(data_dir) / "dpo_valid.jsonl")
    k = negatives_per_pair(train_pairs)
    multi = [t for t in loss_types if t in MULTI_NEGATIVE]
    if multi and len(loss_types) > 1:
        raise UserError(f"dpo.loss_type {multi[0]} is a multi-negative loss and cannot be combined with others")
    if k != negatives_per_pair(valid_pairs):
        raise UserError(f"{data_dir}: train pairs have {k} rejected items, valid pairs "
                        f"{negatives_per_pair(valid_pairs)}: rerun train/self_play.py")
    if multi and precompute:
        raise UserError(f"dpo.precompute_ref_log_probs works with trl's own losses, not dpo.loss_type {multi[0]} "
                        "(k rejected items per pair)")
    if k > 1 and not multi:
        raise UserError(f"{data_dir}: the pairs have {k} rejected items each; dpo.loss_type {','.join(loss_types)} "
                        f"uses one: use dpo.loss_type=sdpo or dmpo")
    return train_pairs, valid_pairs, k, multi[0] if multi else ""


@dataclass
class Args:
    """The step's options (the command line's --name value; tests build it directly)."""
    model_dir: str
    data_dir: str
    output_dir: str
    recipe: str = ""
    recipe_args: str = ""
    seed: int = 42  # the run seed; the step's own is derived from it and the iteration
    iteration: int = 0
    report_to: str = "none"
    activation_checkpointing: bool = False
    load_in_4bit: bool = False
    trust_remote_code: bool = False


@dataclass
class Checked:
    """What check() resolved: the stage, the recipe and its contract, the pairs and the loss that fits them."""
    stage: Stage
    model_dir: str  # the start model (and the reference), absolute
    small_model: bool
    recipe: dict
    recipe_note: str  # the recipe's name and why it was chosen, for the start line
    contract: Contract
    loss_types: list[str]
    train_pairs: list[dict]
    valid_pairs: list[dict]
    negatives: int  # rejected items per pair
    multi: str  # the multi-negative loss (sdpo, dmpo) or ""
    tracking: dict


def check(a: Args) -> Checked | None:
    """Every check on the user's input, before the heavy imports and before anything is written; None when the step
    is finished with these settings (other settings stop here with the differences)."""
    from utils.io import check_output_dir
    from utils.markers import is_done
    from utils.modeling import check_model_dir, is_adapter, is_small_model
    from utils.prompt import check_model_contract, contract_of
    from utils.recipe import for_stage, why

    args = asdict(a)
    args["stage_seed"] = stage_seed(a.seed, "dpo", a.iteration)
    # The recipe follows the model: the start model's kind, or on a rerun of a finished step its own model's.
    done = is_done(a.output_dir)
    model_dir = a.model_dir if done else check_model_dir(a.model_dir, "--model_dir")
    small_model = is_small_model(a.output_dir if done else model_dir)
    args["recipe"], recipe = for_stage("dpo", a.recipe, a.recipe_args, small_model)
    args["resolved_recipe"] = recipe
    fields = recipe["dpo"]
    contract = contract_of(recipe)
    loss_types = comma_list(fields["loss_type"], "dpo.loss_type")  # e.g. [sigmoid, sft] or "sigmoid,sft"
    stage = Stage("dpo", a.output_dir, args, what="the DPO step")
    if stage.skip():
        return None
    check_model_contract(model_dir, contract, "--model_dir")
    if a.load_in_4bit:
        from utils.modeling import quantization_config

        quantization_config(full=not is_adapter(model_dir))  # QLoRA needs LoRA, a GPU and bitsandbytes
    check_output_dir(stage.out)
    tracking = tracking_args(a.report_to, stage.out)  # a missing tracker package: one line, now
    train_pairs, valid_pairs, k, multi = read_split_pairs(a.data_dir, loss_types,
                                                          fields.get("precompute_ref_log_probs", False))
    note = f"recipe {args['recipe']} ({why(a.recipe, small_model)})"
    return Checked(stage, model_dir, small_model, recipe, note, contract, loss_types, train_pairs, valid_pairs, k,
                   multi, tracking)


def main(a: Args) -> None:
    checked = check(a)
    if checked is None:
        return
    stage, model_dir, recipe, contract = checked.stage, checked.model_dir, checked.recipe, checked.contract
    multi = checked.multi
    from trl import DPOConfig, DPOTrainer

    from utils.modeling import is_adapter, load_model, load_tokenizer, save_trained

    tokenizer = load_tokenizer(model_dir, trust_remote_code=a.trust_remote_code, padding_side="right")
    prefix = contract.dpo_prompt_prefix(tokenizer)  # the official contract's BOS, where trl would not add it
    train_ds, valid_ds = (preference_dataset(pairs, multi_negative=bool(multi), prompt_prefix=prefix)
                          for pairs in (checked.train_pairs, checked.valid_pairs))

    # trl's config before the model: a field trl rejects is one line before anything loads
    plan, kwargs = trainer_kwargs("dpo", recipe["dpo"], len(train_ds), len(valid_ds), stage, checked.tracking,
                                  a.activation_checkpointing, contract)
    # trl's config knows only its own loss names; a multi-negative loss replaces trl's loss altogether
    config = DPOConfig(**{**kwargs, "loss_type": ["sigmoid"] if multi else checked.loss_types})
    ex = train_ds[0]
    stage.say(f"start {model_dir} ({'LoRA adapter' if is_adapter(model_dir) else 'full model'}; reference = the "
              f"same start), {len(train_ds)} pairs with {checked.negatives} rejected item(s) each, loss "
              f"{checked.loss_types}, beta {config.beta}, lr {config.learning_rate}, {describe_plan(plan)}; "
              f"{checked.recipe_note}. First pair:\n"
              f"{ex['prompt']}chosen: {ex['chosen']!r} rejected: {ex['rejected']!r}")

    model = load_model(model_dir, trainable=True, trust_remote_code=a.trust_remote_code,
                       load_in_4bit=a.load_in_4bit)
    stage.begin()
    kwargs = dict(model=model, ref_model=None, args=config, train_dataset=train_ds, eval_dataset=valid_ds,
                  processing_class=tokenizer)
    if not checked.small_model:  # a pretrained base: the head on the answers alone, on the CPU too (trl_config.py)
        score_labelled_positions_only()
    setup_start = time.perf_counter()  # trl tokenizes (and precomputing, scores the reference) while it sets up
    with contract.dpo_tokenizing():
        if multi:  # trl's trainer with k rejected sequences per pair and the S-DPO or DMPO loss
            from utils.custom_losses import MultiNegativeDPOTrainer

            trainer = MultiNegativeDPOTrainer(loss=multi, **kwargs)
        else:
            trainer = DPOTrainer(**kwargs)
    setup_seconds = time.perf_counter() - setup_start
    result = trainer.train()
    save_trained(trainer, tokenizer, stage.partial, model_dir)  # every process: gathering is a collective
    best = drop_checkpoints(trainer, stage)
    stage.finish({"start_model": model_dir, "pairs": len(train_ds), "negatives_per_pair": checked.negatives,
                  **best, "sequences_per_pair": checked.negatives + 1, "world_size": stage.state.num_processes,
                  **plan, "peak_memory_mb": round(peak_memory_mb(), 1),
                  "train_loss": result.training_loss, "steps": result.global_step,
                  "warmup_steps_effective": config.warmup_steps,
                  "train_seconds": round(result.metrics["train_runtime"], 2),
                  "setup_seconds": round(setup_seconds, 2)},
                 f"wrote {stage.out} (train loss {result.training_loss:.4f}, {result.global_step} steps)")


if __name__ == "__main__":
    run_cli(main)
