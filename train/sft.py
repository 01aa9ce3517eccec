"""Supervised fine-tuning: prompt -> quoted next-item title, EOS learned after it (the project's contract; the recipe's
`contract: official` trains the authors' whole text instead, utils/prompt.py).

usage: python -m train.sft --category ML100K --output_dir models/SFT/ML100K [--base_model PATH_OR_HUB_ID]
       [--resume_from MODEL_DIR] [--train_file records.jsonl] [--section sft|sft_step] [--seed 42 --iteration 0]
       [--recipe recipes/pretrained-gpu.yaml] [--recipe_args "sft.learning_rate=1e-3 lora.r=8"]
       (or through accelerate launch for data parallelism)
The trl settings are a recipe's section (utils/recipe.py): `sft` from the base model, `sft_step` for an iteration's
SFT step; by default the model's recipe in recipes/. A pretrained base (a local path, a hub id, or `smollm2`,
the embedded SmolLM2-135M-Instruct) gets the recipe's LoRA adapter (`lora`: r 16, alpha 32, dropout 0.05, every
linear layer but the head) and loss on the completion only; the embedded small model is trained fully with loss on
the whole text (it must learn the titles from nothing; measured: 0% vs 99.6% valid titles). `--resume_from` continues
an existing adapter or model.
The stage trains with its own seed, derived from the run seed (--seed), the section and --iteration (utils/seeds.py).
`--genre_weighting True` is genre re-weighted SFT (IFairLRS-style): each record's loss is multiplied by a weight that
favours targets of genres the training targets under-represent relative to the histories (weights from the
category's whole train split, utils.trl_config.genre_weights; the loss through utils.custom_losses.WeightedSFTTrainer).
"""
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.cli import run_cli
from utils.data import category_dir, load_split, read_records, sample_records
from utils.device import peak_memory_mb
from utils.io import UserError, check_output_dir
from utils.markers import is_done
from utils.prompt import Contract
from utils.seeds import stage_seed
from utils.stage import Stage
from utils.tracking import tracking_args
from utils.trl_config import (
    check_lora_targets,
    describe_plan,
    drop_checkpoints,
    lora_config,
    score_labelled_positions_only,
    sft_dataset,
    trainer_kwargs,
)


def weighting_facts(catalog, genre_weight, train_weights) -> dict:
    """What genre re-weighting did, for the run config: each genre's weight and the spread of the record weights."""
    return {"genre_weights": {g: round(float(w), 4) for g, w in zip(catalog.genres, genre_weight)},
            "record_weight_mean": round(sum(train_weights) / len(train_weights), 4),
            "record_weight_min": round(min(train_weights), 4), "record_weight_max": round(max(train_weights), 4)}


def training_records(section: str, recipe: dict, data: Path, train_file: str, seed: int, genre_weighting: bool):
    """({"train": records, "valid": records}, their genre weights or None, the genre weighting's facts or None). The
    SFT step trains on the iteration's fresh positives: as many records as pairs, and as many valid records as
    theirs."""
    fields = recipe[section]
    if section == "sft_step":
        sample_size, valid_sample_size = (recipe["self_play"][k] for k in ("train_sample_size", "valid_sample_size"))
    else:
        sample_size, valid_sample_size = fields["sample_size"], fields["valid_sample_size"]
    train_records = read_records(train_file) if train_file else load_split(data, "train")
    train_records = sample_records(train_records, sample_size, seed)
    valid_records = sample_records(load_split(data, "valid"), valid_sample_size, seed)
    weights = facts = None
    if genre_weighting:  # the genre distributions come from the whole train split, whatever subset is trained on
        from utils.data import load_catalog
        from utils.trl_config import genre_weights, record_weights

        catalog = load_catalog(data)
        genre_weight = genre_weights(load_split(data, "train"), catalog)
        weights = {split: record_weights(records, catalog, genre_weight)
                   for split, records in (("train", train_records), ("valid", valid_records))}
        facts = weighting_facts(catalog, genre_weight, weights["train"])
    return {"train": train_records, "valid": valid_records}, weights, facts


