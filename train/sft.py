"""Supervised fine-tuning: prompt -> quoted next-item title, EOS learned after it.

usage: python -m train.sft --category ML100K --output_dir models/SFT/ML100K [--base_model PATH_OR_HUB_ID]
       [--resume_from MODEL_DIR] [--train_file records.jsonl] [--section sft|sft_step]
       [--recipe shell/recipes/pretrained-gpu.yaml] [--recipe_args "sft.learning_rate=1e-3 lora.r=8"]
       (or through accelerate launch for data parallelism)
The trl settings are a recipe's section (utils/recipe.py): `sft` from the base model, `sft_step` for an iteration's
SFT step; by default the model's recipe in shell/recipes/. A pretrained base (a local path, a hub id, or `smollm2`,
the embedded SmolLM2-135M-Instruct) gets the recipe's LoRA adapter (`lora`: r 16, alpha 32, dropout 0.05, every
linear layer but the head) and loss on the completion only; the embedded small model is trained fully with loss on
the whole text (it must learn the titles from nothing; measured: 0% vs 99.6% valid titles). `--resume_from` continues
an existing adapter or model.
`--genre_weighting True` is genre re-weighted SFT (IFairLRS-style): each record's loss is multiplied by a weight that
favours targets of genres the training targets under-represent relative to the histories (weights from the
category's whole train split, utils.training.genre_weights; the loss through utils.trainers.WeightedSFTTrainer).
"""
from pathlib import Path

from utils.data import category_dir, load_split, read_records, sample_records
from utils.io import UserError, check_output_dir, is_done, run_cli
from utils.stage import Stage
from utils.tracking import tracking_args
from utils.training import (
    check_lora_targets,
    describe_plan,
    lora_config,
    peak_memory_mb,
    prompt_completion_dataset,
    trainer_kwargs,
)


def weighting_facts(catalog, genre_weight, train_weights) -> dict:
    """What genre re-weighting did, for the run config: each genre's weight and the spread of the record weights."""
    return {"genre_weights": {g: round(float(w), 4) for g, w in zip(catalog.genres, genre_weight)},
            "record_weight_mean": round(sum(train_weights) / len(train_weights), 4),
            "record_weight_min": round(min(train_weights), 4), "record_weight_max": round(max(train_weights), 4)}


