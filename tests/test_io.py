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
