"""The prompt contracts: every text a stage (SFT, self-play sampling, DPO, evaluation) renders, and how it reads a
title back from generated text. Stages take a `Contract` from the resolved recipe (`contract_of`) or from the model
they start from (`model_contract`) and call its methods; they never ask which contract it is.

  project   (the default, `PROJECT`) one Alpaca template renders every prompt, byte-identical in every stage; the
            answer is the quoted title and a newline, followed by the tokenizer's EOS in training; generation stops at
            the end of the answer line; the title is `parse_title`.
  official  (`OFFICIAL`, recipe field `contract: official`) every text exactly as the authors' code builds it
            (RegionCh/SPRec, Dec 2024, with trl 0.9.2): see `OfficialContract`.
  bare-dpo-prompt, official-schedule  the project's contract with one of the authors' differences (their bare DPO
            prompt; their schedule and checkpoint choice): ablations that measure what one difference alone does.
"""
import contextlib
import math
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


def completion_ids(tokenizer, names) -> list[list[int]]:
    """The token ids of each name's answer (`render_completion`) as they follow a prompt: tokenized on its own, with
    no special tokens. This is how trl's DPO trainer tokenizes a completion (it then appends EOS), and a prompt ends on
    a token boundary (tests/test_tiny_model.py, the SmolLM2 tokenizer alike), so SFT's prompt + completion tokenizes
    to the same ids too."""
    return tokenizer([render_completion(n) for n in names], add_special_tokens=False).input_ids


def max_answer_tokens(tokenizer, names, margin: int = 4) -> int:
    """New-token limit for an answer: the longest catalog title as a completion, plus a small margin."""
    longest = sorted(names, key=len, reverse=True)[:200]  # the longest by characters hold the longest in tokens
    return max(len(ids) for ids in completion_ids(tokenizer, longest)) + margin


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


