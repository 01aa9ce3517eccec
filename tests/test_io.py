"""utils/io.py: list-valued arguments survive the trip from the shell through fire."""
import fire
import pytest

from utils.io import UserError, comma_list


@pytest.mark.parametrize("arg, expected", [("sigmoid", ["sigmoid"]), ("sigmoid,sft", ["sigmoid", "sft"]),
                                           ("q_proj,v_proj", ["q_proj", "v_proj"]), ("all-linear", ["all-linear"])])
def test_comma_lists_round_trip_through_fire(arg, expected):
    # fire turns "a,b" into the tuple ('a', 'b'); str() of that tuple split on commas was the LOSS_TYPE crash
    assert fire.Fire(lambda value: comma_list(value, "--value"), command=["--value", arg]) == expected


def test_an_empty_list_is_a_clear_error():
    with pytest.raises(UserError, match="--loss_type is empty"):
        comma_list(" , ", "--loss_type")


def test_a_setting_added_later_reads_as_its_old_value(tmp_path):
    """A run config written before --decoding existed is a greedy run: a greedy rerun reuses it, a constrained one
    stops with the difference."""
    from utils.io import check_same_settings, write_run_config

    write_run_config(tmp_path, "inference", {"seed": 1, "split": "test"})
    check_same_settings(tmp_path, "inference", {"seed": 1, "split": "test", "decoding": "greedy"})
    with pytest.raises(UserError, match="decoding 'greedy' -> 'constrained'"):
        check_same_settings(tmp_path, "inference", {"seed": 1, "split": "test", "decoding": "constrained"})
