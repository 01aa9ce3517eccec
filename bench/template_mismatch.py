"""Does a model trained in the official contract name items when asked with the authors' evaluation template?

usage: python -m bench.template_mismatch --model_dir runs/official-seeds/seed42/SFT/ML100K [--n 100] [--category ML100K]

The authors' code trains SFT on an Alpaca template indented by 16 spaces, with no EOS, and evaluates with another,
unindented template, reading the title from what follows the last "Response:\n" of the decoded text (utils/prompt.py,
OfficialContract). This asks the model the first `n` test records twice, greedily with the official evaluation
settings (32 new tokens): with the evaluation template, as their evaluation does, and with the SFT text's own prompt
(the indented template up to "### Response:" and its newline). For each it counts the generations whose first quoted
span (a quote closed on its line) is a catalog name, and those whose title by the official reader is one (ValidRatio's
numerator). A model that learned the task names items in the first column with its own prompt only; the second column
also counts what the no-EOS generation writes after the answer.
"""
import argparse

from utils.data import category_dir, load_catalog, load_split
from utils.generation import Batching, generate
from utils.modeling import load_model, load_tokenizer
from utils.prompt import OFFICIAL

CUE = "### Response:"


def sft_prompt(record: dict) -> str:
    """The indented SFT text up to its response cue and newline: the prompt the model was trained on."""
    text = OFFICIAL.sft_text(record)
    return text[:text.index(CUE) + len(CUE)] + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", required=True)
    p.add_argument("--category", default="ML100K")
    p.add_argument("--n", type=int, default=100)
    a = p.parse_args()
    data = category_dir(a.category)
    records = load_split(data, "test")[:a.n]
    names = set(load_catalog(data).names)
    tokenizer, model = load_tokenizer(a.model_dir, padding_side="left"), load_model(a.model_dir)
    limit = OFFICIAL.max_new_tokens(tokenizer, names, "evaluation")
    print(f"{a.model_dir}: the first {len(records)} test records, greedy, {limit} new tokens")
    print("| prompt | first quoted span a catalog title | official reader's title a catalog title "
          "| first generation |\n|---|---:|---:|---|")
    for label, render in (("the authors' evaluation template", OFFICIAL.generation_prompt),
                          ("the SFT text's own (indented) prompt", sft_prompt)):
        texts = [t[0] for t in generate(model, tokenizer, [render(r) for r in records], max_new_tokens=limit,
                                        one_line=False, batching=Batching(progress=False))]
        first_quoted = sum(OFFICIAL.rejected_title(t) in names for t in texts)
        valid = sum(OFFICIAL.eval_title(OFFICIAL.answer(t)) in names for t in texts)
        print(f"| {label} | {first_quoted} | {valid} | `{texts[0][:72]!r}` |")


if __name__ == "__main__":
    main()
