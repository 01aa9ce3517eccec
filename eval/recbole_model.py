"""RecBole's part of eval/sasrec.py: the one module that imports RecBole, so it runs only in .venv-recbole
(bash shell/setup.sh envs/recbole), never in the project's .venv.

RecBole 1.2.1 reads the atomic files eval/sasrec.py writes (one row per interaction; `timestamp` is the item's place
in its user's sequence, so RecBole's time order is the project's order exactly), turns each user's sequence into
prefix -> next item rows (at most MAX_ITEM_LIST_LENGTH items of prefix) and splits them leave-one-out: each user's
last row (target: the test item) is its test set, the row before (the valid item) its valid set, every earlier row
its train set. `check_split` verifies that on the built datasets. RecBole's Trainer trains on the train set and stops
early on the valid set; the best epoch's weights are kept in memory and put back (`_KeepBest`: RecBole's own loader
would need torch.load without weights_only). RecBole's test set is never evaluated: `score` runs our own forward pass.
"""
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed
from torch.nn.utils.clip_grad import clip_grad_norm_

# The models eval/sasrec.py offers (its MODELS), each with its architecture settings (RecBole's
# properties/model/<model>.yaml), recorded in the run config.
ARCHITECTURE = {"SASRec": ("hidden_size", "inner_size", "n_layers", "n_heads", "hidden_dropout_prob",
                           "attn_dropout_prob", "hidden_act", "layer_norm_eps", "initializer_range"),
                "GRU4Rec": ("embedding_size", "hidden_size", "num_layers", "dropout_prob")}
USER, ITEM, TIME = "user_id", "item_id", "timestamp"
VALID_METRIC = "NDCG@10"  # early stopping: NDCG@10 of the valid item over the whole catalog


def versions() -> dict:
    """What a run config records of this environment (the project's stage helpers list the project's packages)."""
    return {p: version(p) for p in ("recbole", "torch", "numpy", "pandas", "scipy")}


class _KeepBest(Trainer):
    """RecBole's Trainer with its best epoch's weights kept in memory instead of a checkpoint file, and each epoch's
    training loss, valid score and seconds recorded (the run config's curve)."""

    def __init__(self, config, model, say):
        super().__init__(config, model)
        if self.enable_amp or not config["single_spec"]:
            raise ValueError("this Trainer runs RecBole's single-process epoch without mixed precision only")
        self.best_epoch, self.best_state, self.curve, self.say = None, None, [], say
        self._epoch_start = time.perf_counter()

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One pass over the train rows, as RecBole's own epoch runs in one process without mixed precision (its
        defaults: enable_amp and enable_scaler off), minus its torch.cuda.amp.GradScaler, which torch 2.x deprecates
        (a FutureWarning every epoch) and which, disabled, only passes the loss and the step through."""
        self.model.train()
        loss_func = loss_func or self.model.calculate_loss
        total = 0.0
        for interaction in train_data:
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad()
            loss = loss_func(interaction)
            total += loss.item()
            self._check_nan(loss)
            loss.backward()
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            self.optimizer.step()
        return total

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """Called by fit() whenever the valid score improves."""
        self.best_epoch = epoch
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def end_of_epoch(self, epoch, valid_score):
        """fit()'s callback after each evaluated epoch."""
        now = time.perf_counter()
        loss = float(self.train_loss_dict[epoch])
        self.curve.append({"epoch": epoch, "train_loss": round(loss, 4), VALID_METRIC: round(float(valid_score), 4),
                           "seconds": round(now - self._epoch_start, 1)})
        best = " (best)" if self.best_epoch == epoch else ""
        self.say(f"epoch {epoch}: train loss {loss:.4f}, valid {VALID_METRIC} {valid_score:.4f}{best}, "
                 f"{now - self._epoch_start:.1f} s")
        self._epoch_start = now


@dataclass(frozen=True)
class Training:
    """How a model is trained (eval/sasrec.py's options): the history items it reads, the most epochs, the epochs
    without a better valid score before it stops, the seed, and RecBole's other settings (`hyper`)."""
    max_len: int
    epochs: int
    patience: int
    seed: int
    hyper: dict


def build_config(model: str, data_path: Path, name: str, scratch: Path, t: Training) -> Config:
    """RecBole's configuration: the leave-one-out split on our time order, full-catalog evaluation of the valid item,
    and the model's hyperparameters (RecBole's defaults unless `t.hyper` sets them)."""
    settings = {
        "data_path": str(data_path), "checkpoint_dir": str(scratch / "saved"),
        "USER_ID_FIELD": USER, "ITEM_ID_FIELD": ITEM, "TIME_FIELD": TIME,
        # every catalog item is a RecBole item (the .item file), interacted with or not, so every item gets a score
        "load_col": {"inter": [USER, ITEM, TIME], "item": [ITEM]},
        "MAX_ITEM_LIST_LENGTH": t.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "train_neg_sample_args": None, "loss_type": "CE",  # softmax over the whole catalog: no sampled negatives
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": VALID_METRIC,
        "epochs": t.epochs, "stopping_step": t.patience, "seed": t.seed, "reproducibility": True,
        "use_gpu": torch.cuda.is_available(), "show_progress": False, "log_wandb": False, "worker": 0,
        **t.hyper,
    }
    saved, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config also reads --key=value from the command line
    try:
        return Config(model=model, dataset=name, config_dict=settings)
    finally:
        sys.argv = saved


