"""Recipes as data: one YAML file per recipe in recipes/, one section per stage, trl's and peft's field names.

usage: python -m utils.recipe [--recipe recipes/small.yaml] [--recipe_args "sft.learning_rate=1e-3 dpo.beta=0.2"]
       (prints the resolved recipe, or the checked overrides; every stage runs the same checks on the whole recipe
       and all overrides before any work, so a bad file, section or field is one line and exit status 2)

    sft        train.sft from the base model (shell/SFT.sh)           SFTConfig fields
    lora       the adapter put on a pretrained base by that stage      LoraConfig fields
    self_play  train.self_play, each iteration of shell/SPRec.sh      its sample sizes
    sft_step   each iteration's SFT step (train.sft --section sft_step) SFTConfig fields
    dpo        each iteration's DPO step (train.dpo)                    DPOConfig fields

Besides trl's fields a section holds a few of our own (OWN_FIELDS: sample sizes, the global batch, evaluations per
run). A recipe may start from another one (`inherit: pretrained-gpu.yaml`) and list only what differs. A stage reads
its sections, applies the run's overrides ("section.field=value ...", RECIPE_ARGS in the launch scripts) and records
the resolved sections in its run config, so that an edited recipe is a changed setting on a rerun.

One top-level field is not a section: `contract` (`project`, the default, or `official`: every text exactly as the
authors' code builds it; utils/prompt.py), set in a file or with RECIPE_ARGS="contract=official". The official
contract also sets a few trainer fields (its `recipe_changes`: the linear schedule, the best checkpoint), over the
file's values and under the run's overrides. The resolved recipe names the contract only when it is not the default,
so run configs made before the field existed still compare equal, and a rerun in the other contract is refused.

The recipe follows the model, not the hardware: the small model gets small.yaml wherever it runs (trained fully, loss
on the whole text); a pretrained base gets pretrained-gpu.yaml (the official sizes) on GPUs and pretrained-cpu.yaml
(sizes for a 2-core CPU) without one. The device changes precision only (utils.trl_config.device_args).
"""
import copy
import re
from pathlib import Path

from utils.cli import run_cli
from utils.io import UserError

RECIPES = Path(__file__).resolve().parents[1] / "recipes"  # data beside data/, not in the launch folder

# Per section, the fields that are ours rather than the config class's.
OWN_FIELDS = {
    "sft": {"sample_size", "valid_sample_size", "global_batch_size", "evals_per_run"},
    "lora": set(),
    "self_play": {"train_sample_size", "valid_sample_size"},
    "sft_step": {"global_batch_size", "evals_per_run"},
    "dpo": {"global_batch_size", "evals_per_run"},
}
SECTIONS = tuple(OWN_FIELDS)
# What a stage needs from its section (trl's own defaults are not the recipe's: a recipe says each of these).
_STEP = {"global_batch_size", "per_device_train_batch_size", "num_train_epochs", "learning_rate", "warmup_steps",
         "evals_per_run"}
REQUIRED = {"sft": _STEP | {"sample_size", "valid_sample_size"}, "lora": set(),
            "self_play": {"train_sample_size", "valid_sample_size"}, "sft_step": _STEP, "dpo": _STEP | {"loss_type"}}
# Which sections each stage reads: the SFT step's records are as many as the iteration's pairs (self_play's sizes).
STAGE_SECTIONS = {"sft": ("sft",), "sft_step": ("sft_step", "self_play"), "dpo": ("dpo",),
                  "self_play": ("self_play",)}
# Trainer fields a stage sets itself, from the run (paths, seed, tracking), the device, the model or the global batch:
# a recipe that sets one would be silently overruled, so it is an error.
STAGE_SET = {"output_dir", "seed", "data_seed", "report_to", "run_name", "logging_dir", "disable_tqdm", "bf16", "fp16",
             "use_cpu", "gradient_accumulation_steps", "eval_strategy", "eval_steps", "completion_only_loss",
             "activation_checkpointing", "task_type"}


def config_class(section: str):
    """The dataclass whose fields a section may set (None for self_play, which has only our own fields)."""
    if section in ("sft", "sft_step"):
        from trl import SFTConfig

        return SFTConfig
    if section == "dpo":
        from trl import DPOConfig

        return DPOConfig
    if section == "lora":
        from peft import LoraConfig

        return LoraConfig
    return None


