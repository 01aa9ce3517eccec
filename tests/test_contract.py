"""The official contract (recipe field `contract: official`, utils/prompt.py): every text the authors' code builds,
pinned byte for byte for two fixed records, and the token ids and loss masks trl's trainers see with the SmolLM2
tokenizer. The expected strings were written out by reading the authors' functions (RegionCh/SPRec, Dec 2024:
train/sft.py formatting_prompts_func, train/data_generate.py and eval/inference.py generate_prompt and the pair
building, eval/evaluate.py title extraction) and trl 0.9.2's tokenization (SFTTrainer with a formatting function;
DPOTrainer.tokenize_row). The project's own contract is the default and is checked elsewhere (test_prompt.py, the
golden run in test_pipeline.py)."""
import json

import pytest

from utils.generation import Batching
from utils.io import UserError
from utils.prompt import OFFICIAL, PROJECT, contract_of, model_contract, render_completion, render_prompt

# A record with a history, and one without an input (the authors' templates have a branch for that).
R1 = {"instruction": "Given a list of movies the user recently watched, please recommend a new movie that the user "
                     "may like",
      "input": 'The user has watched the following movies before: "Heat (1995)", "Fargo (1996)"',
      "output": '"Toy Story (1995)"\n'}
R2 = {"instruction": "Recommend a movie", "input": "", "output": '"Babe (1995)"\n'}

# train/sft.py: a triple-quoted f-string inside an indented function, so every line after the first starts with 16
# spaces, the blank ones too; the response is the record's `output` (its own newline), then the template's newline and
# 16 spaces. An input shorter than 2 characters takes the branch without "### Input:".
SFT_R1 = ("Below is an instruction that describes a task, paired with an input that provides further context. Write a "
          "response that appropriately completes the request.\n"
          "                \n"
          "                ### Instruction:\n"
          "                Given a list of movies the user recently watched, please recommend a new movie that the "
          "user may like\n"
          "                \n"
          "                ### Input:\n"
          '                The user has watched the following movies before: "Heat (1995)", "Fargo (1996)"\n'
          "                \n"
          "                ### Response:\n"
          '                "Toy Story (1995)"\n'
          "\n"
          "                ")
SFT_R2 = ("Below is an instruction that describes a task, paired with an input that provides further context. Write a "
          "response that appropriately completes the request.\n"
          "                \n"
          "                ### Instruction:\n"
          "                Recommend a movie\n"
          "                \n"
          "                ### Response:\n"
          '                "Babe (1995)"\n'
          "\n"
          "                ")
# train/data_generate.py and eval/inference.py (the same generate_prompt): unindented, two spaces after "request.";
# without an input, another first sentence and no "### Input:".
PROMPT_R1 = ("Below is an instruction that describes a task, paired with an input that provides further context. Write "
             "a response that appropriately completes the request.  \n"
             "\n"
             "### Instruction:\n"
             "Given a list of movies the user recently watched, please recommend a new movie that the user may like\n"
             "\n"
             "### Input:\n"
             'The user has watched the following movies before: "Heat (1995)", "Fargo (1996)"\n'
             "\n"
             "### Response:\n")
PROMPT_R2 = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
             "request.  \n"
             "\n"
             "### Instruction:\n"
             "Recommend a movie\n"
             "\n"
             "### Response:\n")
# train/data_generate.py: instruction and input glued, no template, no response cue.
DPO_PROMPT_R1 = ("Given a list of movies the user recently watched, please recommend a new movie that the user may "
                 'likeThe user has watched the following movies before: "Heat (1995)", "Fargo (1996)"')
DPO_PROMPT_R2 = "Recommend a movie"

