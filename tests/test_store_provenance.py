"""Who labelled what, how, when: provenance, pages of labels as one step, undo that never overwrites
another session's change, double labelling (which label stands) and settling. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from oal_widget.data.store import SOURCES, UndoConflict
from oal_widget.data.store.labelling import Labelling

pytest_plugins = ["pg_server"]

NAMES = ["cat", "dog", "bird"]


@pytest.fixture
def alice(backend):
    s = backend.open(annotator="alice")
    s.set_label_names(NAMES)
    return s


@pytest.fixture
def bob(backend, alice):
    return backend.open(annotator="bob")


def history(backend) -> list[tuple]:
    return backend.history("session, step, path, label, source, undone")


# --- provenance -------------------------------------------------------------------------------------
def test_every_label_records_annotator_time_source_and_model_labels(alice):
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert alice.label("a.png", "cat") is None
    assert alice.label("b.png", "dog", source="accepted", model_labels=42) is None
    assert alice.label("c.png", "bird", source="review", model_labels=7) is None
    assert alice.label("d.png", "cat", source="imported") is None
    a, b, c, d = alice.records()
    assert (a.path, a.label, a.split, a.source, a.annotator, a.model_labels) == (
        "a.png", "cat", "train", "person", "alice", None,
    )  # fmt: skip
    assert (b.source, b.model_labels) == ("accepted", 42)
    assert (c.source, c.model_labels, d.source, d.model_labels) == ("review", 7, "imported", None)
    for r in (a, b, c, d):
        created = datetime.fromisoformat(r.created)
        assert created.utcoffset() == timedelta(0)  # UTC
        assert before < created < datetime.now(UTC) + timedelta(seconds=5)
        assert r.updated >= r.created
    assert alice.counts_by_source() == {
        "person": 1,
        "accepted": 1,
        "review": 1,
        "imported": 1,
        "duplicate": 0,
    }
    assert list(alice.counts_by_source()) == list(SOURCES)


def test_sources_reads_the_source_of_the_labelled_paths_asked_for(alice, bob):
    alice.label("a.png", "cat")
    bob.label("b.png", "dog", source="accepted")
    assert alice.sources(["b.png", "a.png", "nope.png"]) == {"a.png": "person", "b.png": "accepted"}
    assert alice.sources([]) == {}


def test_a_relabel_keeps_when_it_was_first_labelled_and_records_the_new_source(alice):
    alice.label("a.png", "cat")
    first = alice.record("a.png")
    alice.label("a.png", "dog", source="accepted", model_labels=3)
    again = alice.record("a.png")
    assert again.created == first.created and again.updated >= first.updated
    assert (again.label, again.source, again.model_labels) == ("dog", "accepted", 3)
    assert alice.record("nope.png") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"source": "robot"},
            "source='robot' is invalid: expected one of 'person', 'accepted', 'review', 'imported'",
        ),
        ({"source": "person", "model_labels": 5}, "only a label the model suggested"),
        ({"source": "accepted", "model_labels": -1}, "model_labels=-1 is invalid"),
        ({"source": "accepted", "model_labels": 2.5}, "model_labels=2.5 is invalid"),
    ],
)
def test_bad_provenance_is_refused_and_nothing_is_written(backend, alice, kwargs, message):
    with pytest.raises(ValueError, match=message):
        alice.label("a.png", "cat", **kwargs)
    if kwargs.get("source") != "person":  # label_many gives a page's model_labels to accepted items only
        with pytest.raises(ValueError, match=message.split(":")[0]):
            alice.label_many([("a.png", "cat")], **kwargs)
    assert alice.labels() == {} and history(backend) == []


# --- a page of labels: one transaction, one undo step ------------------------------------------------
def test_label_many_is_one_step_and_one_undo(backend, alice):
    alice.label("old.png", "bird")
    page = [("a.png", "cat"), ("b.png", "dog", "accepted"), ("old.png", "cat", "review")]
    assert alice.label_many(page, source="person", model_labels=9) == [None, None, "bird"]
    assert alice.labels() == {"a.png": "cat", "b.png": "dog", "old.png": "cat"}
    records = {r.path: r for r in alice.records()}
    # model_labels goes to the labels the model suggested, not to the person's own choice.
    assert (records["a.png"].source, records["a.png"].model_labels) == ("person", None)
    assert (records["b.png"].source, records["b.png"].model_labels) == ("accepted", 9)
    assert (records["old.png"].source, records["old.png"].model_labels) == ("review", 9)
    first, *page_rows = history(backend)
    assert len(page_rows) == 3 and len({row[1] for row in page_rows}) == 1  # the page is one step
    assert page_rows[0][1] != first[1]
    result = alice.undo_step()
    assert result and result.paths == ["a.png", "b.png", "old.png"] and result.conflicts == []
    assert alice.labels() == {"old.png": "bird"}  # the whole page undone at once
    assert alice.undo() == "old.png" and alice.labels() == {}
    assert not alice.undo_step() and alice.undo_step().paths == []


def test_label_many_is_all_or_nothing(backend, alice, monkeypatch):
    with pytest.raises(ValueError, match="label 'horse' for 'b.png' is not one of the labels"):
        alice.label_many([("a.png", "cat"), ("b.png", "horse")])
    with pytest.raises(ValueError, match="'a.png' appears twice in one page"):
        alice.label_many([("a.png", "cat"), ("a.png", "dog")])
    with pytest.raises(ValueError, match="image path '../x.png' is invalid"):
        alice.label_many([("a.png", "cat"), ("../x.png", "dog")])
    with pytest.raises(ValueError, match="item 'a.png' is invalid"):
        alice.label_many(["a.png"])

    def fail(*args, **kwargs):  # fails after the labels of the page were written, before the commit
        raise RuntimeError("simulated failure in the middle of the page")

    monkeypatch.setattr(Labelling, "_log", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        alice.label_many([("a.png", "cat"), ("b.png", "dog")])
    monkeypatch.undo()
    assert alice.labels() == {} and alice.annotations() == [] and history(backend) == []
    assert alice.label_many([]) == []


# --- undo never overwrites another session -----------------------------------------------------------
def test_undo_does_not_overwrite_a_newer_label_by_another_session(backend):
    """The old undo restored its previous label blindly, wiping the other session's relabel."""
    mine, theirs = backend.open(), backend.open()
    mine.set_label_names(NAMES)
    mine.label("a.png", "cat")
    theirs.label("a.png", "dog")  # another session (the same person's second notebook) relabels it
    with pytest.raises(UndoConflict, match="'a.png'.*relabelled it 'dog'") as info:
        mine.undo()
    assert isinstance(info.value, ValueError)
    assert mine.get("a.png") == "dog" and theirs.get("a.png") == "dog"  # left as the other session left it
    assert info.value.conflicts == ["a.png"] and info.value.restored == []
    assert mine.undo() is None  # that step is marked undone: nothing else to undo
    assert theirs.undo() == "a.png" and theirs.get("a.png") == "cat"  # theirs is still theirs to undo


