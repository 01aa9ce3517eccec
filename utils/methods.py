"""The methods, in one table, and the run-directory layout they write: read by the run plan (utils/plan.py), the
report and the figures.

usage: python -m utils.methods                                   # the table
A method is its rejected items (the model's own predictions or offline ones), how many per pair and the loss that
reads them, and the steps each self-play iteration takes. Adding a baseline is one entry in METHODS (and a test).

The layout under a run root (OUTPUT_ROOT), shared by every stage, script and reader:
    SFT/<Category>/                      the SFT model every method starts from
    MostPop/<Category>/                  eval files only (Random, SASRec, GRU4Rec: the same, plus a run config)
    <Method>/<Category>/it<i>/data/      the iteration's pairs and fresh positives (train/self_play.py)
    <Method>/<Category>/it<i>/SFT/       the SFT step's model, when the method takes one
    <Method>/<Category>/it<i>/DPO/       the DPO step's model, when the method takes one
    plans/<name>.json                    the run plans that made them (utils/plan.py)
and under a learning curve's root (shell/learning_curve.sh):
    slices/<Category>/records-<b>.jsonl  the records the stage for budget b trains on
    SFT-<b>/<Category>/                  the model that has seen b records
"""
import re
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Method:
    name: str  # METHOD in the scripts and the directory it writes under a run root
    about: str  # one line: what it is
    negatives: str = ""  # the rejected items: self (the model's own predictions), random or semantic
    multi_negative_loss: str = ""  # sdpo or dmpo: NUM_NEGATIVES rejected items per pair and this DPO loss
    steps: tuple = ()  # what each iteration trains, in order ("SFT", "DPO"); empty: no iterations
    genre_weighting: bool = False  # the SFT steps' records weighted by genre (IFairLRS-style)
    color: str = "gray"  # in the figures
    made_by: str = ""  # a reference row made outside the self-play scripts: its command (never in BASELINES)

    @property
    def iterative(self) -> bool:
        return bool(self.steps)

    @property
    def result_step(self) -> str:
        """The step whose model is an iteration's result (the figures and the statistics take it)."""
        return self.steps[-1]

    @property
    def implicit_step(self) -> str | None:
        """The step a row label leaves out: the only one, when a method takes one ("DPO it0", not "DPO it0 DPO")."""
        return self.steps[0] if len(self.steps) == 1 else None


# In table order.
METHODS = (
    Method("MostPop", "the most frequent training targets for everyone (a sanity floor)", color="black"),
    Method("SFT", "the supervised fine-tuned model every method starts from", color="dimgray"),
    Method("SPRec", "self-play: the model's own predictions rejected, an SFT step then a DPO step",
           negatives="self", steps=("SFT", "DPO"), color="tab:blue"),
    Method("DPO", "random negatives (never an item the user interacted with), DPO steps only",
           negatives="random", steps=("DPO",), color="tab:orange"),
    Method("DPO+SFT", "random negatives and SPRec's SFT step each iteration (the control that isolates self-play)",
           negatives="random", steps=("SFT", "DPO"), color="tab:red"),
    Method("S-DPO", "NUM_NEGATIVES random negatives per pair, the softmax-DPO loss, DPO steps only",
           negatives="random", multi_negative_loss="sdpo", steps=("DPO",), color="tab:purple"),
    Method("DMPO", "NUM_NEGATIVES random negatives per pair, the DMPO loss, DPO steps only",
           negatives="random", multi_negative_loss="dmpo", steps=("DPO",), color="tab:brown"),
    Method("SemanticDPO", "the item least similar to the history as the negative (RosePO-style), DPO steps only",
           negatives="semantic", steps=("DPO",), color="tab:pink"),
    Method("GenreSFT", "genre re-weighted SFT steps only (IFairLRS-style)",
           negatives="random", steps=("SFT",), genre_weighting=True, color="tab:olive"),
    Method("SFT-only", "SPRec's SFT steps without its DPO step (ablation)",
           negatives="random", steps=("SFT",), color="tab:green"),
    # reference rows: ranked lists of the catalog, no text, scored like MostPop; made when asked, never by BASELINES
    Method("Random", "a seeded uniform random ranking of the catalog for each user (the chance floor)",
           color="silver", made_by="python -m eval.random_baseline"),
    Method("SASRec", "SASRec from RecBole 1.2.1 on the same split (a conventional sequential recommender)",
           color="tab:cyan", made_by="python -m eval.sasrec (in .venv-recbole: bash shell/sasrec.sh)"),
    Method("GRU4Rec", "GRU4Rec from RecBole 1.2.1 on the same split", color="tab:gray",
           made_by="python -m eval.sasrec --model GRU4Rec (in .venv-recbole: MODEL=GRU4Rec bash shell/sasrec.sh)"),
)
BY_NAME = {m.name: m for m in METHODS}
ITERATIVE = tuple(m.name for m in METHODS if m.iterative)
BASELINES = tuple(m.name for m in METHODS if m.name not in ("SFT", "SPRec") and not m.made_by)  # BASELINES=all