# What trl sees with the SmolLM2 tokenizer (BOS <|im_start|> = 1, EOS <|im_end|> = 2, which pads too).
# SFT: the whole text with the tokenizer's own special tokens (SmolLM2 adds none; Llama would add BOS), no EOS.
SFT_IDS_R1 = [
    19798, 314, 354, 5785, 338, 6601, 253, 3856, 28, 20054, 351, 354, 3007, 338, 2433, 2030, 2468, 30, 9517, 253,
    2426, 338, 13674, 32873, 260, 3116, 30, 40677, 20749, 20880, 42, 1047, 10887, 253, 1398, 282, 10026, 260, 2914,
    3928, 12635, 28, 5361, 3730, 253, 725, 7704, 338, 260, 2914, 654, 702, 40677, 20749, 18100, 42, 1047, 378, 2914,
    553, 12635, 260, 1695, 10026, 1092, 42, 476, 30359, 365, 33, 41, 41, 37, 23849, 476, 54, 12864, 365, 33, 41, 41,
    38, 19432, 40677, 20749, 14212, 42, 1047, 476, 68, 922, 10124, 365, 33, 41, 41, 37, 19432, 198, 945]
SFT_IDS_R2 = [
    19798, 314, 354, 5785, 338, 6601, 253, 3856, 28, 20054, 351, 354, 3007, 338, 2433, 2030, 2468, 30, 9517, 253,
    2426, 338, 13674, 32873, 260, 3116, 30, 40677, 20749, 20880, 42, 1047, 26484, 253, 7704, 40677, 20749, 14212,
    42, 1047, 476, 50, 23023, 365, 33, 41, 41, 37, 19432, 198, 945]
# DPO: BOS, the prompt and the answer tokenized together, EOS. R1's prompt ends with ')"' (one token alone), which
# merges with the answer's opening quote into ')' + '""': the ')' leaves the prompt and is trained as the answer's
# first token, in trl 0.9.2 as in trl 1.x. R1's prompt is 46 tokens with BOS, R2's 4.
DPO_CHOSEN_IDS_R1 = [
    1, 15423, 253, 1398, 282, 10026, 260, 2914, 3928, 12635, 28, 5361, 3730, 253, 725, 7704, 338, 260, 2914, 654,
    702, 504, 2914, 553, 12635, 260, 1695, 10026, 1092, 42, 476, 30359, 365, 33, 41, 41, 37, 23849, 476, 54, 12864,
    365, 33, 41, 41, 38, 25, 1093, 68, 922, 10124, 365, 33, 41, 41, 37, 19432, 198, 2]
DPO_REJECTED_IDS_R1 = [
    1, 15423, 253, 1398, 282, 10026, 260, 2914, 3928, 12635, 28, 5361, 3730, 253, 725, 7704, 338, 260, 2914, 654,
    702, 504, 2914, 553, 12635, 260, 1695, 10026, 1092, 42, 476, 30359, 365, 33, 41, 41, 37, 23849, 476, 54, 12864,
    365, 33, 41, 41, 38, 25, 1093, 54, 12864, 365, 33, 41, 41, 38, 19432, 198, 2]
DPO_CHOSEN_IDS_R2 = [1, 48617, 253, 7704, 18, 50, 23023, 365, 33, 41, 41, 37, 19432, 198, 2]
DPO_REJECTED_IDS_R2 = [1, 48617, 253, 7704, 1093, 198, 2]  # the empty quoted title '""' the model may generate
DPO_PROMPT_LENGTHS = (46, 4)


def test_official_texts_are_the_authors_byte_for_byte():
    assert [OFFICIAL.sft_text(r) for r in (R1, R2)] == [SFT_R1, SFT_R2]
    assert [OFFICIAL.generation_prompt(r) for r in (R1, R2)] == [PROMPT_R1, PROMPT_R2]
    assert [OFFICIAL.dpo_prompt(r) for r in (R1, R2)] == [DPO_PROMPT_R1, DPO_PROMPT_R2]
    assert [OFFICIAL.chosen(r) for r in (R1, R2)] == ['"Toy Story (1995)"\n', '"Babe (1995)"\n']  # `output` as is
    assert OFFICIAL.chosen({**R1, "output": '"Toy Story (1995)"'}) == '"Toy Story (1995)"'  # not re-rendered
    assert [OFFICIAL.rejected(t) for t in ("Fargo (1996)", "")] == ['"Fargo (1996)"\n', '""\n']
    # the two templates test for an input differently: a 1-character input has no "### Input:" only in SFT
    one = {**R2, "input": "x"}
    assert "### Input:" not in OFFICIAL.sft_text(one) and "### Input:\nx\n" in OFFICIAL.generation_prompt(one)