def test_undo_conflict_names_the_other_annotator_and_a_page_keeps_the_rest(alice, bob):
    alice.label_many([("a.png", "cat"), ("b.png", "dog", "review"), ("c.png", "bird")])
    bob.settle("b.png", "cat")  # another annotator decides b.png after alice's page
    result = alice.undo_step()
    assert result.paths == ["a.png", "c.png"] and result.conflicts == ["b.png"]
    assert "'b.png': another annotator ('bob') relabelled it 'cat'" in result.details["b.png"]
    assert alice.labels() == {"b.png": "cat"}  # bob's decision is left exactly as he left it
    assert bob.undo() == "b.png" and bob.get("b.png") == "dog"  # his own undo still works
    assert not alice.undo_step()  # alice's page was marked undone


def test_undo_raises_after_restoring_what_it_could(alice, bob):
    alice.label_many([("a.png", "cat", "review"), ("b.png", "dog")])
    bob.label("a.png", "bird", source="review")
    with pytest.raises(UndoConflict) as info:
        alice.undo()
    message = str(info.value)
    assert "'a.png': another annotator ('bob') relabelled it 'bird'" in message
    assert "nothing overwritten" in message and "marked undone" in message
    assert info.value.restored == ["b.png"] and alice.labels() == {"a.png": "bird"}


