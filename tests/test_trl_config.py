"""utils/trl_config.py: the LoRA recipe on any architecture."""
import pytest

from utils.io import UserError
from utils.recipe import RECIPES, resolve
from utils.trl_config import batch_plan, check_lora_targets, lora_config, schedule_args

LORA = resolve(RECIPES / "pretrained-gpu.yaml", sections=("lora",))["lora"]


def test_lora_targets_must_exist_in_the_architecture(tiny_model):
    check_lora_targets(str(tiny_model), lora_config(LORA))  # all-linear: whatever the architecture calls its layers
    check_lora_targets(str(tiny_model), lora_config({**LORA, "target_modules": "q_proj,v_proj"}))
    with pytest.raises(UserError, match=r"lora.target_modules query_key_value: no such linear layer in "
                                        r"LlamaForCausalLM \(it has .*q_proj"):
        check_lora_targets(str(tiny_model), lora_config({**LORA, "target_modules": ["q_proj", "query_key_value"]}))


def test_any_lora_field_reaches_peft():
    lora = lora_config({**LORA, "r": 8, "target_modules": "q_proj,v_proj", "use_rslora": True})
    assert lora.use_rslora and lora.r == 8 and set(lora.target_modules) == {"q_proj", "v_proj"}
    assert lora.task_type == "CAUSAL_LM" and lora_config(LORA).target_modules == "all-linear"


def test_an_extra_trainer_field_reaches_the_trainer_and_the_run_config(tiny_model, tmp_path):
    """SFT with the override sft.max_steps=2 stops after 2 optimizer steps (4 without it) and records the field."""
    import json

    from conftest import run_module

    out = tmp_path / "sft"
    p = run_module("train.sft", "--output_dir", out, "--base_model", tiny_model, "--recipe_args",
                   "sft.sample_size=16 sft.valid_sample_size=4 sft.num_train_epochs=1 sft.global_batch_size=4 "
                   "sft.per_device_train_batch_size=4 sft.max_steps=2 sft.weight_decay=0.01")
    assert p.returncode == 0, p.stderr[-3000:]
    config = json.loads((out / "run_config_sft.json").read_text())
    recorded = config["settings"]["resolved_recipe"]["sft"]
    assert config["args"]["steps"] == 2 and (recorded["max_steps"], recorded["weight_decay"]) == (2, 0.01)
    assert config["args"]["recipe"].endswith("recipes/small.yaml")  # the small model's own recipe


@pytest.mark.parametrize("global_batch, per_device, processes, expected", [
    (16, 16, 1, (16, 1)),   # as the recipe says
    (16, 4, 1, (4, 4)),     # a per-device batch that divides: taken as it is
    (16, 16, 2, (8, 1)),    # CPU_PROCESSES=2 with the small recipe: the upper bound, not an error
    (8, 2, 8, (1, 1)),      # the GPU recipe's DPO (global 8, 2 per device) on 8 GPUs
    (12, 8, 1, (6, 2)),     # the largest divisor of the share under the bound
    (64, 16, 2, (16, 2)),
])
def test_the_per_device_batch_is_an_upper_bound(global_batch, per_device, processes, expected):
    plan = batch_plan(global_batch, per_device, processes)
    assert (plan["per_device_batch_size"], plan["grad_accum"]) == expected
    assert plan["per_device_batch_size"] * plan["grad_accum"] * processes == global_batch  # the same optimizer steps