def start_model(start: str, full: bool, small_model: bool, continued: bool, lora: dict | None, seed: int,
                trust_remote_code: bool, load_in_4bit: bool):
    """(model, peft's LoraConfig or None) to train from `start`: a new adapter on a pretrained base when `lora` is
    given; the embedded small model from the run seed's random weights unless it is `continued`."""
    from utils.modeling import load_model

    peft_config = None
    if lora is not None:
        peft_config = lora_config(lora)
        check_lora_targets(start, peft_config, trust_remote_code)
    model = load_model(start, trainable=True, full=full, trust_remote_code=trust_remote_code,
                       load_in_4bit=load_in_4bit)
    if small_model and not continued:
        from utils.tiny_model import initial_weights

        model = initial_weights(model, seed)
    return model, peft_config


@dataclass
class Args:
    """The stage's options (the command line's --name value; tests build it directly)."""
    output_dir: str
    category: str = "ML100K"
    base_model: str = ""
    resume_from: str = ""
    data_dir: str = ""
    train_file: str = ""
    section: str = "sft"
    recipe: str = ""
    recipe_args: str = ""
    full_finetune: str = "auto"
    seed: int = 42  # the run seed; the stage's own is derived from it, the section and the iteration
    iteration: int = 0  # an iteration's SFT step, or a stage's place in a chain of SFT stages (the learning curve)
    report_to: str = "none"
    activation_checkpointing: bool = False
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    genre_weighting: bool = False


@dataclass
class Checked:
    """What check() resolved: the stage, the model it starts from and how it trains it, the recipe and its contract."""
    stage: Stage
    start: str
    small_model: bool
    full: bool
    new_adapter: bool
    recipe: dict
    recipe_note: str  # the recipe's name, section and why it was chosen, for the start line
    contract: Contract
    data: Path
    tracking: dict
    seed: int  # the stage's own seed (utils/seeds.py)


def check(a: Args) -> Checked | None:
    """Every check on the user's input, before the heavy imports and before anything is written; None when the stage
    is finished with these settings (other settings stop here with the differences)."""
    from utils.modeling import check_model_dir, is_adapter, is_small_model, resolve_base_model
    from utils.prompt import check_model_contract, contract_of
    from utils.recipe import for_stage, why

    args = asdict(a)
    if a.section not in ("sft", "sft_step"):
        raise UserError(f"--section {a.section}: train.sft reads the recipe section sft (from the base model) or "
                        f"sft_step (an iteration's SFT step)")
    args["stage_seed"] = stage_seed(a.seed, a.section, a.iteration)
    data = Path(a.data_dir) if a.data_dir else category_dir(a.category)
    check_output_dir(a.output_dir)
    # The recipe follows the model: the start model's kind, or on a rerun of a finished stage its own model's.
    done = is_done(a.output_dir)
    if done:
        start = None
    elif a.resume_from:
        start = check_model_dir(a.resume_from, "--resume_from")
    else:  # the small model (no base_model) is the one built for the recipe's contract (utils/tiny_model.py)
        small_contract = None if a.base_model else contract_of(for_stage(a.section, a.recipe, a.recipe_args, True)[1])
        start = resolve_base_model(a.base_model, a.category, small_contract)
    small_model = is_small_model(a.output_dir if done else start)
    full = small_model if a.full_finetune == "auto" else str(a.full_finetune).lower() in ("1", "true", "yes")
    new_adapter = not full and a.section == "sft" and not (start and is_adapter(start))
    args["recipe"], recipe = for_stage(a.section, a.recipe, a.recipe_args, small_model, lora=new_adapter)
    args["resolved_recipe"] = recipe
    contract = contract_of(recipe)
    stage = Stage("sft", a.output_dir, args, what="the SFT stage")
    if stage.skip():
        return None
    if a.resume_from:
        check_model_contract(start, contract, "--resume_from")
    tracking = tracking_args(a.report_to, stage.out)  # a missing tracker package: one line, now
    if a.load_in_4bit:
        from utils.modeling import quantization_config

        quantization_config(full)  # QLoRA needs LoRA, a GPU and bitsandbytes: say so before anything is loaded
    note = f"recipe {args['recipe']} ({a.section}; {why(a.recipe, small_model)}; contract {contract.name})"
    return Checked(stage, start, small_model, full, new_adapter, recipe, note, contract, data, tracking,
                   args["stage_seed"])