def run(output_dir: str, category: str = "ML100K", base_model: str = "", resume_from: str = "",
        data_dir: str = "", train_file: str = "", section: str = "sft", recipe: str = "", recipe_args: str = "",
        full_finetune: str = "auto", seed: int = 42, report_to: str = "none", activation_checkpointing: bool = False,
        load_in_4bit: bool = False, trust_remote_code: bool = False, genre_weighting: bool = False):
    args = dict(locals())
    from utils.modeling import check_model_dir, is_adapter, resolve_base_model
    from utils.recipe import for_stage
    from utils.tiny_model import is_small_model

    # Every check on the user's input comes before the heavy imports and before anything is written.
    if section not in ("sft", "sft_step"):
        raise UserError(f"--section {section}: train.sft reads the recipe section sft (from the base model) or "
                        f"sft_step (an iteration's SFT step)")
    data = Path(data_dir) if data_dir else category_dir(category)
    check_output_dir(output_dir)
    # The recipe follows the model: the start model's kind, or on a rerun of a finished stage its own model's.
    done = is_done(output_dir)
    start = None if done else (check_model_dir(resume_from, "--resume_from") if resume_from
                               else resolve_base_model(base_model, category))
    small_model = is_small_model(output_dir if done else start)
    full = small_model if full_finetune == "auto" else str(full_finetune).lower() in ("1", "true", "yes")
    new_adapter = not full and section == "sft" and not (start and is_adapter(start))
    args["recipe"], recipe = for_stage(section, recipe, recipe_args, small_model, lora=new_adapter)
    args["resolved_recipe"] = recipe
    stage = Stage("sft", output_dir, args, what="the SFT stage")
    if stage.skip():
        return
    out, state = stage.out, stage.state
    tracking = tracking_args(report_to, out)  # a missing tracker package: one line, now
    if load_in_4bit:
        from utils.modeling import quantization_config

        quantization_config(full)  # QLoRA needs LoRA, a GPU and bitsandbytes: say so before anything is loaded
    fields = recipe[section]
    if section == "sft_step":  # the iteration's fresh positives: as many records as pairs, as many valid as theirs
        sample_size, valid_sample_size = (recipe["self_play"][k] for k in ("train_sample_size", "valid_sample_size"))
    else:
        sample_size, valid_sample_size = fields["sample_size"], fields["valid_sample_size"]
    train_records = read_records(train_file) if train_file else load_split(data, "train")
    train_records = sample_records(train_records, sample_size, seed)
    valid_records = sample_records(load_split(data, "valid"), valid_sample_size, seed)
    weights = None
    if genre_weighting:  # the genre distributions come from the whole train split, whatever subset is trained on
        from utils.data import load_catalog
        from utils.training import genre_weights, record_weights

        catalog = load_catalog(data)
        genre_weight = genre_weights(load_split(data, "train"), catalog)
        weights = {split: record_weights(records, catalog, genre_weight)
                   for split, records in (("train", train_records), ("valid", valid_records))}
    train_ds = prompt_completion_dataset(train_records, weights and weights["train"])
    valid_ds = prompt_completion_dataset(valid_records, weights and weights["valid"])
    from trl import SFTConfig, SFTTrainer

    from utils.modeling import load_model, load_tokenizer, save_trained

    # trl's config before the model: a field trl rejects is one line before anything loads
    plan, kwargs = trainer_kwargs(section, fields, len(train_ds), len(valid_ds), stage, tracking, seed,
                                  activation_checkpointing)
    config = SFTConfig(**kwargs, completion_only_loss=not small_model)
    stage.say(f"start {start} ({'adapter, continued' if is_adapter(start) else 'full' if full else 'LoRA'}; "
              f"loss on {'the whole text' if small_model else 'the completion'}), {len(train_ds)} train / "
              f"{len(valid_ds)} valid records, {describe_plan(plan)}; recipe {args['recipe']} ({section}). "
              f"First example:\n{train_ds[0]['prompt']}{train_ds[0]['completion']}")
    if weights:
        facts = weighting_facts(catalog, genre_weight, weights["train"])
        stage.say(f"genre re-weighted: record weights {facts['record_weight_min']} to "
                  f"{facts['record_weight_max']}, mean {facts['record_weight_mean']}")

    tokenizer = load_tokenizer(start, trust_remote_code=trust_remote_code, padding_side="right")
    peft_config = None
    if new_adapter:
        peft_config = lora_config(recipe["lora"])
        check_lora_targets(start, peft_config, trust_remote_code)
    model = load_model(start, trainable=True, full=full, trust_remote_code=trust_remote_code,
                       load_in_4bit=load_in_4bit)
    if small_model and not resume_from:  # the embedded small model starts from the run seed's random weights
        from utils.tiny_model import initial_weights

        model = initial_weights(model, seed)
    stage.begin()
    trainer_class = SFTTrainer
    if weights:  # trl's trainer with each record's loss multiplied by its weight
        from utils.trainers import WeightedSFTTrainer as trainer_class
    trainer = trainer_class(model=model, args=config, train_dataset=train_ds, eval_dataset=valid_ds,
                            processing_class=tokenizer, peft_config=peft_config)
    result = trainer.train()
    save_trained(trainer, tokenizer, stage.partial, start)  # every process: gathering sharded weights is a collective
    stage.finish({"start_model": start, "full_finetune": full,
                  "loss": "whole text" if small_model else "completion only",
                  "train_records": len(train_ds), "world_size": state.num_processes, **plan,
                  **(weighting_facts(catalog, genre_weight, weights["train"]) if weights else {}),
                  "peak_memory_mb": round(peak_memory_mb(), 1),
                  "train_loss": result.training_loss, "steps": result.global_step,
                  "warmup_steps_effective": config.warmup_steps,
                  "train_seconds": round(result.metrics["train_runtime"], 2)},
                 f"wrote {out} (train loss {result.training_loss:.4f}, {result.global_step} steps)")


if __name__ == "__main__":
    run_cli(run)