def value_kinds(annotation) -> list[str]:
    """The kinds of value a config field's type annotation admits: bool, int, float, str, list, dict, none, or any
    (a type this check does not know, such as a callable: left to the class)."""
    import enum
    import types
    import typing

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return sorted({k for a in typing.get_args(annotation) for k in value_kinds(a)})
    if origin is typing.Literal:
        return ["str"]
    if annotation is type(None):
        return ["none"]
    base = origin or annotation
    for kind, classes in (("bool", (bool,)), ("int", (int,)), ("float", (float,)), ("list", (list, tuple)),
                          ("dict", (dict,))):
        if isinstance(base, type) and issubclass(base, classes) and not (kind == "int" and base is bool):
            return [kind]
    if isinstance(base, type) and issubclass(base, (str, enum.Enum)):  # an enum (SchedulerType...) is given by name
        return ["str"]
    return ["any"]


def config_fields(section: str) -> tuple[str, dict]:
    """(class name, {field name: the kinds of value it takes}) of a section's config class. Importing trl or peft
    takes seconds, and every stage checks every section, self-play too, which uses neither: the fields are cached per
    installed version of trl, peft and transformers (~/.cache/sprec, or $XDG_CACHE_HOME/sprec), so a stage imports
    them only when it trains."""
    import typing
    from importlib.metadata import version

    from utils.io import read_cache, user_cache, write_cache

    if section == "self_play":
        return "self_play", {}
    key = "-".join(f"{p}{version(p)}" for p in ("trl", "peft", "transformers"))
    cache = user_cache(f"config_kinds-{key}.json")
    known = read_cache(cache, {})
    if section not in known:
        import dataclasses

        cls = config_class(section)
        hints = typing.get_type_hints(cls)
        known[section] = [cls.__name__, {f.name: value_kinds(hints.get(f.name, f.type))
                                         for f in dataclasses.fields(cls)}]
        write_cache(cache, known)
    name, fields = known[section]
    return name, fields


def default_recipe(small_model: bool) -> Path:
    """The recipe a model gets when none is named: small.yaml for the small model, else the pretrained recipe of
    the device this process sees (the launch scripts hide the GPUs when no GPU ids are given)."""
    if small_model:
        return RECIPES / "small.yaml"
    from utils.device import has_gpu

    return RECIPES / ("pretrained-gpu.yaml" if has_gpu() else "pretrained-cpu.yaml")


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def yaml_value(value):
    """A value as read from YAML, except that 1e-3 is the number: PyYAML follows YAML 1.1, which reads a number with
    an exponent but no decimal point (1e-3, 5E-4) as a string, and trl would get learning_rate='1e-3'."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [yaml_value(v) for v in value]
    return value


def read_recipe(path, _seen=()) -> dict:
    """{section: {field: value}} of a recipe file, its `inherit` chain merged section by section (this file wins)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        names = ", ".join(sorted(p.name for p in RECIPES.glob("*.yaml")))
        raise UserError(f"recipe {path} does not exist (the recipes here: {names}, in {RECIPES})")
    if path.resolve() in _seen:
        raise UserError(f"recipe {path}: 'inherit' loops back to itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"recipe {path}: expected sections ({', '.join(SECTIONS)}) at the top, got "
                        f"{type(data).__name__}")
    parent = data.pop("inherit", None)
    out = read_recipe(path.parent / parent, (*_seen, path.resolve())) if parent else {}
    if "contract" in data:
        out["contract"] = check_contract(data.pop("contract"), f"recipe {path}:")
    for section, fields in data.items():
        if section not in SECTIONS:
            raise UserError(f"recipe {path}: unknown section '{section}' (sections: {', '.join(SECTIONS)}; also "
                            f"inherit, contract)")
        if not isinstance(fields, dict):
            raise UserError(f"recipe {path}: section {section} must map field names to values")
        out[section] = {**out.get(section, {}), **{k: yaml_value(v) for k, v in fields.items()}}
    return out


def parse_overrides(text) -> dict:
    """{section: {field: value}} from "section.field=value ..." (values read as YAML: 0.01, true, cosine,
    [q_proj,v_proj]; quote a value with spaces)."""
    import shlex

    import yaml

    out = {}
    for item in shlex.split(str(text or "")):
        name, sep, value = item.partition("=")
        if name == "contract" and sep:
            out["contract"] = check_contract(value, "RECIPE_ARGS")
            continue
        section, dot, field = name.partition(".")
        if not (sep and dot and field.isidentifier()):
            raise UserError(f"RECIPE_ARGS: '{item}' is not section.field=value (e.g. \"sft.learning_rate=1e-3 "
                            f"dpo.beta=0.2\") or contract=NAME")
        if section not in SECTIONS:
            raise UserError(f"RECIPE_ARGS {name}: unknown section '{section}' (sections: {', '.join(SECTIONS)})")
        try:
            out.setdefault(section, {})[field] = yaml_value(yaml.safe_load(value)) if value else ""
        except yaml.YAMLError:
            raise UserError(f"RECIPE_ARGS: cannot read the value of {name}: {value!r}") from None
    return out