def test_the_project_contract_is_the_shared_prompt():
    assert PROJECT.generation_prompt(R1) == PROJECT.dpo_prompt(R1) == render_prompt(R1)
    assert PROJECT.sft_text(R1) == render_prompt(R1) + render_completion("Toy Story (1995)")
    assert PROJECT.chosen(R1) == render_completion("Toy Story (1995)") and PROJECT.one_line and PROJECT.caps_warmup


@pytest.mark.parametrize("generated, kept", [
    ('"Heat (1995)"\n\n                ### Instruction:', '"Heat (1995)"\n\n                ### Instruction:'),
    ('"Heat (1995)"\n\n### Response:\n"Fargo (1996)"\n', '"Fargo (1996)"\n'),  # after the last "Response:\n"
])
def test_official_answer_is_what_follows_the_last_response_cue(generated, kept):
    assert OFFICIAL.answer(generated) == kept and PROJECT.answer(generated) == generated


@pytest.mark.parametrize("text, title", [
    ("", "NAN"),                                                # an empty generation is embedded as "NAN"
    ('"Heat (1995)" and "Fargo (1996)"', "Heat (1995)"),
    ('  " Heat (1995) "\n', " Heat (1995) "),                   # not stripped
    ('"Heat (1995)\n                ### Response:', "Heat (1995)\n                ### Response:"),  # to the end
    ("Heat (1995)\nFargo (1996)", "Heat (1995)"),               # no quote: the first line
    ("\nHeat (1995)", ""),                                      # ... even an empty one
    ("                ", "                "),
])
def test_official_evaluation_title(text, title):
    assert OFFICIAL.eval_title(text) == title


@pytest.mark.parametrize("text, title", [
    ('"Heat (1995)"\n\n                ', "Heat (1995)"),
    ('I like "Heat (1995)" and "Fargo (1996)"', "Heat (1995)"),
    ('""\n', ""),                  # an empty quoted title is a pair (rejected '""\n')
    ('"Heat (1995)\n"', None),     # a quote closed on another line is no title: no pair
    ('"Heat (1995)', None),
    ("Heat (1995)", None),
    ("", None),
])
def test_official_self_play_title(text, title):
    assert OFFICIAL.rejected_title(text) == title


def test_official_self_play_pairs_skip_unquoted_and_keep_the_target(ml100k):
    """No grounding and no equality filter (the authors compared nothing): an unquoted generation makes no pair; one
    naming the target is a pair whose two sides are equal."""
    from train.self_play import self_play_pairs
    from utils.data import load_catalog

    drawn = [R1, R2, R1, R2]
    outputs = [['"Fargo (1996)"\n\n   '], ["no quote here"], ['"Toy Story (1995)"\n'], ['""']]
    prompts = [OFFICIAL.dpo_prompt(r) for r in drawn]
    pairs, counts = self_play_pairs(drawn, prompts, outputs, load_catalog(ml100k), "raw", "", 1, OFFICIAL)
    assert [(p["prompt"], p["chosen"], p["rejected"], p["record"]) for p in pairs] == [
        (DPO_PROMPT_R1, '"Toy Story (1995)"\n', '"Fargo (1996)"\n', 0),
        (DPO_PROMPT_R1, '"Toy Story (1995)"\n', '"Toy Story (1995)"\n', 2),
        (DPO_PROMPT_R2, '"Babe (1995)"\n', '""\n', 3)]
    assert counts == {"drawn": 4, "generated": 4, "parsed": 3, "valid": 2, "dropped_equal": 0, "dropped_empty": 1}


