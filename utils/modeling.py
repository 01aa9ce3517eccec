"""Loading and saving models and tokenizers, the same way in every stage.

A model directory holds either a full model or a LoRA adapter (adapter_config.json names its base), plus the
tokenizer. Weights are safetensors only; remote code runs only when `trust_remote_code` is asked for.
"""
import json
import shutil
import warnings
from pathlib import Path

from utils.data import REPO_ROOT
from utils.io import UserError

TINY_MARKER = "sprec_tiny.json"  # written by utils/tiny_model.py into the model it builds, kept by its descendants

# peft 0.21 reads `model.is_gradient_checkpointing`, which transformers 5 renamed; the notice is about peft's code,
# not ours, and nothing we pass changes it.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def tiny_model_dir(category: str) -> Path:
    return REPO_ROOT / "models" / "tiny" / category


def resolve_base_model(base_model: str | None, category: str) -> str:
    """`base_model` as given (local path or hub id); empty means the project-built small model of the category."""
    if base_model:
        return check_model_path(base_model)
    d = tiny_model_dir(category)
    if not (d / TINY_MARKER).is_file():
        raise UserError(f"no embedded small model at {d}: build it with "
                        f"python utils/tiny_model.py --category {category}")
    return str(d)


def check_model_path(path: str) -> str:
    """Local paths become absolute and must exist; anything else is taken as a hub id."""
    p = Path(path).expanduser()
    if p.exists():
        return str(p.resolve())
    if path.startswith((".", "/", "~")) or path.count("/") > 1 or "\\" in path:
        raise UserError(f"model path {path} does not exist")
    return path  # a hub id such as meta-llama/Llama-3.2-1B-Instruct


def is_adapter(model_dir) -> bool:
    return (Path(model_dir) / "adapter_config.json").is_file()


def base_of(model_dir) -> str:
    """The base model a directory stands on (itself when it holds a full model)."""
    model_dir = Path(model_dir)
    if is_adapter(model_dir):
        return json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    return str(model_dir)


def is_project_built(model_dir) -> bool:
    """True for the embedded small model and anything trained from it (trained fully, loss on the whole text)."""
    try:
        return (Path(base_of(model_dir)) / TINY_MARKER).is_file()
    except (OSError, ValueError, KeyError):
        return False


def default_dtype():
    import torch

    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_tokenizer(model_dir, trust_remote_code=False, padding_side="right"):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    except OSError as e:
        raise UserError(f"cannot load a tokenizer from {model_dir}: {e}") from None
    tok.padding_side = padding_side
    if tok.pad_token is None:  # e.g. Llama 3: pad with EOS (masked out by the attention mask)
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_dir, *, trainable=False, merge=False, trust_remote_code=False, dtype=None, device=None):
    """A full model, or base + LoRA adapter (trainable, or merged into the base for fast inference)."""
    from transformers import AutoModelForCausalLM

    model_dir = str(model_dir)
    dtype = dtype or default_dtype()
    base = base_of(model_dir)
    if not (Path(base).exists() or "/" in base):
        raise UserError(f"base model {base} (named by {model_dir}) does not exist")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code)
        if is_adapter(model_dir):
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, model_dir, is_trainable=trainable)
            if merge:
                model = model.merge_and_unload()
    except OSError as e:
        raise UserError(f"cannot load model {model_dir}: {e}") from None
    if device is not None:
        model.to(device)
    if not trainable:
        model.eval()
    return model


def save_model(model, tokenizer, out_dir, start_dir) -> None:
    """Save the trained adapter (only the 'default' one, not trl's frozen 'ref' copy) or full model + tokenizer.

    A full model trained from the embedded small model keeps its marker, so later stages still train it fully.
    """
    out_dir = Path(out_dir)
    if hasattr(model, "peft_config"):
        model.save_pretrained(out_dir, selected_adapters=["default"], safe_serialization=True)
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
        marker = Path(base_of(start_dir)) / TINY_MARKER
        if marker.is_file():
            shutil.copy(marker, out_dir / TINY_MARKER)
    tokenizer.save_pretrained(out_dir)