def iterative_method(name: str) -> Method:
    """The method METHOD names in shell/SPRec.sh: one with self-play iterations."""
    from utils.io import UserError

    if name in BY_NAME and BY_NAME[name].made_by:
        raise UserError(f"METHOD={name} takes no self-play iterations: {BY_NAME[name].made_by} makes it")
    if name in ("SFT", "MostPop"):
        raise UserError(f"METHOD={name} takes no self-play iterations (shell/SFT.sh makes SFT, shell/baselines.sh "
                        f"MostPop)")
    if name not in ITERATIVE:
        raise UserError(f"METHOD must be one of {', '.join(ITERATIVE)}, got {name!r}")
    return BY_NAME[name]


# --------------------------------------------------------------------------------------------------- layout
ITERATION_DIR = re.compile(r"it(\d+)")


def method_dir(run_root, name: str, category: str) -> Path:
    """<run root>/<Method>/<Category>: the SFT model, MostPop's eval files, or an iterative method's iterations."""
    return Path(run_root) / name / category


def iteration_dir(run_root, name: str, category: str, iteration: int) -> Path:
    """<run root>/<Method>/<Category>/it<i>: one iteration's data and models."""
    return method_dir(run_root, name, category) / f"it{iteration}"


def curve_stage_dir(run_root, budget: int, category: str) -> Path:
    """A learning curve's model that has seen `budget` records."""
    return Path(run_root) / f"SFT-{budget}" / category


def curve_slice(run_root, category: str, budget: int) -> Path:
    """The records a learning curve's stage for `budget` trains on."""
    return Path(run_root) / "slices" / category / f"records-{budget}.jsonl"


def iteration_dirs(base) -> list[tuple[int, Path]]:
    """The it<i> directories of an iterative method's <Method>/<Category> directory, by iteration."""
    found = [(int(m.group(1)), d) for d in Path(base).iterdir()
             if (m := ITERATION_DIR.fullmatch(d.name)) and d.is_dir()]
    return sorted(found)


def locate(model_dir) -> tuple[Path, list[str], int | None, str]:
    """What a model directory is, from its path alone: (its <Method>/<Category> directory, [Method, Category], the
    iteration or None, the step or '')."""
    parts = Path(model_dir).resolve().parts
    its = [i for i, p in enumerate(parts) if ITERATION_DIR.fullmatch(p)]
    i = its[-1] if its else len(parts)
    return Path(*parts[:i]), list(parts[max(0, i - 2):i]), (int(parts[i][2:]) if its else None), "/".join(parts[i + 1:])


def method_settings(name: str, num_negatives) -> dict:
    """What a run of an iterative method takes: its negatives, how many per pair (NUM_NEGATIVES for a multi-negative
    loss, else 1), its recipe change (the multi-negative loss) and the steps of each iteration."""
    from utils.io import UserError

    m = iterative_method(name)
    k = 1
    if m.multi_negative_loss:
        if not re.fullmatch(r"[0-9]+", str(num_negatives)) or int(num_negatives) < 1:
            raise UserError(f"NUM_NEGATIVES must be a positive integer, got {num_negatives!r}")
        k = int(num_negatives)
    return {"negatives": m.negatives, "num_negatives": k,
            "recipe_args": f"dpo.loss_type={m.multi_negative_loss}" if m.multi_negative_loss else "",
            "sft_step": "SFT" in m.steps, "dpo_step": "DPO" in m.steps, "genre_weighting": m.genre_weighting}


# ------------------------------------------------------------------------------------------------------- CLI
def table() -> str:
    lines = [f"{'method':<12} {'negatives':<9} {'loss':<8} {'steps':<8} about"]
    for m in METHODS:
        loss = m.multi_negative_loss or ("sigmoid" if "DPO" in m.steps else "-")
        lines.append(f"{m.name:<12} {m.negatives or '-':<9} {loss:<8} {'+'.join(m.steps) or '-':<8} {m.about}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m utils.methods", description=__doc__.split("\n")[0])
    ap.parse_args(argv)
    print(table())


if __name__ == "__main__":
    main(sys.argv[1:])
