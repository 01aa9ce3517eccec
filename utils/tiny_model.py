"""The embedded small model: where it lives, its marker, building it (a byte-level BPE tokenizer trained on the
category's text and a small, randomly initialised Llama, saved with safetensors) and the run seed's initial weights.
It is trained fully (LoRA on random weights does not learn).

usage: python -m utils.tiny_model --category ML100K [--out models/tiny/ML100K] [--hidden 128] [--layers 4]
       [--recipe FILE] [--recipe_args "contract=official"]
The tokenizer is trained on the texts of the recipe's contract (utils/prompt.py, Contract.small_model_corpus), so each
contract's small model has a vocabulary fitted to what it reads, as a real model's covers its prompts; a contract with
other texts than the project's has its own folder (models/tiny-official/<category>), and its indents are tokens of
their own. Does nothing when the model is built.
"""
from dataclasses import dataclass
from pathlib import Path

from utils.cli import run_cli
from utils.data import REPO_ROOT, category_dir, check_category_name, load_catalog, load_split
from utils.io import write_json
from utils.markers import finish_stage, is_done, start_stage
from utils.prompt import PROJECT, contract_of, render_completion

PAD, EOS = "<|pad|>", "<|eos|>"
# Written into the model it builds and copied into every model trained fully from it (utils.modeling.save_trained):
# how a stage knows a model is the small one (utils.modeling.is_small_model).
TINY_MARKER = "sprec_tiny.json"


def tiny_model_dir(category: str, contract=PROJECT) -> Path:
    """models/tiny/<category>, or models/tiny-<texts>/<category> for a contract with texts other than the project's."""
    folder = "tiny" + (f"-{contract.small_model_texts}" if contract.small_model_texts else "")
    return REPO_ROOT / "models" / folder / check_category_name(category)


def train_tokenizer(texts, vocab_size: int, space_runs_apart: bool = False):
    """Byte-level BPE whose merges may span spaces (whole titles become few tokens) but never a quote or a
    newline: a title is tokenized the same in the history and in the answer, and a prompt (which ends in a
    newline) always ends on a token boundary, so prompt + completion tokenizes as prompt, then completion.
    `space_runs_apart`: runs of two or more spaces are tokens of their own (the official contract's indents), so an
    indented line holds the same tokens as the line without its indent, as in a real model's vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex('["\n]| {2,}' if space_runs_apart else '["\n]'), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, padding_side="right",
                                   model_max_length=1024)


@dataclass
class Args:
    """The build's options (the command line's --name value; tests build it directly)."""
    category: str = "ML100K"
    out: str = ""
    vocab_size: int = 4096
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    seed: int = 0
    corpus_records: int = 5000
    force: bool = False
    recipe: str = ""
    recipe_args: str = ""


def build(a: Args) -> None:
    """Train the tokenizer on the texts of the recipe's contract (the project's by default) and save a freshly
    initialised Llama of the given size into `a.out` (default: the contract's folder, tiny_model_dir)."""
    from utils.recipe import for_stage

    category, vocab_size, hidden, layers, heads, seed = a.category, a.vocab_size, a.hidden, a.layers, a.heads, a.seed

    contract = contract_of(for_stage("sft", a.recipe, a.recipe_args, small_model=True)[1])
    out_dir = Path(a.out) if a.out else tiny_model_dir(category, contract)
    if is_done(out_dir) and not a.force:
        return
    print(f"building the embedded small model {out_dir} (contract {contract.name})", flush=True)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    data_dir = category_dir(category)
    catalog = load_catalog(data_dir)
    train = load_split(data_dir, "train")[:a.corpus_records]
    texts = [t for r in train for t in contract.small_model_corpus(r)]  # what the model reads (SFT trains on)
    texts += [render_completion(n) for n in catalog.names]  # every title, even those never in the sample
    tokenizer = train_tokenizer(texts, vocab_size, space_runs_apart=bool(contract.small_model_texts))

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, tie_word_embeddings=True, bos_token_id=None,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id

    tmp = start_stage(out_dir)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    lengths = [len(tokenizer(t).input_ids) for t in texts[:500]]
    info = {"category": category, "parameters": n_params, "vocab_size": len(tokenizer), "hidden": hidden,
            "layers": layers, "heads": heads, "seed": seed, "train": "full fine-tuning, loss on the whole text",
            "mean_tokens_per_record": round(sum(lengths) / len(lengths), 1)}
    if contract.small_model_texts:  # the project's file stays as it was (it is copied into every trained model)
        info["sft_texts"] = contract.small_model_texts
    write_json(tmp / TINY_MARKER, info)
    finish_stage(out_dir)
    print(f"built {out_dir}: {n_params / 1e6:.2f}M parameters, vocab {len(tokenizer)}, "
          f"{info['mean_tokens_per_record']} tokens per training record")


def initial_weights(model, seed: int):
    """The small model with fresh random weights drawn with `seed` (the same architecture, tokenizer and generation
    settings): a run's seed decides its initialisation too, so seeds vary what a random start can vary. With the
    builder's seed it reproduces the stored weights."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    fresh.generation_config = model.generation_config
    return fresh


if __name__ == "__main__":
    run_cli(build)