# Our own fields, all counts: (the least value, what it is). Sample sizes may be 0 (nothing held out, say).
OWN_MINIMUM = {"sample_size": 0, "valid_sample_size": 0, "train_sample_size": 0, "evals_per_run": 0,
               "global_batch_size": 1}
# Ranges that are facts, checked in every section that has the field: (low, low allowed, high, high allowed).
RANGES = {"learning_rate": (0, False, None, False), "beta": (0, False, None, False),
          "num_train_epochs": (0, False, None, False), "per_device_train_batch_size": (1, True, None, False),
          "per_device_eval_batch_size": (1, True, None, False), "precompute_ref_batch_size": (1, True, None, False),
          "warmup_steps": (0, True, None, False), "max_length": (1, True, None, False), "r": (1, True, None, False),
          "lora_alpha": (0, False, None, False), "lora_dropout": (0, True, 1, False)}
# Values a stage converts itself before its config class sees them: dpo.loss_type "sigmoid,sft" is a list.
OWN_KINDS = {("dpo", "loss_type"): ["list", "str"]}
KIND_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string", "list": "a list",
              "dict": "a mapping", "none": "null"}


def check_contract(value, where: str) -> str:
    """The top-level `contract` field: the name of one of utils/prompt.py's contracts."""
    from utils.prompt import contract_named

    return contract_named(value, f"{where} contract").name


def check_value(section: str, name: str, value, kinds: list[str], where: str) -> None:
    """A field's value: a kind its type admits (an integer is a number; true is not an integer), then its range."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    fits = ("any" in kinds or (value is None and "none" in kinds) or (isinstance(value, bool) and "bool" in kinds)
            or (is_number and isinstance(value, int) and "int" in kinds) or (is_number and "float" in kinds)
            or (isinstance(value, str) and "str" in kinds) or (isinstance(value, list) and "list" in kinds)
            or (isinstance(value, dict) and "dict" in kinds))
    if not fits:
        expected = " or ".join(KIND_WORDS[k] for k in kinds)
        raise UserError(f"{where} {section}.{name} must be {expected}, got {value!r}")
    if name in RANGES and is_number:
        low, low_ok, high, high_ok = RANGES[name]
        above = value > low or (low_ok and value == low)
        below = high is None or value < high or (high_ok and value == high)
        if not (above and below):
            bounds = f"{'>=' if low_ok else '>'} {low}"
            bounds += f" and {'<=' if high_ok else '<'} {high}" if high is not None else ""
            raise UserError(f"{where} {section}.{name} must be {bounds}, got {value!r}")


def check_fields(section: str, fields: dict, where: str) -> None:
    """Every field must be one of ours or a field of the section's config class that the stage does not set itself,
    with a value of the kind its type admits and in the range that is a fact (a positive learning rate, beta, epoch
    count and batch size, a LoRA rank of 1 or more): one line naming the field, before any work."""
    import difflib

    cls, class_fields = config_fields(section)
    known = OWN_FIELDS[section] | (set(class_fields) - STAGE_SET)
    for name, value in fields.items():
        if name in STAGE_SET and class_fields:
            raise UserError(f"{where} {section}.{name}: the stage sets it (from the run, the device or the global "
                            f"batch); leave it out")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), 3)
            owner = f"{cls} has no such field" if class_fields else "no such field"
            raise UserError(f"{where} {section}.{name}: {owner}" + (f" (did you mean {', '.join(close)}?)" if close
                                                                       else ""))
        if name in OWN_FIELDS[section]:
            least = OWN_MINIMUM[name]
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= least):
                what = "a non-negative integer" if least == 0 else f"an integer >= {least}"
                raise UserError(f"{where} {section}.{name} must be {what}, got {value!r}")
        else:
            check_value(section, name, value, OWN_KINDS.get((section, name), class_fields[name]), where)


def resolve(recipe: str | Path, overrides: str = "", sections=SECTIONS) -> dict:
    """The recipe file's `sections` with the overrides applied, every field checked: {section: {field: value}}."""
    from utils.prompt import PROJECT, contract_named

    data = read_recipe(recipe)
    extra = parse_overrides(overrides)
    contract = contract_named(extra.pop("contract", data.pop("contract", PROJECT.name)))
    for section, fields in data.items():
        check_fields(section, fields, f"recipe {recipe}:")
    for section, fields in extra.items():
        check_fields(section, fields, "RECIPE_ARGS")
    for section in extra:
        if section not in data:
            raise UserError(f"RECIPE_ARGS {section}.*: recipe {recipe} has no section '{section}'"
                            + (" (the small model is trained fully, without LoRA)" if section == "lora" else ""))
    out = {} if contract is PROJECT else {"contract": contract.name}
    for section in sections:
        if section not in data:
            raise UserError(f"recipe {recipe} has no section '{section}', which this stage reads")
        out[section] = {**data[section], **contract.recipe_changes.get(section, {}), **extra.get(section, {})}
        missing = sorted(REQUIRED[section] - set(out[section]))
        if missing:
            raise UserError(f"recipe {recipe}: section {section} lacks {', '.join(missing)} (see recipes/)")
    return copy.deepcopy(out)


