"""The paper's baselines: multi-negative DPO losses (S-DPO, DMPO) and their trainer, genre re-weighted SFT, and the
offline negatives (random k, semantic)."""
import json
import math
import random

import numpy as np
import pytest
import torch

from train import dpo, self_play
from utils.data import Catalog, load_catalog, load_split
from utils.io import UserError
from utils.prompt import record_history, record_target, render_completion, render_prompt
from utils.trl_config import genre_weights, record_weights

# ------------------------------------------------------------------------------------------------ the losses
CHOSEN = torch.tensor([0.5, -1.0])  # Δ_c = log π(y_c|x) − log π_ref(y_c|x), one per prompt
REJECTED = torch.tensor([[0.2, 1.0, -0.3], [-2.0, 0.0, 0.5]])  # Δ_j of the k = 3 negatives
BETA = 0.5


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_sdpo_loss_by_hand():
    from utils.custom_losses import sdpo_loss

    expected = [-log_sigmoid(-math.log(sum(math.exp(BETA * (r - c)) for r in rs)))
                for c, rs in zip(CHOSEN.tolist(), REJECTED.tolist())]
    assert sdpo_loss(CHOSEN, REJECTED, BETA).tolist() == pytest.approx(expected, rel=1e-6)


def test_dmpo_loss_by_hand():
    from utils.custom_losses import dmpo_loss

    expected = [-log_sigmoid(BETA * sum(c - r for r in rs)) for c, rs in zip(CHOSEN.tolist(), REJECTED.tolist())]
    assert dmpo_loss(CHOSEN, REJECTED, BETA).tolist() == pytest.approx(expected, rel=1e-6)


def test_with_one_negative_both_losses_are_dpo():
    from utils.custom_losses import dmpo_loss, sdpo_loss

    one = REJECTED[:, :1]
    dpo_loss = -torch.nn.functional.logsigmoid(BETA * (CHOSEN - one[:, 0]))
    assert torch.allclose(sdpo_loss(CHOSEN, one, BETA), dpo_loss)
    assert torch.allclose(dmpo_loss(CHOSEN, one, BETA), dpo_loss)


def test_sdpo_stays_finite_for_large_margins():
    from utils.custom_losses import sdpo_loss

    loss = sdpo_loss(torch.tensor([0.0]), torch.tensor([[1e4, -1e4]]), 1.0)
    assert torch.isfinite(loss).all() and loss.item() == pytest.approx(1e4)


# ------------------------------------------------------------------------------------------------ the trainer
def pairs_for(ml100k, n: int, k: int) -> list[dict]:
    catalog = load_catalog(ml100k)
    rng = random.Random(0)
    out = []
    for r in load_split(ml100k, "train")[:n]:
        names = self_play.random_negatives({record_target(r), *record_history(r)}, catalog, rng, k)
        out.append({"prompt": render_prompt(r), "chosen": render_completion(record_target(r)),
                    "rejected": render_completion(names[0]),
                    "extra_rejected": [render_completion(x) for x in names[1:]]})
    return out


def make_trainer(model_dir, pairs, loss: str | None, tmp_path):
    """trl's DPOTrainer (loss None) or the multi-negative one, on the small model; the policy is then perturbed so
    that it differs from the reference (at the start both are the same model and every log-ratio is 0)."""
    from trl import DPOConfig, DPOTrainer

    from utils.custom_losses import MultiNegativeDPOTrainer
    from utils.modeling import load_model, load_tokenizer
    from utils.trl_config import device_args, preference_dataset

    config = DPOConfig(output_dir=str(tmp_path / "out"), beta=BETA, per_device_train_batch_size=len(pairs),
                       report_to="none", save_strategy="no", **device_args())
    kwargs = dict(model=load_model(str(model_dir), trainable=True), ref_model=None, args=config,
                  train_dataset=preference_dataset(pairs, multi_negative=loss is not None),
                  processing_class=load_tokenizer(str(model_dir)))
    trainer = MultiNegativeDPOTrainer(loss=loss, **kwargs) if loss else DPOTrainer(**kwargs)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return trainer


def batch_loss(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch).item(), batch


def test_sdpo_with_one_negative_equals_trls_sigmoid_dpo(ml100k, tiny_model, tmp_path):
    pairs = pairs_for(ml100k, 4, 1)
    trl_loss, _ = batch_loss(make_trainer(tiny_model, pairs, None, tmp_path))
    ours, _ = batch_loss(make_trainer(tiny_model, pairs, "sdpo", tmp_path))
    assert trl_loss != pytest.approx(math.log(2), abs=1e-4)  # the policy really differs from the reference
    assert ours == pytest.approx(trl_loss, rel=1e-5)


