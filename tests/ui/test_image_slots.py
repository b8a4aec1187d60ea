"""The single view's image slots: upcoming images sent ahead, a key switching a CSS class, never a stale
slot on screen. The slots alone with made-up PNGs, then the panel with a fake trainer (no TF)."""

from __future__ import annotations

import random

import pytest
from helpers import settle
from test_panel import key, make

from oal_widget.messages import Update
from oal_widget.ui.image_slots import RISING, SLOTS, VISIBLE, ImageSlots


def png(name: str, version: int = 0) -> bytes:
    return f"png of {name} v{version}".encode()


def visible(slots: ImageSlots) -> list[int]:
    return [j for j, frame in enumerate(slots.frames) if VISIBLE in frame._dom_classes]


def record(slots: ImageSlots) -> list:
    """Every change of a slot's image or class, in the order they would be sent."""
    log: list = []
    for j, (image, frame) in enumerate(zip(slots.slots, slots.frames, strict=True)):
        for widget in (image, frame):
            widget.observe(
                lambda c, j=j: log.append((j, c["name"], c["new"])), names=["value", "_dom_classes"]
            )
    return log


# --- the slots alone ---------------------------------------------------------------------------------------
def test_without_a_filled_slot_the_bytes_go_to_the_visible_slot():
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    assert visible(slots) == [slots.shown] and bytes(slots.image.value) == png("a")
    assert (slots.sends, slots.switches) == (1, 0)


def test_a_filled_slot_is_shown_by_a_class_switch_alone_on_top_before_the_old_one_leaves():
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b")), ("c", png("c")), ("d", png("d"))])
    assert sorted(p for p in slots.paths if p) == ["a", "b", "c", "d"]
    assert visible(slots) == [0] and bytes(slots.image.value) == png("a"), "filling never changes the screen"
    old = slots.shown
    log = record(slots)
    slots.show("b", png("b"))
    new = slots.shown
    assert new != old and bytes(slots.image.value) == png("b") and visible(slots) == [new]
    assert log == [
        (new, "_dom_classes", ("oal-slot", RISING)),
        (old, "_dom_classes", ("oal-slot",)),
        (new, "_dom_classes", ("oal-slot", VISIBLE)),
    ], "no bytes sent; the new slot is on top first; never two slots with oal-image"
    assert all(image._dom_classes == () for image in slots.slots), "an image's change is a new decode"
    assert (slots.sends, slots.switches) == (1, 1)


def test_a_slot_with_other_bytes_for_the_same_file_is_never_shown():
    """E.g. the file changed on disk: the session's PNG is the truth, compared on the key path."""
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b"))])
    slots.show("b", png("b", version=1))
    assert bytes(slots.image.value) == png("b", version=1) and slots.switches == 0


def test_an_order_change_shows_the_right_image_whatever_the_slots_hold():
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b")), ("c", png("c"))])
    slots.show("z", png("z"))  # re-ranked: z came first
    assert bytes(slots.image.value) == png("z") and slots.paths[slots.shown] == "z"
    slots.show("c", png("c"))  # still in a slot: switched to
    assert bytes(slots.image.value) == png("c") and slots.switches == 1
    slots.show("z", png("z"))  # back: the slot just left still holds it
    assert bytes(slots.image.value) == png("z") and slots.switches == 2


def test_fill_keeps_what_is_there_reuses_the_slot_left_last_and_never_touches_the_visible_one():
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b")), ("c", png("c")), ("d", png("d"))])
    slots.show("b", png("b"))
    log = record(slots)
    slots.fill([("c", png("c")), ("d", png("d")), ("e", png("e"))])
    assert [(name, new) for _, name, new in log] == [("value", png("e"))], "one image sent, nothing else"
    assert slots.paths.count("a") == 0 and set(slots.paths) == {"b", "c", "d", "e"}
    slots.fill([("x", png("x"))] * 2 + [("b", png("b"))])
    assert bytes(slots.image.value) == png("b") and slots.paths[slots.shown] == "b"


