"""The DPO step of an SPRec iteration: trl's DPOTrainer on self-play pairs.

usage: python -m train.dpo --model_dir models/SPRec/ML100K/it0/SFT --data_dir models/SPRec/ML100K/it0/data \
           --output_dir models/SPRec/ML100K/it0/DPO [--lr 2e-5] [--beta 0.1] [--loss_type sigmoid]
The policy starts from `model_dir` and the reference is that same starting model, held once: for a LoRA adapter,
trl copies it into a frozen "ref" adapter on the same base; for the fully trained small model, trl loads one
reference copy from the same directory.
`--precompute_ref` computes the reference's log-probabilities of every pair in one batched pass before training
(trl's `precompute_ref_log_probs`; the reference is fixed during the step) instead of inside each training and
evaluation step. `--loss_type` takes trl's loss types (comma-separated, e.g. sigmoid,sft), or alone one of the
multi-negative losses `sdpo` (S-DPO) and `dmpo` (DMPO), which read k rejected items per pair (`rejected` plus the list
`extra_rejected`; utils/trainers.py). Pairs with k > 1 need one of those.
"""
import time
from pathlib import Path

from utils.io import UserError, comma_list, read_jsonl, run_cli
from utils.stage import Stage
from utils.tracking import tracking_args
from utils.training import (
    batch_plan,
    describe_plan,
    device_args,
    peak_memory_mb,
    preference_dataset,
    schedule_args,
)

MULTI_NEGATIVE = ("sdpo", "dmpo")  # utils.trainers.MULTI_NEGATIVE_LOSSES (named here so the checks need no torch)


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


def run(model_dir: str, data_dir: str, output_dir: str, lr: float = 2e-5, beta: float = 0.1,
        loss_type: str = "sigmoid", epochs: float = 1, global_batch_size: int = 8, per_device_batch_size: int = 2,
        warmup_steps: int = 0, max_length: int = 512, evals_per_run: int = 2, seed: int = 42,
        report_to: str = "none", logging_steps: int = 10, activation_checkpointing: bool = False,
        load_in_4bit: bool = False, precompute_ref: bool = False, trust_remote_code: bool = False,
        trainer_args: str = ""):
    args = dict(locals())
    loss_types = args["loss_type"] = comma_list(loss_type, "--loss_type")  # e.g. sigmoid,sft (fire: a tuple)
    stage = Stage("dpo", output_dir, args, what="the DPO step")
    if stage.skip():
        return
    out, state = stage.out, stage.state
    from utils.io import check_output_dir
    from utils.modeling import check_model_dir

    # Every check on the user's input comes before the heavy imports and before anything is written.
    model_dir = check_model_dir(model_dir, "--model_dir")
    if load_in_4bit:
        from utils.modeling import is_adapter, quantization_config

        quantization_config(full=not is_adapter(model_dir))  # QLoRA needs LoRA, a GPU and bitsandbytes
    check_output_dir(out)
    tracking = tracking_args(report_to, out)  # a missing tracker package: one line, now
    train_pairs = read_pairs(Path(data_dir) / "dpo_train.jsonl")
    valid_pairs = read_pairs(Path(data_dir) / "dpo_valid.jsonl")
    k = negatives_per_pair(train_pairs)
    multi = [t for t in loss_types if t in MULTI_NEGATIVE]
    if multi and len(loss_types) > 1:
        raise UserError(f"--loss_type {multi[0]} is a multi-negative loss and cannot be combined with others")
    if k != negatives_per_pair(valid_pairs):
        raise UserError(f"{data_dir}: train pairs have {k} rejected items, valid pairs "
                        f"{negatives_per_pair(valid_pairs)}: rerun train/self_play.py")
    if multi and precompute_ref:
        raise UserError(f"--precompute_ref works with trl's own losses, not --loss_type {multi[0]} (k rejected items "
                        "per pair)")
    if k > 1 and not multi:
        raise UserError(f"{data_dir}: the pairs have {k} rejected items each; --loss_type {','.join(loss_types)} "
                        f"uses one: use --loss_type sdpo or dmpo")
    from trl import DPOConfig, DPOTrainer

    from utils.modeling import is_adapter, load_model, load_tokenizer, save_trained

    train_ds = preference_dataset(train_pairs, multi_negative=bool(multi))
    valid_ds = preference_dataset(valid_pairs, multi_negative=bool(multi))
    plan = batch_plan(global_batch_size, per_device_batch_size, state.num_processes)
    from utils.training import with_fields

    # trl's config before the model: a bad --trainer_args field is one line before anything loads
    config = DPOConfig(**with_fields(dict(
        output_dir=str(stage.partial), num_train_epochs=epochs, learning_rate=lr,
        per_device_eval_batch_size=per_device_batch_size * 2, beta=beta,
        # trl's config knows only its own loss names; a multi-negative loss replaces trl's loss altogether
        loss_type=["sigmoid"] if multi else loss_types,
        max_length=max_length, lr_scheduler_type="linear", save_strategy="no",
        precompute_ref_log_probs=precompute_ref, precompute_ref_batch_size=per_device_batch_size * 4,
        logging_steps=logging_steps, **tracking, seed=seed, data_seed=seed,
        disable_tqdm=not state.is_main_process, dataloader_num_workers=0,
        **schedule_args(len(train_ds), epochs, plan, evals_per_run, warmup_steps),
        **device_args(activation_checkpointing)), trainer_args, DPOConfig, "--trainer_args"))
    ex = train_ds[0]
    stage.say(f"start {model_dir} ({'LoRA adapter' if is_adapter(model_dir) else 'full model'}; reference = the "
              f"same start), {len(train_ds)} pairs with {k} rejected item(s) each, loss {loss_types}, beta {beta}, "
              f"lr {lr}, {describe_plan(plan)}. First pair:\n"
              f"{ex['prompt']}chosen: {ex['chosen']!r} rejected: {ex['rejected']!r}")

    tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code, padding_side="right")
    model = load_model(model_dir, trainable=True, trust_remote_code=trust_remote_code, load_in_4bit=load_in_4bit)
    stage.begin()
    kwargs = dict(model=model, ref_model=None, args=config, train_dataset=train_ds, eval_dataset=valid_ds,
                  processing_class=tokenizer)
    setup_start = time.perf_counter()  # trl tokenizes (and with --precompute_ref scores the pairs) while it sets up
    if multi:  # trl's trainer with k rejected sequences per pair and the S-DPO or DMPO loss
        from utils.trainers import MultiNegativeDPOTrainer

        trainer = MultiNegativeDPOTrainer(loss=multi[0], **kwargs)
    else:
        trainer = DPOTrainer(**kwargs)
    setup_seconds = time.perf_counter() - setup_start
    result = trainer.train()
    save_trained(trainer, tokenizer, stage.partial, model_dir)  # every process: gathering is a collective
    stage.finish({"start_model": model_dir, "pairs": len(train_ds), "negatives_per_pair": k,
                  "sequences_per_pair": k + 1, "world_size": state.num_processes, **plan,
                  "peak_memory_mb": round(peak_memory_mb(), 1),
                  "train_loss": result.training_loss, "steps": result.global_step,
                  "train_seconds": round(result.metrics["train_runtime"], 2),
                  "setup_seconds": round(setup_seconds, 2)},
                 f"wrote {out} (train loss {result.training_loss:.4f}, {result.global_step} steps)")


if __name__ == "__main__":
    run_cli(run)
