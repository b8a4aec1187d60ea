"""The headless session: real SQLite store and real image pool, a fake trainer (no TensorFlow)."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path

import pytest
from fake_trainer import Factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from oal_widget.data.pool import ImageError
from oal_widget.data.samples import write_digits
from oal_widget.data.store import Store, UndoConflict
from oal_widget.messages import Labelled, Pause, Resume, Retry, Stop, Unlabelled, Update
from oal_widget.session.session import Session

LABELS = ["zero", "one", "two"]
SHAPE = (16, 16, 1)


def make(root, labels=LABELS, factory=None, **kw) -> tuple[Session, Factory]:
    factory = factory or Factory()
    kw.setdefault("input_shape", SHAPE)
    return Session(root, labels, trainer_factory=factory, **kw), factory


def unlabelled(session: Session) -> set[str]:
    labelled = set(session.store.labels())
    return {p for p in session.pool.paths if p not in labelled and p not in {s.path for s in session.skipped}}


def check_order(session: Session) -> list[str]:
    """The order is a permutation of the images still unlabelled, current first."""
    order = session.order()
    assert len(order) == len(set(order)), "duplicated images in the order"
    assert set(order) == unlabelled(session), "the order lost or invented images"
    current = session.current
    if current is not None and session.label_of(current) is None:
        assert order[0] == current
    return order


@pytest.fixture(scope="module")
def twenty(tmp_path_factory):
    """20 images (2 per digit) shared read-only by the property test's many sessions."""
    root = tmp_path_factory.mktemp("twenty")
    write_digits(root, per_class=2, size=16, seed=3)
    return root


# --- the key path ----------------------------------------------------------------------------
def test_label_is_committed_before_the_trainer_hears_of_it_and_before_advancing(small_digits):
    seen_in_db = []

    def check_committed(command):
        if isinstance(command, Labelled):
            # A second, independent connection: only committed rows are visible to it.
            with sqlite3.connect(small_digits / ".oal" / "annotations.sqlite") as db:
                row = db.execute("SELECT label FROM labels WHERE path = ?", (command.path,)).fetchone()
            seen_in_db.append((command.path, row and row[0]))

    session, factory = make(small_digits, factory=Factory(on_send=check_committed))
    first = session.current
    assert session.label("one") == first
    assert session.current != first
    assert seen_in_db == [(first, "one")]
    assert factory.last.commands[-1] == Labelled(first, "one", "test" if session.is_test(first) else "train")


def test_label_outside_the_list_is_refused_and_nothing_changes(small_digits):
    session, factory = make(small_digits)
    first = session.current
    with pytest.raises(ValueError, match="'three' is not one of the labels"):
        session.label("three")
    assert session.current == first
    assert session.store.labels() == {}


def test_test_images_come_at_the_share_the_evaluation_asks_for(small_digits):
    """A quarter of the first labels are test labels (an estimate exists early), then 15% at most."""
    from oal_widget.training.estimate import wanted_test_labels

    session, _ = make(small_digits, test_fraction=0.25)
    order = check_order(session)
    kinds = [session.is_test(p) for p in order]
    assert sum(kinds) == session.progress()["test_total"] >= 2
    for n in range(1, len(order) + 1):  # never more test labels than wanted, while training ones remain
        if not all(kinds[n:]):
            assert sum(kinds[:n]) <= wanted_test_labels(n)
    assert kinds[:4] == [False, False, False, True]


def test_same_seed_same_order_and_split(small_digits, tmp_path):
    a, _ = make(small_digits, seed=7)
    b, _ = make(small_digits, seed=7, workdir=tmp_path / "other")
    assert a.order() == b.order()
    assert a.store.test_paths() == b.store.test_paths()


