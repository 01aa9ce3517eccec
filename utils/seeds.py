"""The seed rule: each training stage of a run draws from its own seed, derived here alone from the run seed (SEED),
the stage and the iteration.

    stage_seed(42, "sft")           -> 421000   the SFT model: its records, their order, the small model's start weights
    stage_seed(42, "self_play", 1)  -> 422001   iteration 1's drawn records, offline negatives, sampled predictions
    stage_seed(42, "sft_step", 1)   -> 423001   iteration 1's SFT step
    stage_seed(42, "dpo", 1)        -> 424001   iteration 1's DPO step

A seed reads back as the run seed, the stage's digit and the iteration in three digits, so no two (run seed, stage,
iteration) share one. (The rule before, SEED + i for the SFT and DPO steps and SEED x 1000 + i for self-play, gave
run seed 42's iteration 1 and run seed 43's iteration 0 the same seed, 43: two "independent" seeds of a study shared
their draws.) A stage in a chain of the same kind (the learning curve's SFT continuations) passes its place in the
chain as the iteration. Every seed is below 2**32, the widest seed numpy's global generator takes (transformers'
set_seed seeds it).

Left out of the rule, on purpose:
- the method: at one (run seed, stage, iteration) every method draws the same records in the same order, so two
  methods of a run differ by their negatives and their steps, not by their draws (common random numbers: the paired
  comparisons of eval/stats.py carry no noise the methods do not make);
- the data draws every model of a run shares: the sampled test users (TEST_SAMPLE_SIZE) and the learning curve's
  record slices are drawn with the run seed itself, so that every model is scored on the same users.
Runs made under the rule before record no `stage_seed` in their run configs; a stage does not resume them.
"""
from utils.io import UserError

STAGES = {"sft": 1, "self_play": 2, "sft_step": 3, "dpo": 4}  # the stage's digit
MAX_ITERATION = 999
MAX_RUN_SEED = (2**32 - 10_000) // 10_000  # 429,495: every derived seed stays below 2**32


def stage_seed(run_seed: int, stage: str, iteration: int = 0) -> int:
    """The seed of `stage` at `iteration` of the run seeded `run_seed`."""
    if stage not in STAGES:
        raise ValueError(f"no seed rule for stage {stage!r}: one of {', '.join(STAGES)}")
    if not (isinstance(run_seed, int) and 0 <= run_seed <= MAX_RUN_SEED):
        raise UserError(f"the run seed (SEED) must be an integer from 0 to {MAX_RUN_SEED}, got {run_seed!r}")
    if not (isinstance(iteration, int) and 0 <= iteration <= MAX_ITERATION):
        raise UserError(f"the iteration must be an integer from 0 to {MAX_ITERATION}, got {iteration!r}")
    return (run_seed * 10 + STAGES[stage]) * 1000 + iteration
