"""The one prompt contract. Every stage (SFT, self-play sampling, DPO, evaluation) renders prompts and
completions and parses generated titles here, so they are byte-identical everywhere.
"""
import re

# Alpaca-style template, as in BIGRec/SPRec's SFT stage; used unchanged by every stage (the official code used three).
PROMPT_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)

_QUOTED = re.compile(r'"([^"]*)"')


def render_prompt(record: dict) -> str:
    """The prompt text of a record (everything the model sees before its answer)."""
    return PROMPT_TEMPLATE.format(instruction=record["instruction"], input=record["input"])


def render_completion(title: str) -> str:
    """The answer text: the quoted title and a newline (trainers append the tokenizer's EOS)."""
    return f'"{title}"\n'


def parse_title(text: str) -> str:
    """The title a generated text names (docs/metrics.md, title parsing).

    The first complete double-quoted span; else, after an unclosed opening quote, the rest of that line; else the
    first non-empty line. Always stripped; "" when there is nothing.
    """
    if not text:
        return ""
    m = _QUOTED.search(text)
    if m:
        return m.group(1).strip()
    q = text.find('"')
    if q >= 0:
        return text[q + 1:].split("\n", 1)[0].strip()
    return text.strip().split("\n", 1)[0].strip()


def record_target(record: dict) -> str:
    """The target item name: the structured `target` when the converter wrote one, else parsed from `output`."""
    target = record.get("target")
    return target if isinstance(target, str) else parse_title(record["output"])


def record_history(record: dict) -> list[str]:
    """The history item names: the structured `history` when present, else every quoted title in `input`."""
    history = record.get("history")
    if isinstance(history, list):
        return history
    text = record["input"]
    return _QUOTED.findall(text[text.find(":") + 1:] if ":" in text else text)