# --- apply(update) -----------------------------------------------------------------------------
def test_apply_keeps_current_follows_the_ranking_and_drops_junk(small_digits):
    session, factory = make(small_digits, test_fraction=0.25)
    session.label("zero")
    session.label("one")
    current = session.current
    labelled = list(session.store.labels())
    train_left = [p for p in unlabelled(session) if not session.is_test(p) and p != current]
    ranked = tuple(reversed(train_left))
    junk = ("no/such.png", labelled[0], ranked[0], current)  # unknown, labelled, duplicate, current
    factory.last.publish(Update(status="training", order=ranked[:3] + junk + ranked[3:]))
    assert session.current == current
    order = check_order(session)
    train_order = [p for p in order[1:] if not session.is_test(p)]
    assert train_order == list(ranked)


def test_images_labelled_after_the_query_are_never_shown_again(small_digits):
    session, factory = make(small_digits)
    stale_order = tuple(session.order())  # what the trainer ranked before these labels arrived
    done = [session.label("zero") for _ in range(3)]
    factory.last.publish(Update(status="training", order=stale_order))
    order = check_order(session)
    assert not set(done) & set(order)
    seen = []
    while session.current is not None:
        seen.append(session.current)
        session.label("two")
    assert not set(done) & set(seen)
    assert len(seen) == len(set(seen))
    assert session.done


def test_skipped_images_stay_behind_the_others_across_queries(small_digits):
    session, factory = make(small_digits, test_fraction=0)
    skipped = session.skip()
    assert session.order()[-1] == skipped
    # Even when the model ranks it first, a skipped image waits until the others are labelled.
    factory.last.publish(Update(status="training", order=(skipped, *session.order())))
    assert session.order()[-1] == skipped
    check_order(session)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_order_is_always_a_permutation_of_the_unlabelled_images(twenty, data):
    """Random interleavings of every action never drop or duplicate an image."""
    workdir = Path(tempfile.mkdtemp(prefix="oal-prop-"))
    try:
        session, factory = make(
            twenty,
            workdir=workdir,
            test_fraction=data.draw(st.sampled_from([0, 0.2, 0.5]), "test_fraction"),
            buffer_size=data.draw(st.sampled_from([1, 3]), "buffer_size"),
        )
        other = Store(workdir)  # a second panel on the same workdir
        paths = list(session.pool.paths)
        path_or_junk = st.one_of(st.sampled_from(paths), st.sampled_from(["nope.png", "a/b.png"]))
        ops = st.one_of(
            st.tuples(st.just("label"), st.sampled_from(LABELS)),
            st.tuples(st.just("undo"), st.none()),
            st.tuples(st.just("skip"), st.none()),
            st.tuples(st.just("back"), st.none()),
            st.tuples(st.just("accept"), st.none()),
            st.tuples(st.just("apply"), st.lists(path_or_junk, max_size=30)),
            st.tuples(st.just("predict"), st.sampled_from(LABELS)),
            st.tuples(st.just("other"), st.sampled_from(paths)),
            st.tuples(st.just("other_unlabel"), st.sampled_from(paths)),
        )
        for op, arg in data.draw(st.lists(ops, max_size=40), "ops"):
            before = session.current
            if op == "label":
                session.label(arg)
            elif op == "undo":
                try:
                    session.undo()
                except UndoConflict as conflict:  # the other panel changed it since: its label stands
                    assert "nothing overwritten" in str(conflict)
            elif op == "skip":
                session.skip()
            elif op == "back":
                session.back()
            elif op == "accept":
                session.accept_prediction()
            elif op == "apply":
                factory.last.publish(Update(status="training", order=tuple(arg)))
                assert session.current == before, "a query moved the current image away"
            elif op == "predict" and before is not None:
                factory.last.publish(Update(status="training", predictions={before: (arg, 0.9)}))
            elif op == "other":
                other.label(arg, "two")
                session.refresh()
            elif op == "other_unlabel":
                other.unlabel(arg)
                session.refresh()
            check_order(session)
            progress = session.progress()
            assert progress["labelled"] == len(session.store.labels())
            assert sum(session.counts().values()) == progress["labelled"]
        # The trainer ends up knowing exactly the labels the store has.
        session.stop()
        assert factory.last.labels() == session.store.labels()
        other.close()
        session.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_undo_of_an_image_another_panel_relabelled_keeps_theirs_and_the_order_whole(twenty, tmp_path):
    """The case the property test found: label, the other panel relabels that image, undo."""
    session, factory = make(twenty, workdir=tmp_path / "wd", test_fraction=0)
    other = Store(tmp_path / "wd")
    done = session.label("zero")
    other.label(done, "two")
    session.refresh()
    with pytest.raises(UndoConflict, match="nothing overwritten"):
        session.undo()
    assert session.store.labels()[done] == "two"
    check_order(session)
    session.stop()
    assert factory.last.labels() == session.store.labels()
    other.close()
    session.close()