class Contract:
    """The project's contract: one prompt, EOS learned after the answer line, generation stopped at its end."""

    name = "project"
    one_line = True  # generation stops at the first newline (or EOS) and keeps that one line
    drops_predicted_target = True  # self-play makes no pair from a prediction that grounds to the target
    caps_warmup = True  # warm-up at most 10% of a stage's optimizer steps (utils.trl_config.schedule_args)
    embedding_model = ""  # evaluation's grounding model when EMBEDDING_MODEL is empty ("": all-MiniLM-L6-v2)
    # The embedded small model's tokenizer is trained on this contract's texts (small_model_corpus,
    # utils/tiny_model.py), as a real model's vocabulary covers its prompts: "" is models/tiny/<category>, a name
    # is models/tiny-<name>/<category>.
    small_model_texts = ""
    recipe_changes: dict = {}  # recipe fields the contract sets, over the recipe file, under RECIPE_ARGS
    # Self-play draws spare prompts beyond the N + V it needs pairs for, for answers that make no pair: spare_ratio
    # times N + V (rounded up), plus spare_prompts.
    spare_ratio, spare_prompts = 0.1, 0

    def prompts_to_draw(self, wanted: int, spare_ratio: float | None = None) -> int:
        """How many prompts self-play draws for `wanted` pairs: the contract's spare, or `spare_ratio` x `wanted`
        spares instead when one is given (train.self_play --spare_ratio)."""
        if spare_ratio is not None:
            return math.ceil(wanted * (1 + spare_ratio))
        return math.ceil(wanted * (1 + self.spare_ratio)) + self.spare_prompts

    def settings(self) -> dict:
        """What a stage without a resolved recipe (evaluation) records as a result-changing setting. The default
        records nothing, so run configs made before contracts existed still compare equal."""
        return {} if self is PROJECT else {"contract": self.name}

    # ---- SFT
    def sft_text(self, record: dict) -> str:
        """The whole text an SFT record is (prompt and answer; the EOS trl appends is not shown)."""
        return render_prompt(record) + render_completion(record_target(record))

    def sft_columns(self, records, tokenizer) -> dict:
        """SFT data in trl's prompt/completion format: trl appends EOS to the completion and masks the prompt's loss
        when `completion_only_loss` is on."""
        return {"prompt": [render_prompt(r) for r in records],
                "completion": [render_completion(record_target(r)) for r in records]}

    def completion_only_loss(self, small_model: bool) -> bool:
        """A pretrained base learns the answer only; the small model learns the whole text (it starts from nothing)."""
        return not small_model

    def small_model_corpus(self, record: dict) -> list[str]:
        """The texts of a record the small model's tokenizer is trained on: here the SFT text, which holds every
        prompt the other stages render."""
        return [self.sft_text(record)]

    # ---- sampling and evaluation
    def generation_prompt(self, record: dict) -> str:
        """The prompt self-play sampling and evaluation generate from."""
        return render_prompt(record)

    def max_new_tokens(self, tokenizer, names, purpose: str) -> int:
        """New-token limit (`purpose`: "sampling" or "evaluation"): the longest catalog answer plus a margin."""
        return max_answer_tokens(tokenizer, names)

    def answer(self, generated: str) -> str:
        """What a stage keeps of a generated text (stored as `predict`)."""
        return generated

    def eval_title(self, text: str) -> str:
        """The title evaluation grounds (docs/metrics.md)."""
        return parse_title(text)

    def rejected_title(self, text: str) -> str | None:
        """The title self-play rejects, as generated; None when the text names none (no pair)."""
        return parse_title(text) or None

    # ---- DPO
    def dpo_prompt(self, record: dict) -> str:
        return render_prompt(record)

    def chosen(self, record: dict) -> str:
        return render_completion(record_target(record))

    def rejected(self, title: str) -> str:
        return render_completion(title)

    def dpo_prompt_prefix(self, tokenizer) -> str:
        """Text put before every DPO prompt when the trl dataset is built (not stored in the pairs)."""
        return ""

    def dpo_tokenizing(self):
        """The context trl's DPO trainer tokenizes the pairs in (it does so when it is made)."""
        return contextlib.nullcontext()