@pytest.fixture(scope="module")
def smollm2_tokenizer_model(tmp_path_factory):
    """The SmolLM2 tokenizer, and a one-layer random Llama with its vocabulary saved beside it: trl's data path
    depends on the tokenizer only, and the DPO trainer loads its reference from a path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from utils.modeling import load_tokenizer
    from utils.pretrained import build

    tok = load_tokenizer(build("smollm2"))
    out = tmp_path_factory.mktemp("smollm2-vocab")
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(out)
    tok.save_pretrained(out)
    return tok, str(out)


def test_official_sft_ids_and_labels_through_trl(smollm2_tokenizer_model):
    """The whole text is trained (labels = ids on every real token), with no EOS; padding is not trained."""
    from trl import SFTConfig, SFTTrainer

    from utils.trl_config import device_args, sft_dataset

    tok, model = smollm2_tokenizer_model
    assert [tok(t).input_ids for t in (SFT_R1, SFT_R2)] == [SFT_IDS_R1, SFT_IDS_R2]
    config = SFTConfig(output_dir="unused", per_device_train_batch_size=2, max_length=512,
                       completion_only_loss=OFFICIAL.completion_only_loss(small_model=False), report_to="none",
                       **device_args())
    trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset([R1, R2], OFFICIAL, tok),
                         processing_class=tok)
    batch = next(iter(trainer.get_train_dataloader()))
    rows = sorted(zip(batch["input_ids"].tolist(), batch["labels"].tolist()), key=lambda r: -r[1].count(-100))
    for (ids, labels), expected in zip(rows, (SFT_IDS_R2, SFT_IDS_R1)):  # the shorter row is padded
        n = len(expected)
        assert ids[:n] == expected and labels[:n] == expected and tok.eos_token_id not in expected
        assert set(labels[n:]) <= {-100} and set(ids[n:]) <= {tok.pad_token_id}


def authors_dpo_sequence(tok, prompt: str, answer: str) -> tuple[list[int], int]:
    """(ids, prompt length) of one DPO sequence as trl 0.9.2 built it, from its documented behaviour: prompt and answer
    tokenized together without special tokens; the answer starts where the prompt's own tokens stop matching (one token
    early when the prompt's last token merged with the answer); BOS first, EOS last."""
    joint = tok(prompt + answer, add_special_tokens=False).input_ids
    alone = tok(prompt, add_special_tokens=False).input_ids
    start = len(alone) - (joint[:len(alone)] != alone)
    return [tok.bos_token_id] + joint + [tok.eos_token_id], 1 + start


def test_official_dpo_ids_and_masks_through_trl(smollm2_tokenizer_model):
    """BOS before the glued prompt (SmolLM2's tokenizer adds none itself, so it goes in as text), EOS after each
    answer, the loss on the answer; trl 1.x's rows equal trl 0.9.2's for these records."""
    from trl import DPOConfig, DPOTrainer

    from utils.trl_config import device_args, preference_dataset

    tok, model = smollm2_tokenizer_model
    pairs = [{"prompt": OFFICIAL.dpo_prompt(r), "chosen": OFFICIAL.chosen(r), "rejected": OFFICIAL.rejected(t)}
             for r, t in ((R1, "Fargo (1996)"), (R2, ""))]
    prefix = OFFICIAL.dpo_prompt_prefix(tok)
    assert prefix == "<|im_start|>" and PROJECT.dpo_prompt_prefix(tok) == ""
    config = DPOConfig(output_dir="unused", per_device_train_batch_size=2, report_to="none", **device_args())
    with OFFICIAL.dpo_tokenizing():
        trainer = DPOTrainer(model=model, ref_model=None, args=config, processing_class=tok,
                             train_dataset=preference_dataset(pairs, prompt_prefix=prefix))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])  # rows: R1, R2 chosen; then rejected
    ids, masks = batch["input_ids"].tolist(), batch["completion_mask"].tolist()
    expected = [DPO_CHOSEN_IDS_R1, DPO_CHOSEN_IDS_R2, DPO_REJECTED_IDS_R1, DPO_REJECTED_IDS_R2]
    answers = [pairs[0]["chosen"], pairs[1]["chosen"], pairs[0]["rejected"], pairs[1]["rejected"]]
    for row, (want, answer, pair) in enumerate(zip(expected, answers, pairs * 2)):
        n, p = len(want), DPO_PROMPT_LENGTHS[row % 2]
        assert ids[row][:n] == want and masks[row][:n] == [0] * p + [1] * (n - p)
        assert set(masks[row][n:]) <= {0}
        assert authors_dpo_sequence(tok, pair["prompt"], answer) == (want, p)


