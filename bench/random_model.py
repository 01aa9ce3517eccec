"""Save a randomly initialised Llama of a given shape with the embedded model's tokenizer (no weights can be
downloaded on the machines this project is tested on), so GPU checks can time the real stages at real sizes.

usage: python bench/random_model.py --shape llama-1b --out /tmp/llama-1b [--tokenizer models/tiny/ML100K]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.io import run_cli  # noqa: E402

SHAPES = {  # hidden, intermediate, layers, heads, kv heads
    "llama-1b": (2048, 8192, 16, 32, 8),  # Llama-3.2-1B
    "small": (256, 1024, 2, 4, 4),        # for trying the GPU check on a CPU
}


def random_llama(shape: str, tokenizer, seed: int = 0):
    """A randomly initialised bf16 Llama of `shape` whose vocabulary and special tokens are the tokenizer's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv = SHAPES[shape]
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=inter,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                         head_dim=hidden // heads, max_position_embeddings=4096, rope_theta=500000.0,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build(out: str, shape: str = "llama-1b", tokenizer: str = "models/tiny/ML100K", seed: int = 0):
    from utils.modeling import load_tokenizer

    tok = load_tokenizer(tokenizer)
    model = random_llama(shape, tok, seed)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"{out}: random {shape} Llama, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    run_cli(build)