class OfficialContract(Contract):
    """The authors' texts, stage by stage, as their code builds them (train/sft.py, train/data_generate.py,
    train/dpo.py, eval/inference.py, eval/evaluate.py of RegionCh/SPRec, with trl 0.9.2 and transformers 4.44):

    SFT       an Alpaca template whose lines after the first are indented by 16 spaces (a triple-quoted f-string in an
              indented function), the record's raw `output` as the response, then a newline and 16 spaces; the loss
              on the whole text, no EOS (trl 0.9.2 tokenized it with the tokenizer's own special tokens: Llama's BOS).
    sampling  a third, unindented template (two spaces after "request."), the same for evaluation; generation runs
              to EOS or 128 new tokens (32 in evaluation); the answer is the decoded text after the last "Response:\\n".
    self-play rejected = the first quoted span of the answer (no newline inside), re-quoted with a newline; an answer
              without one makes no pair; a rejected title equal to the target is kept (nothing compared them).
    DPO       prompt = instruction + input glued, no template; chosen = the record's `output`; trl 0.9.2 put BOS before
              the prompt and EOS after each answer.
    eval      an empty answer is embedded as "NAN"; else the text from the first quote to the next quote or the end,
              unstripped; else the first line; grounded with the authors' paraphrase-MiniLM-L3-v2 unless
              EMBEDDING_MODEL names another.
    schedule  transformers' linear decay and the whole warm-up the recipe asks for; the best checkpoint by validation
              loss among those saved every 500 steps and at the last step is the result (load_best_model_at_end).
    spare     self-play draws N + V + 500 prompts for N train and V valid pairs (the project: 10% more).
    """

    name = "official"
    one_line = False
    drops_predicted_target = False
    caps_warmup = False
    embedding_model = "paraphrase-MiniLM-L3-v2"  # the authors' (utils/embedder.py) unless EMBEDDING_MODEL is set
    small_model_texts = "official"  # the project's vocabulary would split each 16-space indent into 16 tokens
    _BEST_CHECKPOINT = {"load_best_model_at_end": True, "save_strategy": "steps", "save_steps": 500,
                        "save_total_limit": 1}
    recipe_changes = {"sft": {"lr_scheduler_type": "linear", **_BEST_CHECKPOINT},
                      "sft_step": {"lr_scheduler_type": "linear", **_BEST_CHECKPOINT},
                      "dpo": {"lr_scheduler_type": "linear", **_BEST_CHECKPOINT}}
    MAX_NEW_TOKENS = {"sampling": 128, "evaluation": 32}
    spare_ratio, spare_prompts = 0.0, 500  # data_generate.py draws train_sample_size + valid_sample_size + 500
    _FIRST_QUOTED = re.compile(r'"(.*?)"')  # self-play: a closed quote on one line
    _FROM_QUOTE = re.compile(r'"([^"]*)')  # evaluation: to the next quote or the end of the text

    # ---- SFT
    def sft_text(self, record: dict) -> str:
        indent = "\n" + " " * 16
        head = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.")
        lines = [head, "", "### Instruction:", record["instruction"], ""]
        if len(record["input"]) >= 2:  # the authors' test; their sampling template tests for a non-empty input
            lines += ["### Input:", record["input"], ""]
        return indent.join(lines + ["### Response:", record["output"], ""])

    def sft_columns(self, records, tokenizer) -> dict:
        """Token ids of the whole text, as trl 0.9.2 tokenized it (the tokenizer's special tokens, no EOS): trl 1.x
        would append EOS to a text dataset, and takes tokenized rows as they are (labels = the ids)."""
        return {"input_ids": [tokenizer(self.sft_text(r)).input_ids for r in records]}

    def completion_only_loss(self, small_model: bool) -> bool:
        return False

    def small_model_corpus(self, record: dict) -> list[str]:
        """Three templates: the SFT text, the sampling/evaluation prompt and the DPO prompt all name tokens."""
        return [self.sft_text(record), self.generation_prompt(record), self.dpo_prompt(record)]

    # ---- sampling and evaluation
    def generation_prompt(self, record: dict) -> str:
        preamble = ("Below is an instruction that describes a task, paired with an input that provides further "
                    "context." if record["input"] else "Below is an instruction that describes a task.")
        text = f"{preamble} Write a response that appropriately completes the request.  \n\n"
        text += f"### Instruction:\n{record['instruction']}\n\n"
        if record["input"]:
            text += f"### Input:\n{record['input']}\n\n"
        return text + "### Response:\n"

    def max_new_tokens(self, tokenizer, names, purpose: str) -> int:
        return self.MAX_NEW_TOKENS[purpose]

    def answer(self, generated: str) -> str:
        # The authors decoded prompt + generation and kept what follows the last "Response:\n"; the prompt ends with
        # it, so that is the generation, or its tail after a "Response:\n" the model wrote itself.
        return generated.split("Response:\n")[-1]

    def eval_title(self, text: str) -> str:
        if not text:
            return "NAN"
        m = self._FROM_QUOTE.search(text)
        return m.group(1) if m else text.split("\n", 1)[0]

    def rejected_title(self, text: str) -> str | None:
        m = self._FIRST_QUOTED.search(text)
        return m.group(1) if m else None

    # ---- DPO
    def dpo_prompt(self, record: dict) -> str:
        return record["instruction"] + record["input"]

    def chosen(self, record: dict) -> str:
        return record["output"]

    def dpo_prompt_prefix(self, tokenizer) -> str:
        """trl 0.9.2 put the BOS id before every DPO prompt; trl 1.x tokenizes the prompt with the tokenizer's own
        special tokens, which is the same for Llama (it adds BOS) but nothing for a tokenizer that does not add BOS
        itself (SmolLM2): there the BOS goes in as text. A tokenizer without BOS gets nothing (trl 0.9.2 failed)."""
        bos = tokenizer.bos_token
        if bos is None or tokenizer("x").input_ids[:1] == [tokenizer.bos_token_id]:
            return ""
        return bos

    @contextlib.contextmanager
    def dpo_tokenizing(self):
        """The prompt ends on the history's closing quote and every answer starts with a quote, so a tokenizer may
        merge the two (SmolLM2: ')"' + '"' is ')' + '""'). trl 0.9.2 then counted the merged token as the answer's,
        silently; trl 1.x does the same and warns once that the prompt is not a prefix of prompt + answer. Here that
        is the authors' text, expected: that one message is dropped."""
        import logging

        def not_the_merge_notice(record):
            return "The tokenized prompt is not a prefix" not in record.getMessage()

        log = logging.getLogger("trl.trainer.dpo_trainer")
        log.addFilter(not_the_merge_notice)
        try:
            yield
        finally:
            log.removeFilter(not_the_merge_notice)