# --- undo, back, skip, accept ------------------------------------------------------------------
def test_undo_makes_the_image_current_and_tells_the_trainer(small_digits):
    session, factory = make(small_digits)
    first = session.label("zero")
    second = session.current
    assert session.undo() == first
    assert session.current == first
    assert session.store.get(first) is None
    assert factory.last.commands[-1] == Unlabelled(first)
    assert check_order(session)[:2] == [first, second]  # the one shown before comes right after
    assert session.undo() is None  # nothing else to undo


def test_undo_of_a_relabel_restores_the_previous_label(small_digits):
    session, factory = make(small_digits)
    first = session.label("zero")
    assert session.back() == first
    assert session.label_of(first) == "zero"
    session.label("two")  # labelling again replaces
    assert session.store.get(first) == "two"
    assert session.undo() == first
    assert session.store.get(first) == "zero"
    assert session.current == first
    assert factory.last.labels()[first] == "zero"
    check_order(session)


def test_back_then_forward_walks_through_what_was_seen(small_digits):
    session, _ = make(small_digits)
    a = session.label("zero")
    b = session.label("one")
    c = session.current
    assert session.back() == b
    assert session.back() == a
    session.label("two")  # relabel a, then step forward through b again
    assert session.current == b
    assert session.skip() == b  # a labelled image is not re-queued by skip
    assert session.current == c
    assert session.store.labels() == {a: "two", b: "one"}
    check_order(session)


def test_back_with_no_history_is_a_no_op(small_digits):
    session, _ = make(small_digits)
    first = session.current
    assert session.back() is None
    assert session.current == first


def test_accept_prediction(small_digits):
    session, factory = make(small_digits)
    current = session.current
    assert session.accept_prediction() is False
    assert session.current == current
    factory.last.publish(Update(status="training", predictions={current: ("two", 0.8)}))
    assert session.prediction(current) == ("two", 0.8)
    assert session.accept_prediction() is True
    assert session.store.get(current) == "two"


def test_predictions_outlive_the_status_updates_after_a_query(small_digits):
    # The trainer sends predictions only with a query; the status updates in between carry none.
    session, factory = make(small_digits)
    current = session.current
    factory.last.publish(Update(status="training", order=(), predictions={current: ("one", 0.6)}))
    factory.last.publish(Update(status="evaluating"))
    factory.last.publish(Update(status="training"))
    assert session.prediction(current) == ("one", 0.6)
    assert session.accept_prediction() is True


# --- buffer_size, pause, retry -------------------------------------------------------------------
def test_buffer_size_hands_labels_over_in_groups(small_digits):
    session, factory = make(small_digits, buffer_size=3)
    trainer = factory.last
    assert trainer.commands == []
    session.label("zero")
    session.label("one")
    assert trainer.commands == []  # held back, but already in the store
    assert len(session.store.labels()) == 2
    session.label("two")
    assert [c.label for c in trainer.commands] == ["zero", "one", "two"]
    # An undone label that was never handed over is simply dropped.
    session.label("zero")
    undone = session.undo()
    session.stop()
    assert undone not in trainer.labels()
    assert trainer.labels() == session.store.labels()


def test_pause_and_resume_are_sent_and_retry_only_after_an_error(small_digits):
    session, factory = make(small_digits)
    session.pause()
    assert session.paused
    session.resume()
    assert not session.retry()  # nothing to retry: nothing is sent
    assert factory.last.commands == [Pause(), Resume()]
    assert not session.paused
    factory.last.publish(Update(status="error", message="model_fn raised"))

    def fixed(num_classes, input_shape):
        raise AssertionError("only the trainer calls it")

    assert session.retry(model_fn=fixed)
    retry = factory.last.commands[-1]
    assert retry == Retry() and retry.model_fn is fixed  # the message carries the fixed function
    assert factory.last.model_fn is not fixed  # nobody set the trainer's attributes