def test_the_contract_is_a_recipe_field(tmp_path):
    from utils.recipe import RECIPES, resolve

    small = RECIPES / "small.yaml"
    project = resolve(small, "", ("sft", "dpo"))
    assert "contract" not in project and contract_of(project) is PROJECT
    assert project["sft"]["lr_scheduler_type"] == "cosine" and "load_best_model_at_end" not in project["sft"]
    official = resolve(small, "contract=official sft.save_steps=100", ("sft", "dpo"))
    assert official["contract"] == "official" and contract_of(official) is OFFICIAL
    assert official["sft"]["lr_scheduler_type"] == official["dpo"]["lr_scheduler_type"] == "linear"
    assert official["sft"]["load_best_model_at_end"] and official["sft"]["save_steps"] == 100  # the run's override
    own = tmp_path / "official.yaml"
    own.write_text("inherit: " + str(small) + "\ncontract: official\n")
    assert contract_of(resolve(own, "", ("sft",))) is OFFICIAL
    assert "contract" not in resolve(own, "contract=project", ("sft",))
    with pytest.raises(UserError, match="RECIPE_ARGS contract must be one of project, official, bare-dpo-prompt, "
                                        "official-schedule, got 'authors'"):
        resolve(small, "contract=authors")


def test_the_boundary_merge_notice_is_dropped_under_the_official_contract_only():
    """trl warns once when a prompt's last token merges with the answer's first: the authors' glued DPO prompt does
    that by construction (R1 above), so the official contract drops that one message while trl tokenizes."""
    import logging

    log = logging.getLogger("trl.trainer.dpo_trainer")

    def passes(message):
        return bool(log.filter(logging.LogRecord(log.name, logging.WARNING, "", 0, message, None, None)))

    notice = "[RANK 0] The tokenized prompt is not a prefix of the tokenized prompt+completion, usually ..."
    with OFFICIAL.dpo_tokenizing():
        assert not passes(notice) and passes("another warning")
    with PROJECT.dpo_tokenizing():
        assert passes(notice)
    assert passes(notice)


def test_schedule_without_the_warmup_cap_and_with_the_best_checkpoint():
    from utils.trl_config import batch_plan, schedule_args

    plan = batch_plan(16, 16, 1)
    capped = schedule_args(1600, 1, plan, 3, 20)  # 100 steps, 3 evaluations
    assert capped["warmup_steps"] == 10 and capped["eval_steps"] == 33
    uncapped = schedule_args(1600, 1, plan, 3, 20, capped=False, save_steps=500)
    assert uncapped["warmup_steps"] == 20 and uncapped["eval_steps"] == 500  # at the saves only (and the last step)
    assert schedule_args(1600, 1, plan, 0, 20, save_steps=500)["eval_strategy"] == "steps"


def test_a_model_is_continued_only_in_its_contract(tmp_path):
    from utils.prompt import check_model_contract

    (tmp_path / "run_config_sft.json").write_text(json.dumps({"args": {"resolved_recipe": {"contract": "official"}}}))
    assert model_contract(tmp_path) is OFFICIAL and model_contract(tmp_path / "elsewhere") is PROJECT
    check_model_contract(tmp_path, OFFICIAL, "--model_dir")
    with pytest.raises(UserError, match='trained with contract official.*RECIPE_ARGS="contract=official"'):
        check_model_contract(tmp_path, PROJECT, "--model_dir")


