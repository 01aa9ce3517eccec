import json

import pytest

from utils.prompt import PROMPT_TEMPLATE, parse_title, record_history, record_target, render_completion, render_prompt

RECORD = {"instruction": "Given a list of movies the user recently watched, please recommend a new movie",
          "input": 'The user has watched the following movies before: "Heat (1995)", "Fargo (1996)"',
          "output": '"Toy Story (1995)"\n'}


def test_prompt_is_the_template_filled_in():
    p = render_prompt(RECORD)
    assert p == PROMPT_TEMPLATE.format(instruction=RECORD["instruction"], input=RECORD["input"])
    assert p.endswith("### Response:\n")


def test_completion_is_quoted_title_and_newline():
    assert render_completion("Toy Story (1995)") == '"Toy Story (1995)"\n'
    assert render_completion(record_target(RECORD)) == RECORD["output"]


def test_every_stage_uses_byte_identical_prompts(ml100k, tmp_path, monkeypatch):
    """SFT data, self-play pairs (DPO prompts) and evaluation prompts are the very same string."""
    from train import self_play
    from utils.data import load_split
    from utils.trl_config import sft_dataset

    records = load_split(ml100k, "train")[:3]
    sft_prompts = sft_dataset(records)["prompt"]
    eval_prompts = [render_prompt(r) for r in records]  # what eval/inference.py sends to the model
    monkeypatch.setattr(self_play.random.Random, "sample", lambda self, pop, k: list(pop)[:k])
    self_play.main(self_play.Args(str(tmp_path / "pairs"), category="ML100K", negatives="random", spare_ratio=0,
                                  recipe_args="self_play.train_sample_size=3 self_play.valid_sample_size=0"))
    pairs = [json.loads(line) for line in (tmp_path / "pairs" / "dpo_train.jsonl").read_text().splitlines()]
    dpo_prompts = [p["prompt"] for p in pairs]
    train = load_split(ml100k, "train")
    assert [render_prompt(train[i]) for i in range(3)] == dpo_prompts
    assert sft_prompts == eval_prompts == [render_prompt(r) for r in records]
    assert all(p["chosen"] == render_completion(record_target(train[i])) for i, p in enumerate(pairs))


@pytest.mark.parametrize("text, title", [
    ('"Heat (1995)"\n', "Heat (1995)"),
    ('I recommend "Heat (1995)" and "Fargo (1996)"', "Heat (1995)"),      # extra text: the first quoted span
    ('"Heat (1995)', "Heat (1995)"),                                       # unclosed quote: to the end of the line
    ('"Heat (1995)\nsecond line', "Heat (1995)"),
    ("Heat (1995)\nFargo (1996)", "Heat (1995)"),                          # no quote: the first line
    ("\n  Heat (1995)  \n", "Heat (1995)"),
    ("", ""),
    ('""', ""),
    ("   ", ""),
])
def test_parse_title(text, title):
    assert parse_title(text) == title


def test_history_and_target_from_text_when_not_structured():
    assert record_history(RECORD) == ["Heat (1995)", "Fargo (1996)"]
    assert record_target(RECORD) == "Toy Story (1995)"
    structured = {**RECORD, "history": ["A"], "target": "B"}
    assert record_history(structured) == ["A"] and record_target(structured) == "B"
