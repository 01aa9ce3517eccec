"""Pieces the SFT and DPO stages share: datasets in trl's formats, the LoRA recipe, device-dependent arguments."""
from utils.prompt import record_target, render_completion, render_prompt

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")


def prompt_completion_dataset(records):
    """SFT data: the shared prompt and the quoted target title (trl appends EOS)."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [render_prompt(r) for r in records],
                              "completion": [render_completion(record_target(r)) for r in records]})


def preference_dataset(pairs):
    """DPO data from self-play pair rows {prompt, chosen, rejected} (already rendered by train/self_play.py)."""
    from datasets import Dataset

    return Dataset.from_dict({k: [p[k] for p in pairs] for k in ("prompt", "chosen", "rejected")})


def device_args(activation_checkpointing: bool = False) -> dict:
    """Trainer arguments that depend on the device: bf16 on a GPU that has it; on the CPU fp32 and no activation
    checkpointing (trl turns both on by default: bf16 fails without a GPU, checkpointing costs 10-20% here)."""
    import datasets
    import torch

    datasets.disable_progress_bars()  # per-map progress bars drown the training log
    if torch.cuda.is_available():
        return {"bf16": torch.cuda.is_bf16_supported(), "activation_checkpointing": activation_checkpointing}
    return {"bf16": False, "use_cpu": True, "activation_checkpointing": False}


def schedule_args(n_examples: int, epochs: float, batch_size: int, grad_accum: int, world: int, evals: int,
                  warmup_steps: int) -> dict:
    """Evaluation a few times per run (not after every step, as the official code did) and a bounded warm-up."""
    steps = max(1, int(n_examples * epochs) // (batch_size * grad_accum * world))
    return {"eval_strategy": "steps" if evals else "no", "eval_steps": max(1, steps // max(1, evals)),
            "warmup_steps": min(warmup_steps, steps // 10)}


def peak_memory_mb() -> float:
    """Peak memory of this process so far: GPU allocations on CUDA, else the resident set's high-water mark."""
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