@pytest.mark.parametrize("contract, given, grounded_with", [
    ("official", "", "paraphrase-MiniLM-L3-v2"),  # the authors' grounding model by default
    ("official", "all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),  # EMBEDDING_MODEL still wins
    ("project", "", None),  # None: utils.metrics takes the package default, all-MiniLM-L6-v2
    ("bare-dpo-prompt", "", None),
    ("official-schedule", "", None),
])
def test_evaluation_grounds_with_the_contracts_model(ml100k, tmp_path, monkeypatch, contract, given, grounded_with):
    import utils.metrics
    from eval import evaluate

    class Grounded(Exception):
        pass

    def stop(records, predictions, catalog, ks, embedding_model, title, popularity):
        raise Grounded(embedding_model)

    monkeypatch.setattr(utils.metrics, "evaluate_predictions", stop)
    recipe = {} if contract == "project" else {"contract": contract}
    (tmp_path / "run_config_sft.json").write_text(json.dumps({"args": {"resolved_recipe": recipe}}))
    from utils.data import load_split

    record = load_split(ml100k, "test")[0]
    (tmp_path / "test_result.json").write_text(json.dumps([{**record, "predict": ['"Heat (1995)"']}]))
    with pytest.raises(Grounded) as grounded:
        evaluate.main(evaluate.Args(str(tmp_path / "test_result.json"), data_dir=str(ml100k), embedding_model=given))
    assert grounded.value.args[0] == grounded_with


def test_the_bare_dpo_prompt_ablation_changes_the_dpo_prompt_only():
    from utils.prompt import BARE_DPO_PROMPT

    assert BARE_DPO_PROMPT.dpo_prompt(R1) == DPO_PROMPT_R1 and BARE_DPO_PROMPT.dpo_prompt(R2) == DPO_PROMPT_R2
    for record in (R1, R2):
        for stage_text in ("sft_text", "generation_prompt", "chosen"):
            assert getattr(BARE_DPO_PROMPT, stage_text)(record) == getattr(PROJECT, stage_text)(record)
    assert BARE_DPO_PROMPT.rejected("Heat (1995)") == PROJECT.rejected("Heat (1995)")
    assert BARE_DPO_PROMPT.eval_title('"Heat (1995)" and more') == "Heat (1995)"
    for flag in ("one_line", "drops_predicted_target", "caps_warmup", "recipe_changes", "embedding_model"):
        assert getattr(BARE_DPO_PROMPT, flag) == getattr(PROJECT, flag)
    assert BARE_DPO_PROMPT.settings() == {"contract": "bare-dpo-prompt"}


def test_the_schedule_ablation_changes_the_schedule_only(tmp_path):
    from utils.prompt import OFFICIAL_SCHEDULE
    from utils.recipe import RECIPES, resolve

    recipe = resolve(RECIPES / "small.yaml", "contract=official-schedule", ("sft", "sft_step", "dpo"))
    official = resolve(RECIPES / "small.yaml", "contract=official", ("sft", "sft_step", "dpo"))
    sections = ("sft", "sft_step", "dpo")
    assert [recipe[s] for s in sections] == [official[s] for s in sections]
    assert not OFFICIAL_SCHEDULE.caps_warmup and contract_of(recipe) is OFFICIAL_SCHEDULE
    for record in (R1, R2):
        for text in ("sft_text", "generation_prompt", "dpo_prompt", "chosen"):
            assert getattr(OFFICIAL_SCHEDULE, text)(record) == getattr(PROJECT, text)(record)
    for flag in ("one_line", "drops_predicted_target", "embedding_model", "small_model_texts"):
        assert getattr(OFFICIAL_SCHEDULE, flag) == getattr(PROJECT, flag)


def test_official_generation_runs_past_the_answer_line(tiny_model):
    """The project stops at the first newline; the official contract runs on (to EOS or the limit): the same greedy
    tokens, so the project's answer is the first line of the official one."""
    from utils.generation import generate
    from utils.modeling import load_model, load_tokenizer

    tok, model = load_tokenizer(tiny_model, padding_side="left"), load_model(tiny_model)
    prompts = [OFFICIAL.generation_prompt(R1), OFFICIAL.generation_prompt(R2)]
    short = generate(model, tok, prompts, max_new_tokens=24, batching=Batching(progress=False))
    long = generate(model, tok, prompts, max_new_tokens=24, batching=Batching(progress=False), one_line=False)
    for (s,), (t,) in zip(short, long):
        assert s == (t.split("\n", 1)[0] + "\n" if "\n" in t else t)


OFFICIAL_TOY = ("contract=official sft.sample_size=64 sft.valid_sample_size=8 sft.num_train_epochs=1 sft.save_steps=2 "
                "self_play.train_sample_size=16 self_play.valid_sample_size=4 sft_step.save_steps=1 dpo.save_steps=1")


@pytest.mark.slow
def test_official_contract_end_to_end(ml100k, tmp_path):
    """SFT.sh and one SPRec.sh iteration with RECIPE_ARGS="contract=official" at toy sizes (checkpoints every 1-2
    steps, so the best one is chosen and removed). The toy SFT generates no quoted title yet, so self-play draws its
    rejected items by constrained beam search, as the golden run does; greedy self-play is tested above."""
    from test_pipeline import sh

    # Grounded with the default model by name: the authors' (the official default) would download its 63 MB wheel.
    # SPARE_RATIO: the official contract's 500 spare prompts are tested in tests/test_self_play.py, not generated here
    logs = [sh(tmp_path, script, *args, RECIPE_ARGS=OFFICIAL_TOY, TEST_SAMPLE_SIZE="8", EVAL_SFT_STEP="0",
               EMBEDDING_MODEL="all-MiniLM-L6-v2", SPARE_RATIO="0.5")
            for script, *args in (("shell/SFT.sh",), ("shell/SPRec.sh", "1"))]
    log = "".join(p.stdout + p.stderr for p in logs)
    for warning in ("FutureWarning", "DeprecationWarning", "not a prefix"):
        assert warning not in log, log[-3000:]
    sft, it = tmp_path / "SFT/ML100K", tmp_path / "SPRec/ML100K/it0"
    for model, section, save_steps in ((sft, "sft", 2), (it / "SFT", "sft_step", 1), (it / "DPO", "dpo", 1)):
        args = json.loads((model / f"run_config_{section[:3]}.json").read_text())["args"]
        assert args["resolved_recipe"]["contract"] == "official" and model_contract(model) is OFFICIAL
        assert args["resolved_recipe"][section]["lr_scheduler_type"] == "linear"
        assert args["best_checkpoint_step"] % save_steps == 0 and not list(model.glob("checkpoint-*"))
    assert (sft / "eval_top5.json").is_file() and (it / "DPO/eval_top5.json").is_file()
    grounded_with = json.loads((it / "DPO/eval_top5.json").read_text())["embedding_model"]
    assert grounded_with.startswith("all-MiniLM-L6-v2 sha256:"), grounded_with
    assert json.loads((sft / "run_config_sft.json").read_text())["args"]["warmup_steps_effective"] == 50  # uncapped
    inference = json.loads((it / "DPO/run_config_inference.json").read_text())
    assert inference["settings"]["contract"] == "official"
    assert all(isinstance(r["predict"], list) for r in json.loads((it / "DPO/test_result.json").read_text()))
    drawn = [json.loads(x) for x in (it / "data/sft_train.jsonl").read_text().splitlines()]
    pairs = [json.loads(x) for x in (it / "data/dpo_train.jsonl").read_text().splitlines()]
    assert [p["record"] for p in pairs] == list(range(16))  # nothing dropped: beams are quoted catalog titles
    assert [(p["prompt"], p["chosen"]) for p in pairs] == [(r["instruction"] + r["input"], r["output"]) for r in drawn]
    # the contract is a result-changing setting: the finished stage refuses the project's contract in one line
    again = sh(tmp_path, "shell/SFT.sh", check=False, RECIPE_ARGS=OFFICIAL_TOY.replace("contract=official ", ""),
               TEST_SAMPLE_SIZE="8")
    assert again.returncode == 2 and "resolved_recipe.contract 'official' -> None" in again.stderr, again.stderr