def test_any_sequence_shows_exactly_the_image_asked_for_with_one_visible_slot():
    rng = random.Random(7)
    slots = ImageSlots("100px")
    names = [f"p{i}" for i in range(8)]
    version = dict.fromkeys(names, 0)
    for _ in range(500):
        if rng.random() < 0.2:
            slots.arm(rng.choice(names), ["1"])
            if slots.switch.next >= 0 and rng.random() < 0.5:
                page_switch(slots)  # the page moved on; the key that follows names any image
                n = rng.choice(names)
                slots.show(n, png(n, version[n]))
                assert bytes(slots.image.value) == png(n, version[n]) and slots.paths[slots.shown] == n
        elif rng.random() < 0.4:
            ahead = rng.sample(names, rng.randint(0, SLOTS))
            slots.fill([(n, png(n, version[n])) for n in ahead])
        elif rng.random() < 0.05:
            version[rng.choice(names)] += 1  # a file changed: its slots hold old bytes
        else:
            n = rng.choice(names)
            slots.show(n, png(n, version[n]))
            assert bytes(slots.image.value) == png(n, version[n]) and slots.paths[slots.shown] == n
        assert visible(slots) == [slots.shown]
        for j, held in enumerate(slots.paths):
            if held is not None:
                assert bytes(slots.slots[j].value).startswith(png(held)[:-1]), "a slot's path names its bytes"


def page_switch(slots: ImageSlots) -> None:
    """What the page does on an armed label key (slot_switch.py's ESM): its message sets ``shown``."""
    assert slots.switch.next >= 0, "armed"
    slots.switch.set_state({"shown": slots.switch.next, "next": -1})


def test_arming_names_the_hidden_slot_holding_the_next_image_and_only_then_the_keys():
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b")), ("c", png("c"))])
    slots.arm("b", ["1", "2"])
    assert slots.paths[slots.switch.next] == "b" and slots.switch.keys_to_next == ["1", "2"]
    for following, keys in (("z", ["1"]), ("a", ["1"]), ("b", []), (None, ["1"])):
        slots.arm(following, keys)  # not in a hidden slot (a is on screen), or no keys: no page switch
        assert (slots.switch.next, slots.switch.keys_to_next) == (-1, []), following
    slots.arm("c", ["1"])
    slots.fill([("d", png("d"))])
    assert slots.switch.next == -1, "a fill disarms: the slot may be refilled"


def test_a_switch_by_the_page_is_taken_in_and_the_key_then_finds_its_image_on_screen():
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b")), ("c", png("c"))])
    slots.arm("b", ["1"])
    target = slots.switch.next
    page_switch(slots)
    assert slots.shown == target and visible(slots) == [target], "the frames' classes follow the page"
    log = record(slots)
    settled = slots.switch.settled
    slots.show("b", png("b"))  # the key's event, after the label was saved
    assert log == [] and bytes(slots.image.value) == png("b"), "nothing more to send"
    assert (slots.page_switches, slots.switches, slots.sends) == (1, 0, 1)
    assert slots.switch.settled == settled, "the lines about the image are not the new image's yet"
    slots.arm("c", ["1"])  # the view has described b
    slots.arm("c", ["1"])
    assert slots.switch.settled == settled + 1, "answered once: the page shows the lines again"


def test_a_page_switch_to_an_image_the_kernel_did_not_move_to_is_corrected():
    """An order changed in flight, or the store refused the label: the kernel's image comes on top."""
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([("b", png("b")), ("c", png("c"))])
    slots.arm("b", ["1"])
    page_switch(slots)
    slots.show("c", png("c"))  # re-ranked: c came first
    assert bytes(slots.image.value) == png("c") and visible(slots) == [slots.shown]
    slots.arm("b", ["1"])
    page_switch(slots)
    slots.show("c", png("c"))  # refused: still c
    assert bytes(slots.image.value) == png("c") and visible(slots) == [slots.shown]


# --- in the panel ---------------------------------------------------------------------------------------
@pytest.fixture
def panel(small_digits):
    annotator, factory = make(small_digits)
    yield annotator, factory
    annotator.session.close()


def on_screen(annotator) -> bytes:
    view = annotator.labelling
    assert visible(view.slots) == [view.slots.shown], "exactly one slot is oal-image"
    return bytes(view.image.value)


