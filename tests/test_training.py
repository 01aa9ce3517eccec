"""utils/training.py: the LoRA recipe on any architecture."""
import pytest

from utils.io import UserError
from utils.training import check_lora_targets, lora_config


def test_lora_targets_must_exist_in_the_architecture(tiny_model):
    check_lora_targets(str(tiny_model), lora_config())  # all-linear: whatever the architecture calls its layers
    check_lora_targets(str(tiny_model), lora_config(targets="q_proj,v_proj"))
    with pytest.raises(UserError, match=r"--lora_targets query_key_value: no such linear layer in LlamaForCausalLM "
                                        r"\(it has .*q_proj"):
        check_lora_targets(str(tiny_model), lora_config(targets="q_proj,query_key_value"))