def check_split(splits: dict, sequences: dict, max_len: int) -> None:
    """RecBole's train / valid / test rows must be exactly the project's: for a user with sequence s of n items, the
    train rows target s[1] .. s[n-3], the valid row s[n-2], the test row s[n-1], each with the (at most max_len)
    items before it as its prefix, in order. So no valid or test item is ever a train target or in a train prefix."""
    expected_targets = {"train": lambda n: range(1, n - 2), "valid": lambda n: [n - 2], "test": lambda n: [n - 1]}
    positions = {}  # user -> {catalog row: its place in the user's sequence} (items are distinct per user)
    for part, dataset in splits.items():
        feat = dataset.inter_feat
        users = dataset.id2token(USER, feat[USER].numpy())
        rows = np.array([-1] + [int(t) for t in dataset.field2id_token[ITEM][1:]])  # RecBole id -> catalog row
        targets = rows[feat[ITEM].numpy()]
        prefixes = rows[feat[ITEM + "_list"].numpy()]
        lengths = feat["item_length"].numpy()
        seen = {}
        for user, target, prefix, length in zip(users, targets, prefixes, lengths):
            seq = sequences.get(user)
            if seq is None:
                raise AssertionError(f"RecBole's {part} set has user {user}, who has no sequence")
            if user not in positions:
                positions[user] = {r: i for i, r in enumerate(seq)}
            t = positions[user].get(int(target), -1)
            if t < 0 or prefix[:length].tolist() != seq[max(0, t - max_len):t] or (prefix[length:] != -1).any():
                raise AssertionError(f"RecBole's {part} row of user {user} (target row {target}) is not the "
                                     f"project's sequence up to that item")
            seen.setdefault(user, []).append(t)
        for user, seq in sequences.items():
            want = list(expected_targets[part](len(seq)))
            if sorted(seen.get(user, [])) != want:
                raise AssertionError(f"RecBole's {part} set targets positions {sorted(seen.get(user, []))} of user "
                                     f"{user}'s {len(seq)} items, not {want}")


def train(model_name: str, data_path: Path, name: str, sequences: dict, t: Training, say=print):
    """Train on RecBole's train set, early-stopped on its valid set. Returns (the model at its best epoch, the
    dataset (RecBole's item ids), facts for the run config)."""
    if model_name not in ARCHITECTURE:
        raise ValueError(f"model must be one of {', '.join(ARCHITECTURE)}, got {model_name!r}")
    with tempfile.TemporaryDirectory(prefix="recbole-") as scratch:
        config = build_config(model_name, data_path, name, Path(scratch), t)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        check_split({"train": train_data._dataset, "valid": valid_data._dataset, "test": test_data._dataset},
                    sequences, t.max_len)
        say(f"RecBole's leave-one-out split equals the project's sequences: {len(train_data._dataset)} train rows, "
            f"{len(valid_data._dataset)} valid, {len(test_data._dataset)} test (never trained on, never evaluated)")
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        # RecBole's Trainer writes TensorBoard events under ./log_tensorboard: in the scratch directory, discarded
        here = os.getcwd()
        os.chdir(scratch)
        try:
            trainer = _KeepBest(config, model, say)
            start = time.perf_counter()
            trainer.fit(train_data, valid_data, verbose=False, saved=True, show_progress=False,
                        callback_fn=trainer.end_of_epoch)
            seconds = time.perf_counter() - start
        finally:
            os.chdir(here)
    if trainer.best_state is None:
        raise RuntimeError("RecBole's Trainer never evaluated the valid set (epochs < 1?)")
    model.load_state_dict(trainer.best_state)
    hyper_used = {k: config[k] for k in (*ARCHITECTURE[model_name], "learning_rate", "train_batch_size",
                                         "eval_batch_size", "weight_decay", "learner", "loss_type")}
    facts = {"library": "RecBole", "library_versions": versions(), "epochs_run": len(trainer.curve),
             "best_epoch": trainer.best_epoch, "best_valid": {k: round(float(v), 4) for k, v in
                                                              trainer.best_valid_result.items()},
             "valid_metric": VALID_METRIC, "train_seconds": round(seconds, 1),
             "seconds_per_epoch": round(seconds / max(1, len(trainer.curve)), 1),
             "hyperparameters": hyper_used, "parameters": sum(p.numel() for p in model.parameters()),
             "train_rows": len(train_data._dataset), "device": str(config["device"]),
             "torch_threads": torch.get_num_threads(), "curve": trainer.curve}
    return model, dataset, facts


@torch.no_grad()
def score(model, dataset, inputs: list[list[int]], n_items: int, batch: int = 1024) -> np.ndarray:
    """(N, n_items) scores of every catalog row for each input sequence (catalog rows, oldest first; the last
    max_len are used), by the model's own full-catalog scoring. Nothing is masked: items already in the input are
    scored like any other."""
    model.eval()
    max_len = model.max_seq_length
    to_id = {int(t): i for i, t in enumerate(dataset.field2id_token[ITEM]) if i > 0}
    missing = sorted({r for seq in inputs for r in seq} - set(to_id))
    if missing:
        raise ValueError(f"catalog rows {missing[:5]} are not RecBole items")
    columns = np.array(sorted(to_id.values()))
    rows = np.array([int(dataset.field2id_token[ITEM][c]) for c in columns])
    out = np.full((len(inputs), n_items), -math.inf, dtype=np.float32)
    device = next(model.parameters()).device
    for start in range(0, len(inputs), batch):
        chunk = [seq[-max_len:] for seq in inputs[start:start + batch]]
        ids = torch.zeros((len(chunk), max_len), dtype=torch.long)
        for i, seq in enumerate(chunk):
            ids[i, :len(seq)] = torch.tensor([to_id[r] for r in seq])
        lengths = torch.tensor([len(seq) for seq in chunk], dtype=torch.long)
        inter = Interaction({model.ITEM_SEQ: ids, model.ITEM_SEQ_LEN: lengths}).to(device)
        scores = model.full_sort_predict(inter).float().cpu().numpy()
        out[start:start + len(chunk)][:, rows] = scores[:, columns]
    return out