def test_keys_switch_to_images_sent_ahead_and_every_action_shows_the_current_image(panel):
    annotator, factory = panel
    s, slots = annotator.session, annotator.labelling.slots
    settle(annotator)
    upcoming = s.upcoming(slots.ahead())
    assert set(upcoming) <= set(slots.paths), "the next images are in the hidden slots"
    first = s.current
    annotator._on_key(key("1"))
    assert annotator.labels[first] == "zero"
    assert slots.switches == 1 and on_screen(annotator) == s.display_png(s.current)
    actions = ["1", "2", "ArrowRight", "ArrowLeft", "Backspace", "3", "g", "g", "r", "r", "ArrowLeft", "2"]
    for i, name in enumerate(actions * 2):
        annotator._on_key(key(name))
        if annotator.modes.mode == "single":
            assert on_screen(annotator) == s.display_png(s.current), f"after {name!r}"
            assert annotator.labelling.filename.value == s.current
        if i % 3 == 0:
            settle(annotator)
    settle(annotator)
    assert slots.switches >= 6, "most keys after the UI thread caught up are class switches"


def test_a_re_rank_refills_the_slots_and_the_next_key_shows_the_new_first_image(panel):
    annotator, factory = panel
    s, slots = annotator.session, annotator.labelling.slots
    annotator._on_key(key("1"))
    settle(annotator)
    ahead = s.upcoming(slots.ahead())
    candidates = [p for p in s.order()[1:] if p not in ahead and not s.is_test(p)]
    factory.last.publish(Update(status="training", order=tuple(candidates + ahead)))
    settle(annotator)
    assert s.upcoming(slots.ahead())[0] == candidates[0], "re-ranked"
    assert set(s.upcoming(slots.ahead())) <= set(slots.paths), "refilled after the re-rank, before a key"
    switches = slots.switches
    annotator._on_key(key("1"))
    assert annotator.labelling.filename.value == s.current
    assert on_screen(annotator) == s.display_png(s.current)
    assert slots.switches == switches + 1, "the new first image was already in a slot"


def test_the_panel_arms_the_page_for_label_keys_only_while_keys_label_in_the_single_view(panel):
    annotator, factory = panel
    s, slots = annotator.session, annotator.labelling.slots
    annotator._on_key(key("1"))
    settle(annotator)
    assert slots.paths[slots.switch.next] == s.upcoming(1)[0], "armed with the image after the current"
    assert {"1", "2", "3"} <= set(slots.switch.keys_to_next) and "Backspace" not in slots.switch.keys_to_next
    before, switches, settled = s.current, slots.switches, slots.switch.settled
    page_switch(slots)
    annotator._on_key(key("2"))
    assert slots.switch.settled == settled + 1, "the key's answer lets the page show the lines again"
    assert annotator.labels[before] == "one" and on_screen(annotator) == s.display_png(s.current)
    assert annotator.labelling.filename.value == s.current
    assert (slots.page_switches, slots.switches) == (1, switches), "the key found its image on screen"
    settle(annotator)
    assert slots.switch.next >= 0, "armed again for the next key"
    annotator._on_key(key("/"))  # typing a label's name: keys do not label
    assert slots.switch.keys_to_next == [] and slots.switch.next == -1
    annotator._on_key(key("Escape"))
    assert slots.switch.next >= 0
    annotator._on_key(key("g"))  # the grid: its keys move a cursor
    settle(annotator)
    assert slots.switch.keys_to_next == [] and slots.switch.next == -1
    annotator._on_key(key("g"))
    settle(annotator)
    assert slots.switch.next >= 0


def test_a_file_that_cannot_be_decoded_ahead_is_left_to_the_key_path_which_says_so(small_digits):
    annotator, _ = make(small_digits, test_fraction=0)
    s = annotator.session
    broken = s.upcoming(2)[1]
    (small_digits / broken).write_bytes(b"GIF89a broken")
    s.thumbnails.clear()  # it may have been prefetched while still intact
    annotator._on_key(key("1"))
    settle(annotator)  # the slots were filled (and the prefetch tried the broken file) before the next key
    assert broken not in annotator.labelling.slots.paths
    assert broken in s.upcoming(1), "not set aside by a fill nobody sees"
    annotator._on_key(key("1"))
    assert s.current not in (broken, None)
    assert broken in annotator._error.value and broken in annotator._skipped.html.value
    assert bytes(annotator.labelling.image.value) == s.display_png(s.current)
    annotator.session.close()