def test_status_line_says_what_the_trainer_does(small_digits):
    session, factory = make(small_digits)
    factory.last.publish(Update(status="error", message="model_fn failed: boom"))
    assert "error" in session.status and "boom" in session.status
    assert session.trainer_status == "error"


def test_on_change_gets_the_kind_and_its_errors_do_not_reach_the_trainer(small_digits):
    kinds = []

    def on_change(kind):
        kinds.append(kind)
        raise RuntimeError("a broken panel")

    session, factory = make(small_digits, on_change=on_change)
    row = {"n_labels": 2, "accuracy": 0.5, "loss": 1.0, "n_test": 2, "seconds": 1.0}
    factory.last.publish(Update(status="training"))
    factory.last.publish(Update(status="training", order=tuple(session.order())))
    factory.last.publish(Update(status="training", metrics=(row,)))
    assert kinds == ["status", "order", "metrics"]
    assert session.history == [row]


# --- restart and labels ------------------------------------------------------------------------
def test_resume_in_a_new_session(small_digits):
    first, f1 = make(small_digits)
    done = [first.label(name) for name in ["zero", "one", "two", "one"]]
    remaining = first.order()
    test_split = first.store.test_paths()
    first.stop()
    first.close()

    again, f2 = make(small_digits, labels=None)
    assert again.label_names == LABELS
    assert again.store.test_paths() == test_split
    assert again.store.labels() == dict(zip(done, ["zero", "one", "two", "one"], strict=True))
    assert again.order() == remaining  # the same seeded order, minus what was labelled
    # The new trainer gets every stored label, and the saved model to continue from.
    assert f2.last.labels() == again.store.labels()
    assert f2.last.resume_model == small_digits / ".oal" / "model.keras"
    # ... marked as not new: the continued model has learnt them (no first-sight score of them).
    handed = [c for c in f2.last.commands if isinstance(c, Labelled)]
    assert handed and not any(c.fresh for c in handed)
    assert again.progress()["labelled"] == 4
    again.label("two")
    assert f2.last.commands[-1].fresh, "a label given now is new to the model"


def test_adding_labels_at_the_end_is_allowed_and_starts_a_fresh_model(small_digits):
    first, _ = make(small_digits)
    first.label("zero")
    first.stop()
    again, factory = make(small_digits, labels=LABELS + ["three"])
    assert again.store.label_names() == LABELS + ["three"]
    assert factory.last.label_names == LABELS + ["three"]
    assert factory.last.resume_model is None  # the old model has one output too few


@pytest.mark.parametrize(
    "labels, says",
    [
        (["zero", "one"], "would lose the stored label(s) ['two']"),
        (["one", "zero", "two"], "change the order"),
    ],
)
def test_changing_stored_labels_is_refused_with_a_way_out(small_digits, labels, says):
    first, _ = make(small_digits)
    first.label("zero")
    with pytest.raises(ValueError) as e:
        make(small_digits, labels=labels)
    assert says in str(e.value) and "workdir" in str(e.value)
    assert first.store.label_names() == LABELS


def test_labels_may_change_freely_before_anything_is_labelled(small_digits):
    make(small_digits)
    again, _ = make(small_digits, labels=["cat", "dog"])
    assert again.store.label_names() == ["cat", "dog"]


@pytest.mark.parametrize("labels", ["cat", ["cat"], ["cat", "cat"], ["cat", ""], [1, 2]])
def test_bad_labels_name_the_setting(small_digits, labels):
    with pytest.raises(ValueError, match="labels"):
        make(small_digits, labels=labels)


