import itertools

import pytest

from utils.io import UserError
from utils.seeds import MAX_ITERATION, MAX_RUN_SEED, STAGES, stage_seed


def test_no_two_runs_stages_or_iterations_share_a_seed():
    """Every (run seed, stage, iteration) of a grid gets its own seed: the rule before gave run seed 42's iteration 1
    and run seed 43's iteration 0 the same one."""
    grid = list(itertools.product(range(1001), STAGES, range(11)))
    seeds = {stage_seed(*point) for point in grid}
    assert len(seeds) == len(grid)
    assert stage_seed(42, "dpo", 1) != stage_seed(43, "dpo", 0)


def test_seeds_read_back_and_fit_numpy():
    """A seed reads as run seed, stage digit, iteration; the largest fits numpy's global seed (below 2**32)."""
    assert [stage_seed(42, s, 1) for s in ("sft", "self_play", "sft_step", "dpo")] == [421001, 422001, 423001, 424001]
    assert stage_seed(0, "sft") == 1000
    assert stage_seed(MAX_RUN_SEED, "dpo", MAX_ITERATION) < 2**32
    assert max(STAGES.values()) <= 9


@pytest.mark.parametrize("run_seed, iteration, message", [
    (-1, 0, "the run seed \\(SEED\\) must be an integer from 0 to 429495, got -1"),
    (MAX_RUN_SEED + 1, 0, "must be an integer from 0 to 429495, got 429496"),
    (42, MAX_ITERATION + 1, "the iteration must be an integer from 0 to 999, got 1000"),
])
def test_seeds_out_of_range_are_refused(run_seed, iteration, message):
    with pytest.raises(UserError, match=message):
        stage_seed(run_seed, "dpo", iteration)


def test_an_unknown_stage_has_no_seed():
    with pytest.raises(ValueError, match="no seed rule for stage 'eval'"):
        stage_seed(42, "eval")