def sequence_logps(model, batch) -> torch.Tensor:
    """Σ log p(completion token) per row, from the plain logits (not trl's fused head)."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    token = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    return (token * batch["completion_mask"][:, 1:]).sum(1)


@pytest.mark.parametrize("loss", ["sdpo", "dmpo"])
def test_multi_negative_trainer_by_hand(ml100k, tiny_model, tmp_path, loss):
    """k = 3: the batch stacks [chosen; rejected_1; rejected_2; rejected_3], each row the prompt and its completion,
    and the loss is the hand formula on log-ratios recomputed from the plain logits."""
    from utils.custom_losses import MULTI_NEGATIVE_LOSSES

    pairs = pairs_for(ml100k, 3, 3)
    trainer = make_trainer(tiny_model, pairs, loss, tmp_path)
    ours, batch = batch_loss(trainer)
    assert batch["input_ids"].shape[0] == 3 * 4
    tok = trainer.processing_class
    rows = [tok.decode(ids[mask.bool()]).replace(tok.eos_token, "")
            for ids, mask in zip(batch["input_ids"], batch["completion_mask"])]
    by_chosen = {p["chosen"]: p for p in pairs}  # the loader shuffles the pairs
    order = [by_chosen[c] for c in rows[:3]]
    assert rows[3:] == [[p["rejected"], *p["extra_rejected"]][j] for j in range(3) for p in order]
    ratios = (sequence_logps(trainer.model, batch) - sequence_logps(trainer.ref_model, batch)).view(4, 3).T
    expected = MULTI_NEGATIVE_LOSSES[loss](ratios[:, 0], ratios[:, 1:], BETA).mean().item()
    assert ours == pytest.approx(expected, rel=1e-4)


def test_a_short_sdpo_step_through_train_dpo(ml100k, tiny_model, tmp_path):
    """train/dpo.py with dpo.loss_type=sdpo on a handful of 3-negative pairs: trains, records the pairs and steps."""
    data = tmp_path / "data"
    data.mkdir()
    pairs = pairs_for(ml100k, 10, 3)
    for name, rows in (("dpo_train.jsonl", pairs[:8]), ("dpo_valid.jsonl", pairs[8:])):
        (data / name).write_text("".join(json.dumps(p) + "\n" for p in rows))
    dpo.main(dpo.Args(model_dir=str(tiny_model), data_dir=str(data), output_dir=str(tmp_path / "DPO"),
                      recipe_args="dpo.loss_type=sdpo dpo.global_batch_size=4 dpo.per_device_train_batch_size=4 "
                      "dpo.evals_per_run=1"))
    config = json.loads((tmp_path / "DPO/run_config_dpo.json").read_text())["args"]
    assert config["steps"] == 2 and config["pairs"] == 8 and config["negatives_per_pair"] == 3
    assert math.isfinite(config["train_loss"])


def test_pairs_with_several_negatives_need_a_multi_negative_loss(ml100k, tiny_model, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(json.dumps(p) + "\n" for p in pairs_for(ml100k, 2, 3))
    (data / "dpo_train.jsonl").write_text(rows)
    (data / "dpo_valid.jsonl").write_text(rows)
    with pytest.raises(UserError, match="the pairs have 3 rejected items each; dpo.loss_type sigmoid uses one"):
        dpo.main(dpo.Args(model_dir=str(tiny_model), data_dir=str(data), output_dir=str(tmp_path / "DPO")))
    with pytest.raises(UserError, match="cannot be combined"):
        dpo.main(dpo.Args(model_dir=str(tiny_model), data_dir=str(data), output_dir=str(tmp_path / "DPO"),
                          recipe_args="dpo.loss_type=[sdpo,sft]"))
    with pytest.raises(UserError, match="dpo.precompute_ref_log_probs works with trl's own losses"):  # not k of them
        dpo.main(dpo.Args(model_dir=str(tiny_model), data_dir=str(data), output_dir=str(tmp_path / "DPO"),
                          recipe_args="dpo.loss_type=sdpo dpo.precompute_ref_log_probs=true"))
    (data / "dpo_valid.jsonl").write_text(rows.splitlines()[0] + "\n" + json.dumps(
        {"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    with pytest.raises(UserError, match="line 2 has 1 rejected items, line 1 has 3"):
        dpo.main(dpo.Args(model_dir=str(tiny_model), data_dir=str(data), output_dir=str(tmp_path / "DPO"),
                          recipe_args="dpo.loss_type=sdpo"))
    assert not (tmp_path / "DPO").exists()


def test_a_precomputed_reference_trains_the_same_dpo_step(ml100k, tiny_model, tmp_path):
    """dpo.precompute_ref_log_probs scores the reference once before training: the same losses and weights as scoring
    it inside every step (up to float noise)."""
    import torch
    from safetensors.torch import load_file

    data = tmp_path / "data"
    data.mkdir()
    pairs = [{k: v for k, v in p.items() if k != "extra_rejected"} for p in pairs_for(ml100k, 10, 1)]
    for name, rows in (("dpo_train.jsonl", pairs[:8]), ("dpo_valid.jsonl", pairs[8:])):
        (data / name).write_text("".join(json.dumps(p) + "\n" for p in rows))
    for precompute in (False, True):
        dpo.main(dpo.Args(model_dir=str(tiny_model), data_dir=str(data), output_dir=str(tmp_path / f"DPO{precompute}"),
                          recipe_args="dpo.global_batch_size=4 dpo.per_device_train_batch_size=4 dpo.evals_per_run=0 "
                          f"dpo.precompute_ref_log_probs={str(precompute).lower()}"))
    losses = [json.loads((tmp_path / f"DPO{p}/run_config_dpo.json").read_text())["args"]["train_loss"]
              for p in (False, True)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    plain, pre = (load_file(str(tmp_path / f"DPO{p}/model.safetensors")) for p in (False, True))
    assert all(torch.allclose(plain[k], pre[k], atol=1e-5) for k in plain)


# ------------------------------------------------------------------------------------------------ genre weights
def small_catalog(name2genre: dict) -> Catalog:
    names = list(name2genre)
    genres = sorted({g for gs in name2genre.values() for g in gs})
    return Catalog(ids=np.arange(len(names)), names=names, name2genre=name2genre, genres=genres)


def rec(history, target):
    return {"instruction": "", "input": "", "output": "", "history": history, "target": target}


def test_genre_weights_by_hand():
    catalog = small_catalog({"a": ["X"], "b": ["Y"], "c": ["X", "Y"], "d": ["Z"], "e": []})
    records = [rec(["a", "a"], "b"), rec(["a", "c"], "c"), rec(["b", "e"], "e")]
    # history items: a, a, a (X each), c (X 1/2, Y 1/2), b (Y), e (no genre): X 3.5, Y 1.5, Z 0 of 5
    # targets: b (Y), c (X 1/2, Y 1/2), e (none): X 0.5, Y 1.5, Z 0 of 2
    w = genre_weights(records, catalog)
    assert dict(zip(catalog.genres, w.tolist())) == pytest.approx({"X": (3.5 / 5) / (0.5 / 2),
                                                                   "Y": (1.5 / 5) / (1.5 / 2), "Z": 0.0})
    # a record's weight: the mean weight of its target's genres; 1 when the target has none (or is not an item)
    assert record_weights(records + [rec([], "unknown")], catalog, w) == pytest.approx(
        [w[1], (w[0] + w[1]) / 2, 1.0, 1.0])


def test_genre_weighting_needs_genres():
    catalog = small_catalog({"a": [], "b": []})
    with pytest.raises(UserError, match="genre re-weighting needs item genres"):
        genre_weights([rec(["a"], "b")], catalog)


def test_weighted_sft_loss_scales_each_records_tokens(tiny_model, tmp_path):
    """Weights (1, 1) give trl's loss; (w0, w1) give (w0·nll_0 + w1·nll_1) / (tokens of both), the token sums
    taken from trl's own loss on each record alone."""
    from trl import SFTConfig, SFTTrainer

    from utils.custom_losses import WeightedSFTTrainer
    from utils.modeling import load_model, load_tokenizer
    from utils.trl_config import device_args, sft_dataset

    records = [rec(["Toy Story (1995)"], "GoldenEye (1995)"), rec(["Four Rooms (1995)"], "Get Shorty (1995)")]
    for r in records:
        r["input"] = ", ".join(f'"{h}"' for h in r["history"])

    def loss_of(trainer_class, records, weights=None):
        config = SFTConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, report_to="none",
                           save_strategy="no", completion_only_loss=True, **device_args())
        trainer = trainer_class(model=load_model(str(tiny_model), trainable=True), args=config,
                                train_dataset=sft_dataset(records, weights=weights),
                                processing_class=load_tokenizer(str(tiny_model)))
        batch = next(iter(trainer.get_train_dataloader()))
        tokens = int((batch["labels"] != -100).sum())
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, batch).item(), tokens

    plain, _ = loss_of(SFTTrainer, records)
    assert loss_of(WeightedSFTTrainer, records, [1.0, 1.0])[0] == pytest.approx(plain, rel=1e-6)
    (l0, n0), (l1, n1) = loss_of(SFTTrainer, records[:1]), loss_of(SFTTrainer, records[1:])
    weighted, _ = loss_of(WeightedSFTTrainer, records, [2.0, 0.5])
    assert weighted == pytest.approx((2.0 * l0 * n0 + 0.5 * l1 * n1) / (n0 + n1), rel=1e-5)


# ------------------------------------------------------------------------------------------------ negatives
def test_semantic_negative_is_the_argmin_of_mean_cosine_similarity():
    emb = np.array([[1, 0], [0, 1], [1, 1], [-1, 0.1], [-1, -0.2], [0.5, -1]], dtype=np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    # history = rows 0 and 2; mean cosine similarity of every row to them, by hand
    mean_cos = [np.mean([unit[i] @ unit[h] for h in (0, 2)]) for i in range(len(emb))]
    expected = int(np.argmin(mean_cos))
    assert self_play.semantic_negative([0, 2], [], unit) == expected
    # the argmin excluded (an item the user interacted with): the next least similar one
    rest = [i for i in np.argsort(mean_cos, kind="stable") if i != expected]
    assert self_play.semantic_negative([0, 2], [expected], unit) == rest[0]
    assert self_play.semantic_negative([], [], unit) is None
