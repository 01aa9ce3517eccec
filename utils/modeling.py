"""Loading and saving models and tokenizers, the same way in every stage.

A model directory holds either a full model or a LoRA adapter (adapter_config.json names its base), plus the
tokenizer. Weights are safetensors only; remote code runs only when `trust_remote_code` is asked for.
"""
import json
import shutil
import warnings
from pathlib import Path

from utils.device import half_precision, has_gpu
from utils.io import UserError, first_line
from utils.markers import is_done
from utils.tiny_model import TINY_MARKER, tiny_model_dir

# peft 0.21 reads `model.is_gradient_checkpointing`, which transformers 5 renamed; the notice is about peft's code,
# not ours, and nothing we pass changes it.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def resolve_base_model(base_model: str | None, category: str, contract=None) -> str:
    """`base_model` as given (local path, hub id, or the short name of an embedded pretrained model such as
    'smollm2'); empty means the project-built small model of the category, the one whose tokenizer was trained on the
    texts of `contract` (the project's when None; utils/tiny_model.py)."""
    from utils.pretrained import PRETRAINED, pretrained_dir
    from utils.prompt import PROJECT

    if base_model in PRETRAINED:
        d = pretrained_dir(base_model)
        if not is_done(d):
            raise UserError(f"the embedded pretrained model '{base_model}' is not built yet: "
                            f"python -m utils.pretrained --name {base_model}")
        return str(d)
    if base_model:
        return check_model_path(base_model, "--base_model")
    contract = contract or PROJECT
    d = tiny_model_dir(category, contract)
    if not (d / TINY_MARKER).is_file():
        flag = f' --recipe_args "contract={contract.name}"' if contract.small_model_texts else ""
        raise UserError(f"no embedded small model at {d}: build it with "
                        f"python -m utils.tiny_model --category {category}{flag}")
    return str(d)


def check_model_path(path: str, flag: str = "model path") -> str:
    """Local paths become absolute and must hold a model; anything else is taken as a hub id."""
    p = Path(path).expanduser()
    if p.exists():
        return check_model_dir(p, flag)
    if path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path:
        raise UserError(f"{flag} {path} does not exist: give a local model directory or a hub id "
                        f"(e.g. meta-llama/Llama-3.2-1B-Instruct)")
    return path  # a hub id such as meta-llama/Llama-3.2-1B-Instruct


def check_model_dir(path, flag: str = "model directory") -> str:
    """A local directory holding a full model (config.json) or a LoRA adapter (adapter_config.json); absolute."""
    p = Path(path).expanduser()
    if not p.is_dir():
        what = "does not exist" if not p.exists() else "is not a directory"
        raise UserError(f"{flag} {path} {what}: give a trained model directory (e.g. models/SFT/<Category>)")
    if not ((p / "config.json").is_file() or (p / "adapter_config.json").is_file()):
        hint = "an unfinished stage: rerun it" if p.name.endswith(".partial") else "point it at a trained model"
        raise UserError(f"{flag} {path} holds no model (no config.json or adapter_config.json): {hint}")
    return str(p.resolve())


def is_adapter(model_dir) -> bool:
    return (Path(model_dir) / "adapter_config.json").is_file()


def base_of(model_dir) -> str:
    """The base model a directory stands on (itself when it holds a full model)."""
    model_dir = Path(model_dir)
    if is_adapter(model_dir):
        path = model_dir / "adapter_config.json"
        try:
            base = json.loads(path.read_text(encoding="utf-8"))["base_model_name_or_path"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path}: not a LoRA adapter config (needs 'base_model_name_or_path')") from None
        if not isinstance(base, str) or not base:
            raise UserError(f"{path}: 'base_model_name_or_path' must name the base model")
        return base
    return str(model_dir)


def is_small_model(model_dir) -> bool:
    """True for the embedded small model and anything trained from it (trained fully, loss on the whole text)."""
    try:
        return (Path(base_of(model_dir)) / TINY_MARKER).is_file()
    except (OSError, ValueError, KeyError, UserError):
        return False


def default_dtype(trainable_weights: bool = False):
    """bf16 (fp16 on cards without bf16) on a GPU, fp32 on the CPU; fp32 always for weights that are trained.

    Weights that the optimizer updates stay fp32, with bf16/fp16 autocast doing the arithmetic (see
    utils/trl_config.device_args): a bf16 weight cannot take a small step (bf16(0.02) + 2e-5 == 0.02). A frozen base
    under LoRA may be bf16/fp16; peft keeps the adapter itself in fp32.
    """
    import torch

    half = half_precision()
    if half and not trainable_weights:
        return torch.bfloat16 if half == "bf16" else torch.float16
    return torch.float32


