import itertools

import pytest

from hashpool_cln.desk.states import FINAL, TRANSITIONS, IllegalTransition, State, transition


def test_happy_path_is_legal():
    path = [State.NEW, State.QUOTED, State.CUSTODY, State.PAYING, State.PAID, State.SETTLED]
    for old, new in itertools.pairwise(path):
        assert transition(old, new) is new


@pytest.mark.parametrize("old", list(State))
@pytest.mark.parametrize("new", list(State))
def test_only_listed_moves_are_allowed(old, new):
    if (old, new) in TRANSITIONS:
        assert transition(old.value, new.value) is new
    else:
        with pytest.raises(IllegalTransition):
            transition(old, new)


def test_final_states_have_no_way_out():
    for old, _ in TRANSITIONS:
        assert old not in FINAL


def test_paying_can_never_be_rejected():
    # Once a payment may have started, the token can only end paid or refunded.
    assert (State.PAYING, State.REJECTED) not in TRANSITIONS
    assert (State.CUSTODY, State.REJECTED) not in TRANSITIONS
