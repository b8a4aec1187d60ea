"""Type to find a label: the state machine, without widgets."""

from oal_widget.ui.label_filter import LabelFilter

NAMES = ["cat", "caterpillar", "dog", "bobcat", "Camel"]


def started() -> LabelFilter:
    f = LabelFilter()
    f.start(NAMES)
    return f


def test_typing_narrows_names_starting_with_it_first_any_case():
    f = started()
    assert f.matches() == [0, 1, 2, 3, 4], "all before anything is typed"
    for k in "ca":
        assert f.key(k) is None
    assert f.matches() == [0, 1, 4, 3]  # cat, caterpillar, Camel, then bobcat (it holds "ca")
    f.key("t")
    assert f.matches() == [0, 1, 3] and f.choice == 0
    assert "3 match" in f.describe() and "Enter picks “cat”" in f.describe()


def test_enter_picks_the_choice_arrows_move_it_escape_cancels():
    f = started()
    for k in "cat":
        f.key(k)
    f.key("ArrowDown")
    assert f.choice == 1
    f.key("ArrowUp")
    f.key("ArrowUp")  # wraps round
    assert f.choice == 3
    assert f.key("Enter") == ("label", 3) and not f.active
    f.start(NAMES)
    assert f.key("Escape") == "cancel" and not f.active


def test_backspace_corrects_and_nothing_matching_is_never_picked():
    f = started()
    for k in "cx":
        f.key(k)
    assert f.matches() == [] and f.choice is None and "matches none" in f.describe()
    assert f.key("Enter") is None and f.active, "Enter with no match picks nothing"
    f.key("Backspace")
    assert f.text == "c" and f.key("Enter") == ("label", 0)


def test_keys_with_names_are_not_typed():
    f = started()
    for k in ("Shift", "F5", "Tab", None):
        f.key(k)
    assert f.text == "" and f.active
