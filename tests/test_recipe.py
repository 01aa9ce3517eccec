"""utils/recipe.py: the recipe files, their overrides, and what a stage records of them."""
import pytest

from utils.io import UserError
from utils.provenance import flat_settings, result_settings
from utils.recipe import RECIPES, STAGE_SECTIONS, default_recipe, parse_overrides, read_recipe, resolve, trainer_fields


@pytest.mark.parametrize("name", ["small.yaml", "pretrained-gpu.yaml", "pretrained-cpu.yaml"])
def test_every_shipped_recipe_builds_trl_and_peft_configs(name):
    """Each section is accepted by the config class it is for (trl's and peft's current field names)."""
    from peft import LoraConfig
    from trl import DPOConfig, SFTConfig

    from utils.trl_config import device_args, lora_config

    sections = tuple(s for s in ("sft", "lora", "self_play", "sft_step", "dpo") if s in read_recipe(RECIPES / name))
    recipe = resolve(RECIPES / name, sections=sections)
    for section, cls in (("sft", SFTConfig), ("sft_step", SFTConfig), ("dpo", DPOConfig)):
        config = cls(output_dir="unused", report_to="none", **trainer_fields(section, recipe[section]), **device_args())
        assert config.learning_rate == recipe[section]["learning_rate"]
    assert recipe["self_play"]["train_sample_size"] > 0
    assert ("lora" in recipe) == name.startswith("pretrained")
    if "lora" in recipe:
        assert isinstance(lora_config(recipe["lora"]), LoraConfig)


def test_the_cpu_recipe_is_the_gpu_recipe_with_smaller_sizes():
    gpu, cpu = read_recipe(RECIPES / "pretrained-gpu.yaml"), read_recipe(RECIPES / "pretrained-cpu.yaml")
    assert gpu.keys() == cpu.keys() and cpu["lora"] == gpu["lora"]
    assert cpu["dpo"]["beta"] == gpu["dpo"]["beta"] and cpu["sft"]["lr_scheduler_type"] == "cosine"
    assert cpu["self_play"]["train_sample_size"] < gpu["self_play"]["train_sample_size"]


def test_the_recipe_follows_the_model():
    assert default_recipe(True).name == "small.yaml"
    assert default_recipe(False).name == "pretrained-cpu.yaml"  # no GPU here
    assert STAGE_SECTIONS["sft_step"] == ("sft_step", "self_play")  # the SFT step takes its sizes from self-play


def test_overrides_are_yaml_values_per_section():
    assert parse_overrides("sft.weight_decay=0.01 lora.use_rslora=true lora.target_modules=[q_proj,v_proj] "
                           "dpo.loss_type='sigmoid'") == {
        "sft": {"weight_decay": 0.01}, "lora": {"use_rslora": True, "target_modules": ["q_proj", "v_proj"]},
        "dpo": {"loss_type": "sigmoid"}}
    assert parse_overrides("") == {}
    # YAML 1.1 reads 1e-3 as a string; here it is the number, in an override and in a file alike
    assert parse_overrides("sft.learning_rate=1e-3 dpo.beta=5E-2 sft.run_name=x1e3") == {
        "sft": {"learning_rate": 1e-3, "run_name": "x1e3"}, "dpo": {"beta": 0.05}}
    recipe = resolve(RECIPES / "small.yaml", "dpo.beta=0.5 dpo.label_smoothing=0.1", ("dpo",))
    dpo = recipe["dpo"]
    assert (dpo["beta"], dpo["label_smoothing"], dpo["loss_type"]) == (0.5, 0.1, "sigmoid")


@pytest.mark.parametrize("text, where", [
    ("sft:\n  learnig_rate: 1\n", "bad.yaml: sft.learnig_rate: SFTConfig has no such field (did you mean "
                                   "learning_rate"),
    ("dpo:\n  output_dir: x\n", "bad.yaml: dpo.output_dir: the stage sets it"),
    ("sft_stp:\n  x: 1\n", "unknown section 'sft_stp'"),
    ("- a\n", "expected sections"),
    ("sft: [\n", "is not valid YAML"),
    ("self_play:\n  train_sample_size: many\n", "self_play.train_sample_size must be a non-negative integer"),
    ("inherit: bad.yaml\n", "'inherit' loops back to itself"),
])
def test_a_bad_recipe_file_is_one_line(tmp_path, text, where):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(UserError, match=None) as e:
        resolve(tmp_path / "bad.yaml", sections=())
    assert where in str(e.value)