def test_no_labels_anywhere_asks_for_them(small_digits):
    session, factory = make(small_digits, labels=None)
    assert session.needs_labels
    assert factory.trainers == []  # nothing to train on without classes
    assert session.current is not None  # the images are ready
    session.set_labels(["cat", "dog"])
    assert not session.needs_labels
    assert factory.last.started and factory.last.label_names == ["cat", "dog"]
    with pytest.raises(RuntimeError, match="stop"):
        session.set_labels(["cat", "dog", "bird"])


# --- two sessions on one workdir ---------------------------------------------------------------
def test_refresh_takes_in_the_other_sessions_labels(small_digits):
    mine, f_mine = make(small_digits)
    theirs, _ = make(small_digits, labels=None)
    assert mine.refresh() is False  # nothing changed: cheap
    taken = theirs.order()[1:4]
    for path in taken:
        theirs.store.label(path, "two")
    assert mine.refresh() is True
    order = check_order(mine)
    assert not set(taken) & set(order)
    assert all(f_mine.last.labels().get(p) == "two" for p in taken)
    assert mine.progress()["labelled"] == 3


def test_refresh_never_puts_an_image_in_the_order_twice(small_digits):
    """An image stepped back over (waiting to be shown again) that another session unlabels."""
    mine, _ = make(small_digits, test_fraction=0)
    theirs = Store(mine.workdir)
    a = mine.label("one")
    b = mine.label("two")
    assert mine.back() == b and mine.back() == a  # b waits on the forward stack
    theirs.unlabel(b)
    assert mine.refresh()
    check_order(mine)
    theirs.close()


def test_undo_after_a_refresh_with_held_back_labels_tells_the_trainer_the_truth(small_digits):
    """buffer_size > 1: this session's label of A is held back, another session relabels A, a refresh
    queues that too, then Backspace. Whatever the undo does, the trainer ends with the store's labels
    (it was once left with a label the store no longer had)."""
    mine, factory = make(small_digits, buffer_size=4, test_fraction=0)
    theirs = Store(mine.workdir)
    a = mine.label("one")
    theirs.label(a, "two")
    assert mine.refresh()
    with contextlib.suppress(ValueError):  # the store may refuse to undo over another's label
        mine.undo()
    mine.stop()  # flushes whatever was held back
    assert factory.last.labels() == mine.store.labels()
    theirs.close()


def test_a_session_that_cannot_be_made_leaves_no_store_open(small_digits, monkeypatch):
    from oal_widget.session import session as session_module

    opened = []

    def recording(**kwargs):
        store = Store(kwargs.pop("workdir"), kwargs.pop("images_root"), project=kwargs.pop("project"))
        opened.append(store)
        return store

    first, _ = make(small_digits)
    first.label("one")
    first.close()
    monkeypatch.setattr(session_module, "open_store", lambda store=None, **kwargs: recording(**kwargs))
    with pytest.raises(ValueError, match="would lose"):
        make(small_digits, labels=["cat", "dog"])  # incompatible with the stored labels
    assert opened and all(store._conn is None for store in opened)


# --- tiny and odd folders ---------------------------------------------------------------------
def test_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        make(tmp_path / "nowhere")


def test_folder_without_images_names_it_and_the_extensions(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError) as e:
        make(tmp_path)
    assert str(tmp_path) in str(e.value) and ".png" in str(e.value) and ".jpeg" in str(e.value)
    assert not (tmp_path / ".oal").exists()  # nothing written for a wrong folder


def test_one_image_works_without_a_test_split(tmp_path):
    Image.new("L", (16, 16), 128).save(tmp_path / "only.png")
    session, factory = make(tmp_path)
    assert session.current == "only.png"
    assert session.progress() == {"labelled": 0, "total": 1, "test_labelled": 0, "test_total": 0}
    assert "no test split" in session.status
    session.label("one")
    assert session.current is None and session.done
    assert factory.last.commands == [Labelled("only.png", "one", "train")]


def test_two_images_give_one_test_and_one_train(tmp_path):
    for name in ("a.png", "b.jpeg"):
        Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp_path / name)
    session, _ = make(tmp_path)
    assert session.progress()["test_total"] == 1
    assert len(check_order(session)) == 2
    session.label("zero")
    session.label("one")
    assert session.done and session.order() == []