def main(a: Args) -> None:
    checked = check(a)
    if checked is None:
        return
    stage, start, recipe, contract = checked.stage, checked.start, checked.recipe, checked.contract
    splits, weights, weighting = training_records(a.section, recipe, checked.data, a.train_file, checked.seed,
                                                  a.genre_weighting)
    from trl import SFTConfig, SFTTrainer

    from utils.modeling import is_adapter, load_tokenizer, save_trained

    tokenizer = load_tokenizer(start, trust_remote_code=a.trust_remote_code, padding_side="right")
    train_ds, valid_ds = (sft_dataset(splits[split], contract, tokenizer, weights and weights[split])
                          for split in ("train", "valid"))
    # trl's config before the model: a field trl rejects is one line before anything loads
    plan, kwargs = trainer_kwargs(a.section, recipe[a.section], len(train_ds), len(valid_ds), stage, checked.tracking,
                                  a.activation_checkpointing, contract)
    completion_only = contract.completion_only_loss(checked.small_model)
    config = SFTConfig(**kwargs, completion_only_loss=completion_only)
    how = "adapter, continued" if is_adapter(start) else "full" if checked.full else "LoRA"
    stage.say(f"start {start} ({how}; loss on {'the completion' if completion_only else 'the whole text'}), "
              f"{len(train_ds)} train / {len(valid_ds)} valid records, {describe_plan(plan)}; "
              f"{checked.recipe_note}. First example:\n{contract.sft_text(splits['train'][0])}")
    if weighting:
        stage.say(f"genre re-weighted: record weights {weighting['record_weight_min']} to "
                  f"{weighting['record_weight_max']}, mean {weighting['record_weight_mean']}")
    model, peft_config = start_model(start, checked.full, checked.small_model, bool(a.resume_from),
                                     recipe["lora"] if checked.new_adapter else None, checked.seed, a.trust_remote_code,
                                     a.load_in_4bit)
    stage.begin()
    if not checked.small_model:  # a pretrained base: the head on the completion alone, on the CPU too (trl_config.py)
        score_labelled_positions_only()
    trainer_class = SFTTrainer
    if weighting:  # trl's trainer with each record's loss multiplied by its weight
        from utils.custom_losses import WeightedSFTTrainer as trainer_class
    trainer = trainer_class(model=model, args=config, train_dataset=train_ds, eval_dataset=valid_ds,
                            processing_class=tokenizer, peft_config=peft_config)
    result = trainer.train()
    save_trained(trainer, tokenizer, stage.partial, start)  # every process: gathering sharded weights is a collective
    best = drop_checkpoints(trainer, stage)
    stage.finish({"start_model": start, "full_finetune": checked.full,
                  "loss": "completion only" if completion_only else "whole text", **best,
                  "train_records": len(train_ds), "world_size": stage.state.num_processes, **plan,
                  **(weighting or {}),
                  "peak_memory_mb": round(peak_memory_mb(), 1),
                  "train_loss": result.training_loss, "steps": result.global_step,
                  "warmup_steps_effective": config.warmup_steps,
                  "train_seconds": round(result.metrics["train_runtime"], 2)},
                 f"wrote {stage.out} (train loss {result.training_loss:.4f}, {result.global_step} steps)")


if __name__ == "__main__":
    run_cli(main)
