"""utils/training.py: the LoRA recipe on any architecture."""
import pytest

from utils.io import UserError
from utils.training import check_lora_targets, device_args, lora_config, parse_fields, with_fields


def test_lora_targets_must_exist_in_the_architecture(tiny_model):
    check_lora_targets(str(tiny_model), lora_config())  # all-linear: whatever the architecture calls its layers
    check_lora_targets(str(tiny_model), lora_config(targets="q_proj,v_proj"))
    with pytest.raises(UserError, match=r"--lora_targets query_key_value: no such linear layer in LlamaForCausalLM "
                                        r"\(it has .*q_proj"):
        check_lora_targets(str(tiny_model), lora_config(targets="q_proj,query_key_value"))


def test_extra_trainer_and_lora_fields_pass_through():
    """Any other field of trl's configs or peft's LoraConfig, as name=value with YAML values; the recipe constants may
    be overridden, the fields the stage sets from its own options may not."""
    from trl import DPOConfig, SFTConfig

    assert parse_fields("weight_decay=0.01 use_rslora=true target_modules=[q_proj,v_proj] name='a b'", "--x") == {
        "weight_decay": 0.01, "use_rslora": True, "target_modules": ["q_proj", "v_proj"], "name": "a b"}
    assert parse_fields("", "--x") == {}
    base = {"output_dir": "unused", "learning_rate": 2e-5, "lr_scheduler_type": "linear", "report_to": "none",
            **device_args()}
    extra = "label_smoothing=0.1 lr_scheduler_type=constant"
    config = DPOConfig(**with_fields(base, extra, DPOConfig, "--trainer_args"))
    assert (config.label_smoothing, config.lr_scheduler_type, config.learning_rate) == (0.1, "constant", 2e-5)
    assert SFTConfig(**with_fields(base, "weight_decay=0.01", SFTConfig, "--trainer_args")).weight_decay == 0.01
    with pytest.raises(UserError, match="the stage sets it from its own options"):
        with_fields(base, "learning_rate=1e-3", SFTConfig, "--trainer_args")
    lora = lora_config(8, 16, 0.0, "q_proj,v_proj", "use_rslora=true")
    assert lora.use_rslora and lora.r == 8 and set(lora.target_modules) == {"q_proj", "v_proj"}
    with pytest.raises(UserError, match="--lora_args r: the stage sets it"):
        lora_config(extra="r=4")


def test_an_extra_trainer_field_reaches_the_trainer_and_the_run_config(tiny_model, tmp_path):
    """SFT with --trainer_args max_steps=2 stops after 2 optimizer steps (4 without it) and records the field."""
    import json
    import os
    import subprocess
    import sys

    from conftest import ROOT

    out = tmp_path / "sft"
    p = subprocess.run([sys.executable, "-m", "train.sft", "--output_dir", str(out), "--base_model", str(tiny_model),
                        "--sample_size", "16", "--valid_sample_size", "4", "--epochs", "1", "--global_batch_size", "4",
                        "--per_device_batch_size", "4", "--trainer_args", "max_steps=2 weight_decay=0.01"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert p.returncode == 0, p.stderr[-3000:]
    config = json.loads((out / "run_config_sft.json").read_text())
    assert config["args"]["steps"] == 2 and config["settings"]["trainer_args"] == "max_steps=2 weight_decay=0.01"
