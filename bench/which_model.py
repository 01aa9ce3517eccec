"""Which model a benchmark times, said plainly, and a refusal where the number would not mean what the README says.

An untrained model (the project's freshly built small model, or a random one) never learned to stop: greedy
decoding runs every row to its new-token limit, so a generation benchmark on it times something no run does (issue
13: 4.8x with 0/1024 identical titles on the untrained model, 10.2x with 1024/1024 on the SFT'd one).
"""
import json
import sys
from pathlib import Path


def describe(model_dir) -> tuple[bool, str]:
    """(trained, a description): trained means an SFT/SPRec stage wrote it, or a pretrained instruct model."""
    from utils.tiny_model import TINY_MARKER

    d = Path(model_dir)
    for stage in ("sft", "dpo"):
        config = d / f"run_config_{stage}.json"
        if config.is_file():
            args = json.loads(config.read_text())["args"]
            what = f"{args.get('train_records') or args.get('pairs') or '?'} {'records' if stage == 'sft' else 'pairs'}"
            return True, f"{d} (trained: {stage.upper()} stage, {what}, {args.get('steps', '?')} steps)"
    if (d / TINY_MARKER).is_file():
        return False, f"{d} (the project's small model, untrained)"
    return True, f"{d} (a model this project did not train: assumed to be a pretrained instruct model)"


def pick_model(model: str, category: str, allow_untrained: bool = False) -> tuple[str, str]:
    """(model directory, description): `model`, else models/SFT/<category>. Exits with the reason when there is none,
    or when it is untrained and `allow_untrained` is not set."""
    model_dir = model or str(Path("models/SFT") / category)
    if not (Path(model_dir) / "config.json").is_file() and not (Path(model_dir) / "adapter_config.json").is_file():
        sys.exit(f"no model at {model_dir}: pass --model DIR, or train one first (bash shell/SFT.sh)")
    trained, what = describe(model_dir)
    if not trained and not allow_untrained:
        sys.exit(f"{what}: an untrained model never stops early, so its generation time would not mean what the "
                 "README says; train it first (bash shell/SFT.sh) or pass --allow_untrained")
    return model_dir, what