@pytest.mark.parametrize("global_batch, per_device, processes, message", [
    (4, 2, 8, "global batch 4 does not split evenly over 8 process(es)"),
    (15, 4, 2, "global batch 15 does not split evenly over 2 process(es)"),
    (0, 4, 1, "global batch 0 and per-device batch 4 must be positive integers"),
])
def test_a_global_batch_that_cannot_be_split_is_one_line(global_batch, per_device, processes, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        batch_plan(global_batch, per_device, processes)


def test_the_cpu_trains_in_fp32_unless_bf16_kernels_are_asked_for(monkeypatch):
    """KERNELS=bf16 is bf16 autocast on a CPU that does bf16 in hardware, and a one-line refusal on one that does not
    (emulated bf16 is slower than fp32); any other KERNELS trains in fp32."""
    import torch

    from utils.device import half_precision
    from utils.trl_config import device_args

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    for kernels in ("portable", "native"):
        monkeypatch.setenv("KERNELS", kernels)
        assert half_precision() is None
        assert device_args() == {"bf16": False, "fp16": False, "use_cpu": True, "activation_checkpointing": False,
                                 "ddp_find_unused_parameters": False}
    monkeypatch.setenv("KERNELS", "bf16")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert half_precision() == "bf16"
    assert device_args()["bf16"] is True and device_args()["use_cpu"] is True
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(UserError, match=r"KERNELS=bf16 needs a CPU with bf16 instructions .* use KERNELS=native"):
        half_precision()


def test_the_head_scores_the_labelled_positions_alone_with_the_same_log_probs(monkeypatch):
    """score_labelled_positions_only switches trl's fused head to its compact path on the CPU: the loss, the per-token
    log-probabilities and the gradients equal the full path's (every position projected), within float rounding."""
    import torch
    import trl.trainer.utils as trl_utils
    from transformers import LlamaConfig, LlamaForCausalLM

    from utils.trl_config import score_labelled_positions_only

    monkeypatch.setattr(trl_utils, "_use_triton", trl_utils._use_triton)  # restored after the test
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    trl_utils.add_fused_lm_head(model)
    ids = torch.randint(0, 300, (3, 12))
    labels = ids.clone()
    labels[:, :9] = -100  # a prompt, then a 3-token answer
    labels[2, 9:] = -100  # a row with no label at all

    def scored():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), out.log_probs.detach(), [p.grad.clone() for p in model.parameters()]

    full = scored()
    score_labelled_positions_only()
    score_labelled_positions_only()  # a second call changes nothing
    assert trl_utils._use_triton(torch.device("cpu")) and trl_utils._use_triton.compact_on_cpu
    compact = scored()
    torch.testing.assert_close(compact[0], full[0])
    torch.testing.assert_close(compact[1], full[1])
    assert (compact[1][labels[:, 1:] == -100] == 0).all()
    for a, b in zip(compact[2], full[2]):
        torch.testing.assert_close(a, b)


def authors_best_step(losses: list[float], save_steps: int) -> int | None:
    """The checkpoint transformers 4.44 loaded at the end, as the authors ran it (evaluated at every step): the
    validation loss is compared only when a checkpoint is saved, every `save_steps` steps and at the last step, and a
    save becomes the best when its loss is strictly below the best save's so far."""
    best, chosen = float("inf"), None
    for step, loss in enumerate(losses, 1):
        if (step % save_steps == 0 or step == len(losses)) and loss < best:
            best, chosen = loss, step
    return chosen


@pytest.mark.parametrize("losses", [
    [5, 1, 4, 2, 3, 3, 3, 3.5, 3, 2.5],  # the lowest loss between saves (step 2): the best save is step 4
    [5, 4, 4, 3, 1, 2, 2, 2.5, 0.5, 2.0],  # saves at 3, 2.5, 2.0: the last step; the lowest (step 9) between
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0.5],  # falling to the end: the last step
])
def test_the_best_checkpoint_is_the_authors_best_save(losses, tmp_path):
    """A real transformers Trainer with the arguments schedule_args gives a recipe that keeps the best checkpoint
    (10 steps, a save every 4: steps 4, 8 and 10), whose validation loss at step s is losses[s - 1]: the checkpoint it
    loads is the one the authors' transformers 4.44 chose. Evaluating between the saves as well (every step, below)
    makes transformers 5 choose another where the lowest loss falls between saves."""
    import torch
    from transformers import Trainer, TrainingArguments

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 1)

        def forward(self, x, labels=None):
            return {"loss": ((self.w(x) - labels) ** 2).mean()}

    class SyntheticLoss(Trainer):
        def evaluate(self, *args, **kwargs):
            metrics = {"eval_loss": float(losses[self.state.global_step - 1])}
            self.log(metrics)
            return metrics

    def chosen_step(schedule: dict, name: str) -> int | None:
        args = TrainingArguments(output_dir=str(tmp_path / name), max_steps=len(losses), learning_rate=0.01,
                                 save_strategy="steps", save_steps=4, load_best_model_at_end=True,
                                 save_total_limit=1, use_cpu=True, report_to="none", disable_tqdm=True,
                                 **schedule)
        data = [{"x": torch.ones(1), "labels": torch.zeros(1)}] * 8
        trainer = SyntheticLoss(model=Model(), args=args, train_dataset=data, eval_dataset=data[:1])
        trainer.train()
        best = trainer.state.best_model_checkpoint
        return int(best.rsplit("-", 1)[-1]) if best else None

    plan = batch_plan(1, 1, 1)
    schedule = schedule_args(len(losses), 1, plan, 3, 0, capped=False, save_steps=4)
    assert schedule["eval_steps"] == 4 and schedule["eval_strategy"] == "steps"
    assert chosen_step(schedule, "at-saves") == authors_best_step(losses, 4)
    if min(losses) not in [losses[s - 1] for s in (4, 8, 10)]:  # evaluating between saves chooses otherwise
        assert chosen_step(schedule | {"eval_steps": 1}, "every-step") != authors_best_step(losses, 4)