def load_tokenizer(model_dir, trust_remote_code=False, padding_side="right"):
    from transformers import AutoTokenizer

    local = Path(model_dir)
    if local.is_dir() and not any((local / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise UserError(f"{model_dir} holds no tokenizer (tokenizer.json or tokenizer_config.json): "
                        f"save the tokenizer beside the model")
    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a tokenizer from {model_dir}: {first_line(e)}") from None
    tok.padding_side = padding_side
    if tok.eos_token is None:
        raise UserError(f"the tokenizer of {model_dir} has no EOS token, and every completion ends with one: set "
                        f"eos_token in its tokenizer_config.json")
    if tok.pad_token is None:  # e.g. Llama 3: pad with EOS (masked out by the attention mask)
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_dir, *, trainable=False, full=None, merge=False, trust_remote_code=False, dtype=None,
               device=None, load_in_4bit=False):
    """A full model, or base + LoRA adapter (trainable, or merged into the base for fast inference).

    `full`: whether every weight will be trained (default: trainable and not an adapter). Such a model is loaded in
    fp32 on any device; otherwise the base takes the device's inference dtype (`default_dtype`).
    `load_in_4bit`: QLoRA, the frozen base quantized to 4-bit NF4 by bitsandbytes (CUDA only), for LoRA training.
    """
    from transformers import AutoModelForCausalLM

    model_dir = str(model_dir)
    if full is None:
        full = trainable and not is_adapter(model_dir)
    dtype = dtype or default_dtype(trainable_weights=trainable and full)
    quantization = quantization_config(full) if load_in_4bit else None
    base = base_of(model_dir)
    if not Path(base).exists() and (base.startswith((".", "/", "~")) or base.count("/") != 1):
        raise UserError(f"base model {base} (named by {model_dir}) does not exist")
    if is_adapter(model_dir) and not (Path(model_dir) / "adapter_model.safetensors").is_file():
        raise UserError(f"{model_dir}: no adapter_model.safetensors (adapter weights are loaded from safetensors only)")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code,
                                                     quantization_config=quantization)
        if is_adapter(model_dir):
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, model_dir, is_trainable=trainable)
            if merge:
                model = model.merge_and_unload()
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load model {model_dir}: {first_line(e)}") from None
    if device is not None:
        model.to(device)
    if not trainable:
        model.eval()
    return model



def quantization_config(full: bool):
    """4-bit NF4 with double quantization and bf16 compute (QLoRA), after checking that it can work here."""
    import importlib.util


    if full:
        raise UserError("LOAD_IN_4BIT quantizes a frozen base for LoRA: the embedded small model is trained fully "
                        "(set LOAD_IN_4BIT=0, or use a pretrained BASE_MODEL)")
    if not has_gpu():
        raise UserError("LOAD_IN_4BIT needs a CUDA GPU (bitsandbytes 4-bit kernels): on the CPU set LOAD_IN_4BIT=0")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("LOAD_IN_4BIT needs bitsandbytes: pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=default_dtype())


def save_trained(trainer, tokenizer, out_dir, start_dir) -> None:
    """Save what a trainer trained: the adapter (only the 'default' one, not trl's frozen 'ref' copy) or the full
    model, and the tokenizer. Call it on every process: under FSDP or DeepSpeed ZeRO-3 each process holds a shard,
    and gathering the whole weights is a collective (a rank-0-only `save_pretrained` would write empty shards); the
    main process alone writes.

    A full model trained from the embedded small model keeps its marker, so later stages still train it fully.
    """
    accelerator = trainer.accelerator
    state_dict = accelerator.get_state_dict(trainer.model)  # whole weights, on the main process
    if not accelerator.is_main_process:
        return
    out_dir = Path(out_dir)
    model = accelerator.unwrap_model(trainer.model)
    if hasattr(model, "peft_config"):
        model.save_pretrained(out_dir, state_dict=state_dict, selected_adapters=["default"], safe_serialization=True)
    else:
        model.save_pretrained(out_dir, state_dict=state_dict, safe_serialization=True)
        marker = Path(base_of(start_dir)) / TINY_MARKER
        if marker.is_file():
            shutil.copy(marker, out_dir / TINY_MARKER)
    tokenizer.save_pretrained(out_dir)