def trainer_fields(section: str, fields: dict) -> dict:
    """A section's fields for its config class (our own fields removed)."""
    return {k: v for k, v in fields.items() if k not in OWN_FIELDS[section]}


def why(recipe: str, small_model: bool) -> str:
    """Why a stage runs the recipe it runs, for the line it prints at its start."""
    if recipe:
        return "named by RECIPE"
    if small_model:
        return "the small model's own recipe"
    from utils.device import has_gpu

    return ("the pretrained-model recipe for GPUs" if has_gpu() else
            "the pretrained-model recipe for the CPU (no GPU visible: no GPU ids were given)")


def for_stage(stage: str, recipe: str, overrides: str, small_model: bool, lora: bool = False) -> tuple[str, dict]:
    """(recipe file, its resolved sections) for one stage (STAGE_SECTIONS; the SFT stage adds lora when it puts an
    adapter on the base): the named file, else the model's default recipe."""
    path = Path(recipe) if recipe else default_recipe(small_model)
    return str(path), resolve(path, overrides, STAGE_SECTIONS[stage] + (("lora",) if lora else ()))


# Settings that moved into the recipes are no longer read from the environment: a user's old command
# (SFT_SAMPLE_SIZE=64 bash shell/SFT.sh) would train the full size without a word, so it stops and names the new form.
RETIRED_VARIABLES = {
    "SFT_SAMPLE_SIZE": "sft.sample_size", "SFT_VALID_SAMPLE_SIZE": "sft.valid_sample_size",
    "SFT_EPOCHS": "sft.num_train_epochs", "SFT_LR": "sft.learning_rate", "SFT_WARMUP_STEPS": "sft.warmup_steps",
    "SFT_BATCH_SIZE": "sft.global_batch_size", "SFT_DEVICE_BATCH_SIZE": "sft.per_device_train_batch_size",
    "LORA_TARGETS": "lora.target_modules", "TRAIN_SAMPLE_SIZE": "self_play.train_sample_size",
    "VALID_SAMPLE_SIZE": "self_play.valid_sample_size", "LR": "dpo.learning_rate sft_step.learning_rate",
    "BETA": "dpo.beta", "LOSS_TYPE": "dpo.loss_type", "BATCH_SIZE": "dpo.global_batch_size",
    "DEVICE_BATCH_SIZE": "dpo.per_device_train_batch_size", "WARMUP_STEPS": "dpo.warmup_steps sft_step.warmup_steps",
    "PRECOMPUTE_REF": "dpo.precompute_ref_log_probs=true", "SFT_TRAINER_ARGS": "sft.<field>",
    "LORA_ARGS": "lora.<field>", "DPO_TRAINER_ARGS": "dpo.<field>",
}


def refuse_retired_variables(environ) -> None:
    """Stop on a variable the recipes replaced, naming the RECIPE_ARGS that does what it did."""
    if "MODEL_KIND" in environ:
        raise UserError("MODEL_KIND is no longer read: the recipe follows the model; name one with "
                        "RECIPE=recipes/<name>.yaml")
    for name, fields in RETIRED_VARIABLES.items():
        if name not in environ:
            continue
        form = [f"{f}=value" if f.endswith("<field>") else f if "=" in f else f"{f}={environ[name]}"
                for f in fields.split()]
        raise UserError(f"{name} is no longer read (the recipes hold it, utils/recipe.py): unset it and set "
                        f"RECIPE_ARGS=\"{' '.join(form)}\" instead")


def main(recipe: str = "", recipe_args: str = ""):
    """Check the overrides (and a recipe file, when named) and print the resolved recipe or the overrides as YAML."""
    import yaml

    if recipe:  # resolve checks the file and the overrides
        extra = resolve(recipe, recipe_args, tuple(s for s in SECTIONS if s in read_recipe(recipe)))
    else:
        extra = parse_overrides(recipe_args)
        for section, fields in extra.items():
            if section != "contract":  # checked as it was read
                check_fields(section, fields, "RECIPE_ARGS")
    print(f"# {recipe or 'overrides'}\n" + yaml.safe_dump(extra, sort_keys=False), end="")


if __name__ == "__main__":
    run_cli(main)
