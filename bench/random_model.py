"""Save a randomly initialised Llama of a given shape with the embedded model's tokenizer (no weights can be
downloaded on the machines this project is tested on), so GPU checks can time the real stages at real sizes.

usage: python -m bench.random_model --shape llama-1b --out /tmp/llama-1b [--tokenizer models/tiny/ML100K]
       python -m bench.random_model --shape embedder --out /tmp/embedder   # a stand-in grounding model
"""
from pathlib import Path

from utils.cli import run_cli

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
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def build_embedder(out: str, tokenizer, seed: int = 0):
    """A small random sentence-transformers model (BERT + mean pooling + normalisation) as a grounding stand-in."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    bert = Path(out) / "bert"
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=256, pad_token_id=tokenizer.pad_token_id)).save_pretrained(
        bert, safe_serialization=True)
    # Like BERT's [CLS], a leading special token: an empty title still embeds (to a sequence of one token).
    eos = tokenizer.eos_token
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{eos} $A", special_tokens=[(eos, tokenizer.eos_token_id)])
    tokenizer.save_pretrained(bert)
    encoder = Transformer(str(bert), model_kwargs={"use_safetensors": True})
    st = SentenceTransformer(modules=[encoder, Pooling(128), Normalize()])  # built from modules: loads nothing
    st.save(out, safe_serialization=True)
    print(f"{out}: random stand-in sentence embedder (128-d)")


def build(out: str, shape: str = "llama-1b", tokenizer: str = "models/tiny/ML100K", seed: int = 0):
    from utils.modeling import load_tokenizer

    tok = load_tokenizer(tokenizer)
    if shape == "embedder":
        return build_embedder(out, tok, seed)
    model = random_llama(shape, tok, seed)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    print(f"{out}: random {shape} Llama, {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")


if __name__ == "__main__":
    run_cli(build)
