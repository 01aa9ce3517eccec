"""eval/scaling.py: the model-FLOPs count against a real Llama, and the table from a hand-made run root."""
import json

import numpy as np
import pytest

from eval import scaling
from utils.io import UserError

CONFIG = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 500}


def test_matmul_params_are_the_models_weights_but_its_norms():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**CONFIG, tie_word_embeddings=True))
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    total = sum(p.numel() for p in model.parameters())  # the tied head is counted once, as the embedding
    assert scaling.matmul_params(CONFIG) == total - norms
    # and a forward pass of T tokens costs 2 N T multiply-add FLOPs in the projections: check N against the shapes
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert scaling.matmul_params(CONFIG) == linear


def test_train_flops_by_hand():
    n = scaling.matmul_params(CONFIG)
    # one record of 10 tokens: 6 N T + 6 L h T (T + 1)
    assert scaling.train_flops(CONFIG, [10]) == 6 * n * 10 + 6 * 3 * 64 * 10 * 11
    assert scaling.train_flops(CONFIG, [10, 10]) == 2 * scaling.train_flops(CONFIG, [10])


def write_model(d, ranks, hr1, hr5, decodings=("greedy", "constrained"), texts=None):
    """A hand-made evaluated model directory: eval files and per-user lists with the given target ranks."""
    d.mkdir(parents=True, exist_ok=True)
    for decoding in decodings:
        suffix = "_constrained" if decoding == "constrained" else ""
        with open(d / f"eval_users{suffix}.jsonl", "w") as f:
            for u, r in enumerate(ranks):
                f.write(json.dumps({"user": str(u), "target": 7, "target_decile": 0, "rank": r,
                                    "topk": [u % 3, 1, 2, 3, 4], "deciles": [0] * 5, "valid": True,
                                    "text": texts[u] if texts else None}) + "\n")
        for k, hr in ((1, hr1), (5, hr5)):
            (d / f"eval_top{k}{suffix}.json").write_text(json.dumps(
                {"HR": hr, "NDCG": hr / 2, "ValidRatio": 1.0, "test_records": "same"}))


def test_the_table_reads_each_point_beside_mostpop(tmp_path):
    n = 200
    pop_ranks = [None] * n
    pop_ranks[0] = 3  # MostPop: no hit at 1, one at 5
    write_model(tmp_path / "MostPop-ML100K" / "ML100K", pop_ranks, 0.0, 1 / n, decodings=("greedy",))
    model_ranks = [0 if u < 30 else None for u in range(n)]  # 30 hits at 1: far above MostPop
    d = tmp_path / "64x3-ML100K-1000" / "ML100K"
    write_model(d, model_ranks, 30 / n, 30 / n, texts=[f'"T{u % 4}"\n' for u in range(n)])
    (d / "run_config_sft.json").write_text(json.dumps({
        "args": {"train_seconds": 600.0, "train_loss": 1.5, "steps": 100, "global_batch_size": 10, "seed": 42},
        "environment": {"KERNELS": "native", "cpu_model": "a CPU"}, "settings": {"numerics": {"threads": 2}},
        "git_commit": "abcdef0123", "git_dirty": False}))
    with pytest.raises(UserError, match="scaling.json is missing"):
        scaling.collect(tmp_path)
    (d / "scaling.json").write_text(json.dumps({"parameters": 2_000_000, "train_flops": 6e13,
                                                "mean_tokens_per_record": 80.0}))
    peaks = tmp_path / "bench"
    peaks.mkdir()
    (peaks / "peak_flops-2t.json").write_text(json.dumps({"peak_flops": 2e11, "nominal_peak_flops": 2e11,
                                                          "measured_gemm_flops": 1e11, "how": "h", "file_note": "f"}))
    rows, pops = scaling.collect(tmp_path, str(peaks))
    (row,) = rows
    assert row["records_seen"] == 1000 and row["distinct_answers"] == 4
    assert row["mfu"] == pytest.approx(6e13 / 600 / 2e11)
    est, low, high = row["greedy_hr1_vs_mostpop"]
    assert est == pytest.approx(30 / n) and low > 0  # beyond noise, as 30 hits against none must be
    table = scaling.markdown(rows, pops, scaling.read_peaks(peaks))
    assert "| 64×3 | 2.00M | ML100K | 1,000 |" in table and "**+0.1500" in table and "| MostPop |" in table
    assert "| 10.0 (2) | 50.0% |" in table
    np.testing.assert_allclose(row["constrained"]["HR@5"], 30 / n)


def test_points_on_other_users_than_mostpop_are_refused(tmp_path):
    write_model(tmp_path / "MostPop-ML100K" / "ML100K", [None] * 5, 0.0, 0.0, decodings=("greedy",))
    d = tmp_path / "64x3-ML100K-1000" / "ML100K"
    write_model(d, [None] * 5, 0.0, 0.0)
    (d / "eval_top5.json").write_text(json.dumps({"HR": 0.0, "NDCG": 0.0, "test_records": "other"}))
    (d / "run_config_sft.json").write_text(json.dumps({"args": {"train_seconds": 1.0, "train_loss": 1.0, "steps": 1,
                                                                "global_batch_size": 1, "seed": 42},
                                                       "environment": {}, "settings": {"numerics": {"threads": 2}}}))
    (d / "scaling.json").write_text(json.dumps({"parameters": 1, "train_flops": 1.0, "mean_tokens_per_record": 1}))
    with pytest.raises(UserError, match="other test users"):
        scaling.collect(tmp_path)