def test_unreadable_image_is_set_aside_and_listed(small_digits):
    session, _ = make(small_digits, test_fraction=0)
    broken = session.current
    (small_digits / broken).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageError):
        session.display_png(broken)
    assert broken in session.store.claimed()
    assert session.skip_unreadable("damaged") == broken
    assert broken not in session.order()
    assert broken not in session.store.claimed(), "its claim is given back (a teammate may read it)"
    assert broken in [s.path for s in session.skipped]
    assert session.progress()["total"] == len(session.pool.paths) - 1
    check_order(session)


# --- display ----------------------------------------------------------------------------------
def test_prefetch_decodes_the_next_images_in_the_background(small_digits):
    session, _ = make(small_digits)
    nxt = session.upcoming(3)
    assert len(nxt) == 3 and session.current not in nxt
    session.prefetch(3)
    for path in nxt:
        assert session.thumbnails.cached(path)  # submitted: the display reads the decoded bytes
        assert session.display_png(path).startswith(b"\x89PNG")


def test_actions_from_two_threads_keep_the_order_consistent(small_digits):
    session, factory = make(small_digits)
    errors = []

    def publish():
        try:
            for _ in range(50):
                factory.last.publish(Update(status="training", order=tuple(reversed(session.order()))))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=publish)
    thread.start()
    for _ in range(10):
        session.label("zero")
        session.skip()
    thread.join(timeout=60)
    assert not thread.is_alive() and not errors
    check_order(session)


# --- stop -------------------------------------------------------------------------------------
def test_stop_returns_where_everything_was_saved(small_digits):
    session, factory = make(small_digits)
    session.label("zero")
    saved = session.stop()
    assert factory.last.stopped
    assert Path(saved["labels"]) == small_digits / ".oal" / "annotations.sqlite"
    assert Path(saved["model"]).is_file() and Path(saved["metrics"]).is_file()
    assert session.stopped and session.done


def test_stop_with_a_reason_tells_the_trainer(small_digits):
    session, factory = make(small_digits)
    session.stop(reason="every image is labelled")
    assert Stop("every image is labelled") in factory.last.commands


def test_unknown_or_bad_setting_is_named(small_digits):
    with pytest.raises(ValueError, match="eval_evry"):
        make(small_digits, eval_evry=5)
    with pytest.raises(ValueError, match="buffer_size"):
        make(small_digits, buffer_size=0)


def test_stop_before_labels_were_given_saves_the_store_only(small_digits):
    session, factory = make(small_digits, labels=None)
    assert session.stop() == {"labels": str(small_digits / ".oal" / "annotations.sqlite")}
    assert factory.trainers == []


def test_an_image_keeps_its_latest_prediction_and_the_labels_its_model_had(small_digits):
    """An undone image shows the prediction it had (the last query did not score it), marked with the
    labels of the model that made it; accepting it records that count, not the last query's."""
    s, factory = make(small_digits, test_fraction=0)
    a = s.current
    factory.last.publish(Update(status="training", n_labels=3, predictions={a: ("one", 0.8)}))
    s.label("zero")
    other = s.current
    factory.last.publish(Update(status="training", n_labels=9, predictions={other: ("two", 0.9)}))
    assert s.undo() == a
    assert s.prediction(a) == ("one", 0.8) and s.predicted_at_of(a) == 3 and s.predicted_at == 9
    assert s.accept_prediction()
    assert s.store.record(a).model_labels == 3
    assert s.surest(5) == [other], "surest pages come from the last query only"
    s.close()


def test_accepting_what_was_shown_after_a_newer_query_changed_it_records_no_model(small_digits):
    s, factory = make(small_digits, test_fraction=0)
    a = s.current
    factory.last.publish(Update(status="training", n_labels=3, predictions={a: ("one", 0.8)}))
    factory.last.publish(Update(status="training", n_labels=9, predictions={a: ("two", 0.7)}))
    assert s.accept_prediction(shown=(a, "one"))  # the key was pressed on what was on screen
    record = s.store.record(a)
    assert (record.label, record.source, record.model_labels) == ("one", "accepted", None)
    s.close()