def test_field_kinds_are_cached_per_library_version(tmp_path, monkeypatch):
    """Self-play checks the trainer sections without importing trl or peft: the fields and the kinds of value they take
    come from a cache that the first check writes (a broken cache file is rebuilt)."""
    import dataclasses

    from trl import SFTConfig

    from utils import recipe

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name, kinds = recipe.config_fields("sft")
    assert name == "SFTConfig" and set(kinds) == {f.name for f in dataclasses.fields(SFTConfig)}
    assert (kinds["learning_rate"], kinds["max_length"], kinds["packing"]) == (["float"], ["int", "none"], ["bool"])
    assert kinds["lr_scheduler_type"] == ["str"]  # an enum or its name
    (cache,) = (tmp_path / "sprec").glob("config_kinds-trl*-peft*-transformers*.json")
    with monkeypatch.context() as m:  # from the cache now: the class is not consulted
        m.setattr(recipe, "config_class", lambda section: pytest.fail("the cached fields were not used"))
        assert recipe.config_fields("sft") == (name, kinds)
    cache.write_text("{broken")
    assert recipe.config_fields("dpo")[0] == "DPOConfig" and "DPOConfig" in cache.read_text()


@pytest.mark.parametrize("args, message", [
    # each as a new user tried it: a traceback deep in trl or transformers, or no error at all
    ("sft.num_train_epochs=abc", "RECIPE_ARGS sft.num_train_epochs must be a number, got 'abc'"),
    ("sft.learning_rate=fast", "RECIPE_ARGS sft.learning_rate must be a number, got 'fast'"),
    ("sft.global_batch_size=0", "RECIPE_ARGS sft.global_batch_size must be an integer >= 1, got 0"),
    ("dpo.beta=-0.1", "RECIPE_ARGS dpo.beta must be > 0, got -0.1"),
    ("sft_step.learning_rate=0", "RECIPE_ARGS sft_step.learning_rate must be > 0, got 0"),
    ("dpo.per_device_train_batch_size=2.5", "dpo.per_device_train_batch_size must be an integer, got 2.5"),
    ("sft.per_device_eval_batch_size=true", "sft.per_device_eval_batch_size must be an integer, got True"),
    ("lora.r=0", "RECIPE_ARGS lora.r must be >= 1, got 0"),
    ("lora.lora_dropout=1", "RECIPE_ARGS lora.lora_dropout must be >= 0 and < 1, got 1"),
    ("sft.packing=3", "RECIPE_ARGS sft.packing must be true or false, got 3"),
    ("sft.max_length=long", "RECIPE_ARGS sft.max_length must be an integer or null, got 'long'"),
    ("dpo.loss_type=3", "RECIPE_ARGS dpo.loss_type must be a list or a string, got 3"),
])
def test_values_are_checked_by_kind_and_range(args, message):
    with pytest.raises(UserError) as e:
        resolve(RECIPES / "pretrained-gpu.yaml", args, ("sft", "dpo", "lora"))
    assert str(e.value) == message or str(e.value).endswith(message)


def test_values_of_the_right_kind_pass():
    got = resolve(RECIPES / "pretrained-gpu.yaml", "sft.num_train_epochs=2 sft.max_length=null lora.lora_dropout=0 "
                  "dpo.loss_type=sigmoid,sft sft.lr_scheduler_type=linear lora.target_modules=q_proj,v_proj",
                  ("sft", "dpo", "lora"))
    assert (got["sft"]["num_train_epochs"], got["sft"]["max_length"], got["dpo"]["loss_type"]) == (2, None,
                                                                                                   "sigmoid,sft")


def test_a_section_must_say_what_its_stage_needs(tmp_path):
    (tmp_path / "part.yaml").write_text("dpo:\n  beta: 0.2\n  learning_rate: 1.0e-5\n")
    with pytest.raises(UserError, match="section dpo lacks evals_per_run, global_batch_size, loss_type, "
                                        "num_train_epochs, per_device_train_batch_size, warmup_steps"):
        resolve(tmp_path / "part.yaml", sections=("dpo",))
    (tmp_path / "child.yaml").write_text(f"inherit: {RECIPES / 'small.yaml'}\ndpo:\n  beta: 0.2\n")
    assert resolve(tmp_path / "child.yaml", sections=("dpo",))["dpo"]["beta"] == 0.2  # the rest inherited


def test_the_run_config_keeps_result_changing_recipe_fields_and_names_a_change():
    """Per-device batches, logging and evaluation counts change no result: a rerun may change them."""
    args = {"seed": 1, "recipe": "/x/small.yaml", "recipe_args": "sft.logging_steps=5",
            "resolved_recipe": {"sft": {"learning_rate": 3e-3, "per_device_train_batch_size": 16, "logging_steps": 5,
                                        "evals_per_run": 4}}}
    settings = result_settings(args)
    assert settings == {"seed": 1, "resolved_recipe": {"sft": {"learning_rate": 3e-3}}}
    assert flat_settings(settings) == {"seed": 1, "resolved_recipe.sft.learning_rate": 3e-3}
