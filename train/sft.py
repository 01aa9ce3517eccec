"""Supervised fine-tuning: prompt -> quoted next-item title, EOS learned after it.

usage: python -m train.sft --category ML100K --output_dir models/SFT/ML100K [--base_model PATH_OR_HUB_ID]
       [--resume_from MODEL_DIR] [--train_file records.jsonl] [--sample_size 4096] [--epochs 4] [--lr 3e-4]
       (or through accelerate launch for data parallelism)
A pretrained base (a local path, a hub id, or `smollm2`, the embedded SmolLM2-135M-Instruct) gets a LoRA adapter
(r 16, alpha 32, dropout 0.05, every linear layer but the head; `--lora_targets` overrides) and loss on the
completion only; the embedded small model is trained fully with loss on the whole text (it must learn the titles
from nothing; measured: 0% vs 99.6% valid titles). `--resume_from` continues an existing adapter or model.
`--genre_weighting True` is genre re-weighted SFT (IFairLRS-style): each record's loss is multiplied by a weight that
favours targets of genres the training targets under-represent relative to the histories (weights from the
category's whole train split, utils.training.genre_weights; the loss through utils.trainers.WeightedSFTTrainer).
"""
from pathlib import Path

from utils.data import category_dir, load_split, read_records, sample_records
from utils.io import check_output_dir, run_cli
from utils.stage import Stage
from utils.tracking import tracking_args
from utils.training import (
    batch_plan,
    describe_plan,
    device_args,
    lora_config,
    peak_memory_mb,
    prompt_completion_dataset,
    schedule_args,
)


def weighting_facts(catalog, genre_weight, train_weights) -> dict:
    """What genre re-weighting did, for the run config: each genre's weight and the spread of the record weights."""
    return {"genre_weights": {g: round(float(w), 4) for g, w in zip(catalog.genres, genre_weight)},
            "record_weight_mean": round(sum(train_weights) / len(train_weights), 4),
            "record_weight_min": round(min(train_weights), 4), "record_weight_max": round(max(train_weights), 4)}


def run(output_dir: str, category: str = "ML100K", base_model: str = "", resume_from: str = "",
        data_dir: str = "", train_file: str = "", sample_size: int = 4096, valid_sample_size: int = 256,
        epochs: float = 4, lr: float = 3e-4, global_batch_size: int = 16, per_device_batch_size: int = 4,
        warmup_steps: int = 20,
        max_length: int = 512, full_finetune: str = "auto", lora_r: int = 16, lora_alpha: int = 32,
        lora_dropout: float = 0.05, lora_targets="all-linear", evals_per_run: int = 4, seed: int = 42,
        report_to: str = "none", logging_steps: int = 10, activation_checkpointing: bool = False,
        load_in_4bit: bool = False, trust_remote_code: bool = False, genre_weighting: bool = False,
        trainer_args: str = "", lora_args: str = ""):
    args = dict(locals())
    stage = Stage("sft", output_dir, args, what="the SFT stage")
    if stage.skip():
        return
    out, state = stage.out, stage.state

    from utils.modeling import check_model_dir, resolve_base_model
    from utils.tiny_model import is_small_model

    # Every check on the user's input comes before the heavy imports and before anything is written.
    data = Path(data_dir) if data_dir else category_dir(category)
    check_output_dir(out)
    tracking = tracking_args(report_to, out)  # a missing tracker package: one line, now
    start = check_model_dir(resume_from, "--resume_from") if resume_from else resolve_base_model(base_model, category)
    small_model = is_small_model(start)
    full = small_model if full_finetune == "auto" else str(full_finetune).lower() in ("1", "true", "yes")
    if load_in_4bit:
        from utils.modeling import quantization_config

        quantization_config(full)  # QLoRA needs LoRA, a GPU and bitsandbytes: say so before anything is loaded
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
    plan = batch_plan(global_batch_size, per_device_batch_size, state.num_processes)
    from trl import SFTConfig, SFTTrainer

    from utils.modeling import is_adapter, load_model, load_tokenizer, save_trained
    from utils.training import check_lora_targets, with_fields

    # trl's config before the model: a bad --trainer_args field is one line before anything loads
    config = SFTConfig(**with_fields(dict(
        output_dir=str(stage.partial), num_train_epochs=epochs, learning_rate=lr,
        per_device_eval_batch_size=per_device_batch_size * 4, lr_scheduler_type="cosine", max_length=max_length,
        completion_only_loss=not small_model,
        save_strategy="no", logging_steps=logging_steps,
        **schedule_args(len(train_ds), epochs, plan, evals_per_run, warmup_steps),
        **tracking, seed=seed, data_seed=seed, disable_tqdm=not state.is_main_process,
        dataloader_num_workers=0, **device_args(activation_checkpointing)), trainer_args, SFTConfig, "--trainer_args"))
    stage.say(f"start {start} ({'adapter, continued' if is_adapter(start) else 'full' if full else 'LoRA'}; "
              f"loss on {'the whole text' if small_model else 'the completion'}), {len(train_ds)} train / "
              f"{len(valid_ds)} valid records, {describe_plan(plan)}. First example:\n"
              f"{train_ds[0]['prompt']}{train_ds[0]['completion']}")
    if weights:
        facts = weighting_facts(catalog, genre_weight, weights["train"])
        stage.say(f"genre re-weighted: record weights {facts['record_weight_min']} to "
                  f"{facts['record_weight_max']}, mean {facts['record_weight_mean']}")

    tokenizer = load_tokenizer(start, trust_remote_code=trust_remote_code, padding_side="right")
    peft_config = None
    if not full and not is_adapter(start):
        peft_config = lora_config(lora_r, lora_alpha, lora_dropout, lora_targets, lora_args)
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
                  "train_seconds": round(result.metrics["train_runtime"], 2)},
                 f"wrote {out} (train loss {result.training_loss:.4f}, {result.global_step} steps)")


if __name__ == "__main__":
    run_cli(run)