class BareDpoPromptContract(Contract):
    """A single-difference ablation (docs/differences.md): the project's contract with the
    authors' DPO prompt only (`instruction + input`, no template, no "### Response:" cue, their BOS); every other
    text, the answers included, is the project's."""

    name = "bare-dpo-prompt"
    dpo_prompt = OfficialContract.dpo_prompt
    dpo_prompt_prefix = OfficialContract.dpo_prompt_prefix
    dpo_tokenizing = OfficialContract.dpo_tokenizing


class OfficialScheduleContract(Contract):
    """A single-difference ablation: the project's texts with the authors' schedule and checkpoint choice (linear
    decay, the whole warm-up the recipe asks for, the best of the checkpoints saved every 500 steps)."""

    name = "official-schedule"
    caps_warmup = OfficialContract.caps_warmup
    recipe_changes = OfficialContract.recipe_changes


PROJECT, OFFICIAL = Contract(), OfficialContract()
BARE_DPO_PROMPT, OFFICIAL_SCHEDULE = BareDpoPromptContract(), OfficialScheduleContract()
CONTRACTS = {c.name: c for c in (PROJECT, OFFICIAL, BARE_DPO_PROMPT, OFFICIAL_SCHEDULE)}


def contract_named(name: str, where: str = "contract") -> Contract:
    from utils.io import UserError

    if name not in CONTRACTS:
        raise UserError(f"{where} must be one of {', '.join(CONTRACTS)}, got {name!r}")
    return CONTRACTS[name]


def contract_of(resolved_recipe: dict) -> Contract:
    """The contract of a resolved recipe (utils/recipe.py writes `contract` only when it is not the default)."""
    return contract_named(resolved_recipe.get("contract", PROJECT.name))


def model_contract(model_dir) -> Contract:
    """The contract a trained model directory was made with (its run config's resolved recipe); the default for a
    directory without one (a base model, MostPop)."""
    import json
    from pathlib import Path

    for stage in ("sft", "dpo"):
        path = Path(model_dir) / f"run_config_{stage}.json"
        if path.is_file():
            recipe = json.loads(path.read_text(encoding="utf-8")).get("args", {}).get("resolved_recipe") or {}
            return contract_of(recipe)
    return PROJECT


def check_model_contract(model_dir, contract: Contract, flag: str) -> None:
    """A stage continues a model only in the contract that model was trained in (its prompts are what it knows)."""
    from utils.io import UserError

    made = model_contract(model_dir)
    if made is not contract:
        raise UserError(f"{flag} {model_dir} was trained with contract {made.name}, this run's recipe says "
                        f"{contract.name}: set RECIPE_ARGS=\"contract={made.name}\" (and the same for every stage)")
