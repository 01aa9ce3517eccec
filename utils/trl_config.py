"""Pieces the SFT and DPO stages share: datasets in trl's formats, the LoRA recipe, device-dependent arguments."""
import math

from utils.cli import comma_list
from utils.io import UserError
from utils.prompt import PROJECT, record_history, record_target


def lora_config(fields: dict):
    """peft's LoraConfig from a recipe's lora section (utils/recipe.py). target_modules "all-linear" is every linear
    layer but the output head (any architecture; for Llama the official q,k,v,o,gate,up,down projections); a list, or
    a comma-separated string, names the modules (peft would read a plain string as a regular expression)."""
    from peft import LoraConfig

    fields = dict(fields)
    targets = fields.get("target_modules", "all-linear")
    if isinstance(targets, str) and targets != "all-linear":
        fields["target_modules"] = comma_list(targets, "lora.target_modules")
    return LoraConfig(**fields, task_type="CAUSAL_LM")


def check_lora_targets(base_model: str, config, trust_remote_code: bool = False) -> None:
    """Named LoRA targets must exist in this architecture: one clear line before any weight is loaded (on the meta
    device, from the config alone), instead of peft's error deep in trl."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if config.target_modules == "all-linear":
        return
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_model,
                                                                            trust_remote_code=trust_remote_code))
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    missing = sorted(set(config.target_modules) - set(linear))
    if missing:
        raise UserError(f"lora.target_modules {','.join(missing)}: no such linear layer in {type(model).__name__} "
                        f"(it has {','.join(linear)}); use all-linear or some of these")


def sft_dataset(records, contract=PROJECT, tokenizer=None, weights=None):
    """SFT data as the contract trains it (utils/prompt.py): the project's prompt and quoted target title (trl
    appends EOS), or the authors' whole text already tokenized; with `weights`, a per-record `record_weight` column
    for utils.custom_losses.WeightedSFTTrainer."""
    from datasets import Dataset

    columns = contract.sft_columns(records, tokenizer)
    if weights is not None:
        columns["record_weight"] = [float(w) for w in weights]
    return Dataset.from_dict(columns)


def preference_dataset(pairs, multi_negative: bool = False, prompt_prefix: str = ""):
    """DPO data from self-play pair rows {prompt, chosen, rejected} (already rendered by train/self_play.py), each
    prompt after `prompt_prefix` (the contract's `dpo_prompt_prefix`); with `multi_negative`, also `extra_rejected`,
    the other k-1 rejected completions (empty for k = 1), for utils.custom_losses.MultiNegativeDPOTrainer."""
    from datasets import Dataset

    columns = {k: [p[k] for p in pairs] for k in ("prompt", "chosen", "rejected")}
    columns["prompt"] = [prompt_prefix + p for p in columns["prompt"]]
    if multi_negative:
        columns["extra_rejected"] = [list(p.get("extra_rejected", [])) for p in pairs]
    return Dataset.from_dict(columns)


def genre_weights(records, catalog):
    """Genre re-weighting (IFairLRS-style), per genre: over `records`, each history item and each target spreads
    weight 1 evenly over its genres; a genre's weight is its share among the history items / its share among the
    targets (0 for a genre no target carries). (genres,) array in `catalog.genres` order."""
    import numpy as np

    gw = catalog.genre_weights()  # (items, genres): each item's weight 1 spread over its genres
    if not gw.any():
        raise UserError(f"genre re-weighting needs item genres, and no item of {catalog.directory or 'the catalog'} "
                        f"has one (name2genre.json / genre_dict.json): use another method for this category")

    def rows(names):
        return [i for i in (catalog.index(n) for n in names) if i is not None]

    history = gw[rows(h for r in records for h in record_history(r))].sum(0)
    targets = gw[rows(record_target(r) for r in records)].sum(0)
    history_share = history / max(history.sum(), 1e-12)
    target_share = targets / max(targets.sum(), 1e-12)
    return np.divide(history_share, target_share, out=np.zeros_like(history_share), where=target_share > 0)


def record_weights(records, catalog, genre_weight) -> list[float]:
    """Each record's SFT weight: the mean weight of its target's genres (1 when the target has none)."""
    import numpy as np

    gw = catalog.genre_weights()
    out = []
    for r in records:
        i = catalog.index(record_target(r))
        genres = np.flatnonzero(gw[i]) if i is not None else []
        out.append(float(np.mean(genre_weight[genres])) if len(genres) else 1.0)
    return out


def device_args(activation_checkpointing: bool = False) -> dict:
    """Trainer arguments that depend on the device. On a GPU: bf16 autocast, or on cards without bf16 (V100, T4)
    fp16 autocast with loss scaling; the trained weights themselves stay fp32 (utils.modeling.default_dtype). On the
    CPU: fp32 (trl turns bf16 on by default, which fails without a GPU), or bf16 autocast with KERNELS=bf16 on a CPU
    that does bf16 in hardware (utils.device.half_precision). Activation checkpointing (trl's default is
    on) only when asked for: it saves activation memory for a ~30% slower step, worth it for long sequences or big
    models on small cards. Every trained parameter takes part in every forward pass, so DDP need not search for unused
    ones (transformers' default searches, costs a graph traversal per step, and warns)."""
    import datasets

    from utils.device import half_precision, has_gpu

    datasets.disable_progress_bars()  # per-map progress bars drown the training log
    common = {"activation_checkpointing": activation_checkpointing, "ddp_find_unused_parameters": False}
    half = half_precision()
    cpu = {} if has_gpu() else {"use_cpu": True}
    return {"bf16": half == "bf16", "fp16": half == "fp16", **cpu, **common}


def score_labelled_positions_only() -> None:
    """Let trl's fused LM head (SFT and DPO) score only the positions that carry a label on the CPU too.

    On a Triton device (CUDA, XPU) trl projects just the labelled positions through the head; everywhere else it
    projects every position, because on Neuron a changing number of rows recompiles the graph (trl.trainer.utils,
    `add_fused_lm_head`). A CPU compiles nothing, and with a pretrained base the loss reads only the completion, about
    15 of a record's 165 positions: projecting all of them through SmolLM2's 49,152-row head (with trl's entropy and
    top-1 metrics) was 39% of a LoRA SFT step on 2 cores. The log-probabilities are trl's own compact path's, the
    same rows of the same tiles (bench/pretrained_cpu.py). trl asks this predicate at every forward, so setting it once
    per process is enough; calling again changes nothing.

    The stages ask for it with a pretrained base only. The embedded small model keeps trl's full path: the sums over
    fewer rows move its weights' last bits (the golden run's weight hashes moved, its losses and eval files did not),
    its published digits were made with the full path, and with its loss on the whole text the saving is the padding
    alone."""
    import trl.trainer.utils as trl_utils

    triton = trl_utils._use_triton
    if getattr(triton, "compact_on_cpu", False):
        return

    def compact(device) -> bool:
        return device.type == "cpu" or triton(device)

    compact.compact_on_cpu = True
    trl_utils._use_triton = compact


def trainer_kwargs(section: str, fields: dict, n_examples: int, n_eval: int, stage, tracking: dict,
                   activation_checkpointing: bool, contract=PROJECT) -> tuple[dict, dict]:
    """(batch plan, keyword arguments of a stage's trl config) from its recipe section (utils/recipe.py): the stage's
    defaults (it saves once, at the end, and loads data in its own process; a recipe may change either), the section's
    trl fields, then what the stage sets itself: output, schedule, tracking, seeds (the stage's own, utils/seeds.py,
    recorded in its settings as stage_seed), device. The SFT and DPO stages add their loss."""
    seed = stage.args["stage_seed"]
    from utils.recipe import trainer_fields

    processes = stage.state.num_processes
    plan = batch_plan(fields["global_batch_size"], fields["per_device_train_batch_size"], processes)
    keep_best = fields.get("load_best_model_at_end") and fields.get("save_strategy") == "steps"
    return plan, {"save_strategy": "no", "dataloader_num_workers": 0, **trainer_fields(section, fields),
                  **scoring_batches(fields, n_examples, n_eval, processes),
                  "output_dir": str(stage.partial),
                  **schedule_args(n_examples, fields["num_train_epochs"], plan, fields["evals_per_run"],
                                  fields["warmup_steps"], contract.caps_warmup,
                                  fields.get("save_steps", 500) if keep_best else None),
                  **tracking, "seed": seed, "data_seed": seed, "disable_tqdm": not stage.is_main,
                  **device_args(activation_checkpointing)}


def scoring_batches(fields: dict, n_train: int, n_eval: int, processes: int) -> dict:
    """The batches that only score (evaluation; DPO's reference log-probabilities), each capped at a process's share
    of its data. On several processes accelerate fills a process's last batch up to the batch size with repeated
    records (dropped again when gathered): a valid set of 2 records with a batch of 32 on 2 processes was 32 forward
    passes each, 108 s instead of 5 s for SmolLM2 on a CPU. Results are unchanged: scores of repeats are dropped."""
    def cap(batch, n):
        return max(1, min(batch, math.ceil(n / processes)))

    out = {"per_device_eval_batch_size": cap(fields["per_device_eval_batch_size"], n_eval)}
    if "precompute_ref_batch_size" in fields:  # DPO scores both splits with it
        out["precompute_ref_batch_size"] = cap(fields["precompute_ref_batch_size"], max(n_train, n_eval))
    return out


def batch_plan(global_batch_size: int, per_device_batch_size: int, processes: int, flag: str = "") -> dict:
    """The recipe fixes the global batch (examples per optimizer step); the per-device batch is an upper bound, a
    memory knob: each process takes the largest batch up to it that divides its share of the global batch, and
    gradient accumulation makes up the rest. So 1 GPU and 8 GPUs take the same optimizer steps over the same
    records, and a recipe's per-device batch need not divide every process count (16 per device with a global 16 on
    2 processes runs 8 per device). Where the per-device batch divides the share, it is taken as it is."""
    if min(global_batch_size, per_device_batch_size) < 1:
        raise UserError(f"global batch {global_batch_size}{flag} and per-device batch {per_device_batch_size} must be "
                        f"positive integers")
    if global_batch_size % processes:
        raise UserError(f"global batch {global_batch_size}{flag} does not split evenly over {processes} process(es): "
                        f"use a process count that divides it, or another global batch")
    share = global_batch_size // processes
    per_device = max(b for b in range(1, min(per_device_batch_size, share) + 1) if share % b == 0)
    return {"global_batch_size": global_batch_size, "per_device_batch_size": per_device,
            "processes": processes, "grad_accum": share // per_device}


def schedule_args(n_examples: int, epochs: float, plan: dict, evals: int, warmup_steps: int,
                  capped: bool = True, save_steps: int | None = None) -> dict:
    """Evaluation a few times per run (not after every step, as the official code did) and a warm-up capped at 10%
    of the steps (uncapped when not `capped`: the official contract).

    With `save_steps` (a recipe that keeps the best of the checkpoints saved every `save_steps` steps and at the last
    step, load_best_model_at_end) the validation loss is computed at the saves only. transformers 4.44, which the
    authors ran, compared the validation loss only when it saved, so the best checkpoint was the best of the saves;
    transformers 5 tracks the best at every evaluation and keeps a save only if it is that best, so an evaluation
    between saves could make it keep a different checkpoint, or none. Evaluating exactly at the saves (and at the last
    step, where transformers evaluates and saves anyway) makes the two rules choose the same step; `evals` then
    changes nothing."""
    steps = max(1, int(n_examples * epochs) // plan["global_batch_size"])
    every = save_steps or max(1, steps // max(1, evals))
    return {"per_device_train_batch_size": plan["per_device_batch_size"],
            "gradient_accumulation_steps": plan["grad_accum"],
            "eval_strategy": "steps" if evals or save_steps else "no", "eval_steps": every,
            "warmup_steps": min(warmup_steps, steps // 10) if capped else warmup_steps}


def drop_checkpoints(trainer, stage) -> dict:
    """After training and saving: remove the checkpoints a recipe that saves them (the official contract's best
    checkpoint) left in the stage's directory; the saved model is the result already. {"best_checkpoint_step": step}
    when the best checkpoint was loaded as the result (none is before the first save), else {}."""
    import shutil
    from pathlib import Path

    if trainer.args.save_strategy == "no":
        return {}
    stage.state.wait_for_everyone()  # no process still reads a checkpoint
    if stage.is_main:
        for checkpoint in stage.partial.glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
    best = trainer.state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    return {"best_checkpoint_step": int(Path(best).name.rsplit("-", 1)[-1])} if best else {}


def describe_plan(plan: dict) -> str:
    return (f"global batch {plan['global_batch_size']} = {plan['per_device_batch_size']} per device x "
            f"{plan['processes']} process(es) x {plan['grad_accum']} accumulation step(s)")