def test_undoing_my_label_leaves_another_annotators_label_of_that_image(alice, bob):
    # Double labelling: bob's label sits beside alice's; alice's undo removes hers, never his.
    alice.label("a.png", "cat")
    bob.label("a.png", "dog")
    assert alice.undo() == "a.png"
    assert bob.get("a.png") == "dog" and [a.annotator for a in bob.annotations()] == ["bob"]


def test_an_unlabel_by_another_session_is_a_conflict_too(backend, alice):
    other = backend.open(annotator="alice")
    alice.label("a.png", "cat")
    alice.label("a.png", "dog")
    other.unlabel("a.png")
    with pytest.raises(UndoConflict, match="another session removed its label"):
        alice.undo()
    assert alice.labels() == {}


# --- double labelling: which label stands -----------------------------------------------------------
def test_the_first_annotators_label_stands_and_both_are_kept(alice, bob):
    alice.label("a.png", "cat")
    assert bob.label("a.png", "dog") == "cat"  # returns the standing label before
    assert bob.get("a.png") == "cat"
    assert [(a.annotator, a.label) for a in bob.annotations("a.png")] == [("alice", "cat"), ("bob", "dog")]
    record = alice.record("a.png")
    assert (record.annotator, record.annotators, record.agreement) == ("alice", ("alice", "bob"), "conflict")
    alice.label("a.png", "bird")  # the first annotator relabels: hers stands, so the standing label changes
    assert bob.get("a.png") == "bird"
    bob.label("a.png", "bird")
    assert alice.record("a.png").agreement == "agree"
    assert bob.unlabel("a.png") == "bird"  # bob removes his own label only
    assert alice.get("a.png") == "bird" and [a.annotator for a in alice.annotations()] == ["alice"]


def test_when_the_first_label_goes_the_next_annotators_stands(alice, bob):
    alice.label("a.png", "cat")
    bob.label("a.png", "dog")
    assert alice.unlabel("a.png") == "cat"
    assert bob.get("a.png") == "dog" and bob.record("a.png").annotator == "bob"


def test_review_and_import_stand_whoever_labelled_first(alice, bob):
    alice.label("a.png", "cat")
    alice.label("b.png", "cat")
    bob.label("a.png", "dog", source="review")
    bob.label("b.png", "bird", source="imported")
    assert alice.labels() == {"a.png": "dog", "b.png": "bird"}
    assert alice.record("a.png").source == "review" and alice.record("a.png").annotator == "bob"
    bob.label("a.png", "cat")  # the one who settled it changes their mind: their decision follows
    assert alice.get("a.png") == "cat"
    alice.label("a.png", "bird")  # the first annotator's relabel does not undo a settled decision...
    assert alice.get("a.png") == "cat"
    assert [c.path for c in alice.conflicts()] == ["a.png"]  # ...it reopens the question instead


def test_settle_decides_and_is_undoable(alice, bob, backend):
    alice.label("a.png", "cat")
    bob.label("a.png", "dog")
    carol = backend.open(annotator="carol")
    assert [c.labels for c in carol.conflicts()] == [{"alice": "cat", "bob": "dog"}]
    assert carol.settle("a.png", "dog") == "cat"
    assert carol.get("a.png") == "dog" and carol.conflicts() == []
    record = carol.record("a.png")
    assert (record.annotator, record.source, record.agreement) == ("carol", "review", "settled")
    assert {a.annotator for a in carol.annotations()} == {"alice", "bob"}  # settling adds no annotation
    assert carol.undo() == "a.png" and carol.get("a.png") == "cat" and len(carol.conflicts()) == 1
    with pytest.raises(ValueError, match="'nope.png' has no label to settle"):
        carol.settle("nope.png", "cat")
    with pytest.raises(ValueError, match="label 'horse' for 'a.png' is not one of the labels"):
        carol.settle("a.png", "horse")
