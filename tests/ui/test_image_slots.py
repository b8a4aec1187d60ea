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
    page = Page(slots)
    names = [f"p{i}" for i in range(8)]
    version = dict.fromkeys(names, 0)
    for _ in range(500):
        if rng.random() < 0.2:
            slots.arm(rng.choice(names), ["1"], fresh=rng.random() < 0.5)
            if rng.random() < 0.5 and page.key("1"):  # the page moved on; the key then names any image
                n = rng.choice(names)
                slots.show(n, png(n, version[n]))
                assert bytes(slots.image.value) == png(n, version[n]) and slots.paths[slots.shown] == n
            elif rng.random() < 0.2:
                page.seq += 1
                page.send(rng.randint(0, slots.switch.armed["token"] + 1), rng.randint(-1, SLOTS))
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


class Page:
    """What ``slot_switch.py``'s ESM does on a key while the pointer is over the panel, over the kernel's
    traits: one key per arm token; a switch only for an armed key with the ``from`` slot on top."""

    def __init__(self, slots: ImageSlots):
        self.slots, self.used, self.seq, self.ts = slots, None, 0, 0.0

    def key(self, name: str, ts: float | None = None) -> bool:
        """``ts``: the key event's timeStamp (ipyevents forwards it too)."""
        self.ts = ts if ts is not None else 1e9 + self.seq  # after every key the kernel has handled
        armed = self.slots.switch.armed
        if armed["token"] == self.used:
            return False
        self.used = armed["token"]
        if armed["to"] < 0 or name not in armed["keys"] or visible(self.slots) != [armed["from"]]:
            return False
        self.seq += 1
        self.send(armed["token"], armed["to"])
        return True

    def send(self, token, to) -> None:
        message = {"switched": {"seq": self.seq, "token": token, "to": to, "ts": self.ts}}
        self.slots.switch._handle_custom_msg(message, [])


def a_on_top(*ahead: str) -> tuple[ImageSlots, Page]:
    """Slots showing "a" with ``ahead`` filled in beneath it, and the page over them."""
    slots = ImageSlots("100px")
    slots.show("a", png("a"))
    slots.fill([(name, png(name)) for name in ahead])
    return slots, Page(slots)


def test_arming_names_the_hidden_slot_holding_the_next_image_with_a_new_token_when_it_changes():
    slots, _ = a_on_top("b", "c")
    slots.arm("b", ["1", "2"])
    armed = slots.switch.armed
    assert slots.paths[armed["to"]] == "b" and armed["from"] == slots.shown and armed["keys"] == ["1", "2"]
    slots.arm("b", ["1", "2"])
    assert slots.switch.armed == armed, "nothing changed: the same token"
    slots.arm("b", ["1", "2"], fresh=True)
    assert slots.switch.armed["token"] == armed["token"] + 1, "after a key: a new token"
    for following, keys in (("z", ["1"]), ("a", ["1"]), ("b", []), (None, ["1"])):
        slots.arm(following, keys)  # not in a hidden slot (a is on screen), or no keys: no page switch
        assert (slots.switch.armed["to"], slots.switch.armed["keys"]) == (-1, []), following
    slots.arm("c", ["1"])
    token = slots.switch.armed["token"]
    slots.fill([("d", png("d")), ("e", png("e")), ("f", png("f"))])
    assert "c" not in slots.paths and slots.switch.armed["to"] == -1, "a slot refilled is no one's next"
    assert slots.switch.armed["token"] > token


def test_a_switch_by_the_page_is_taken_in_then_the_key_finds_its_image_on_top_and_is_answered():
    slots, page = a_on_top("b", "c")
    slots.arm("b", ["1"])
    target = slots.switch.armed["to"]
    assert page.key("1")
    assert slots.shown == target and visible(slots) == [target], "the frames' classes follow the page"
    assert slots.switch.shown == target
    log = record(slots)
    slots.show("b", png("b"))  # the key's event, after the label was saved
    assert log == [] and bytes(slots.image.value) == png("b"), "nothing more to send"
    assert (slots.page_switches, slots.refused, slots.switches, slots.sends) == (1, 0, 0, 1)
    assert slots.switch.settled == 0, "the lines about the image are not the new image's yet"
    slots.answer()
    assert slots.switch.settled == page.seq == 1


def test_one_page_switch_per_arm_and_none_for_an_arm_the_kernel_has_replaced():
    slots, page = a_on_top("b", "c")
    slots.arm("b", ["1"])
    armed = slots.switch.armed
    assert page.key("1")
    page.seq += 1
    page.send(armed["token"], armed["to"])  # the same arm again (a page that kept it)
    assert (slots.page_switches, slots.refused) == (1, 1)
    slots.show("b", png("b"))
    slots.arm("c", ["1"])
    stale = slots.switch.armed
    slots.arm("a", ["1"])  # re-ranked while the key was on its way
    page.seq += 1
    page.send(stale["token"], stale["to"])
    assert slots.paths[slots.shown] == "b" and slots.refused == 2, "refused: the kernel's image stays"
    slots.answer()
    assert slots.switch.settled == page.seq, "answered: the page puts the kernel's slot back on top"


def test_a_page_switch_whose_key_came_first_is_answered_at_once():
    """The key's event overtook the page's message: the kernel moved on by itself; the answer lets the
    page put the kernel's slot on top and show the lines about the image again."""
    slots, page = a_on_top("b")
    slots.arm("b", ["1"])
    armed = slots.switch.armed
    slots.show("b", png("b"))  # the key, handled first
    slots.arm(None, [], fresh=True)
    slots.answer(key_time=500.0)
    page.seq, page.ts = page.seq + 1, 500.0
    page.send(armed["token"], armed["to"])
    assert (slots.page_switches, slots.refused, slots.late) == (0, 0, 1)
    assert slots.switch.settled == page.seq and slots.switch.shown == slots.shown
    assert bytes(slots.image.value) == png("b") and visible(slots) == [slots.shown]


def test_a_switch_on_an_arm_replaced_by_one_to_the_same_image_is_taken_in():
    """A new token after every key (or Enter armed too) changes nothing about which image comes next."""
    slots, page = a_on_top("b")
    slots.arm("b", ["1"])
    armed = slots.switch.armed
    slots.arm("b", ["1", "Enter"])  # on its way while the page used the first arm
    slots.arm("b", ["1", "Enter"], fresh=True)
    page.seq += 1
    page.send(armed["token"], armed["to"])
    assert (slots.page_switches, slots.refused) == (1, 0) and slots.paths[slots.shown] == "b"


def test_a_key_the_page_did_not_expect_never_switches_until_the_kernel_arms_again():
    slots, page = a_on_top("b")
    slots.arm("b", ["1"])
    assert not page.key("/"), "not a key that moves on"
    assert not page.key("1"), "the arm was spent on '/': what '1' means now is the kernel's to say"
    slots.arm("b", ["1"], fresh=True)  # the kernel, after '/'
    assert page.key("1")


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
    page = Page(slots)

    times = iter(range(10_000, 100_000, 100))

    def press(name: str) -> bool:
        """A key as the browser delivers it: first the page's listener, then ipyevents' event."""
        ts = float(next(times))
        switched = page.key(name, ts)
        annotator._on_key(key(name, timeStamp=ts))
        return switched

    press("1")
    settle(annotator)
    armed = slots.switch.armed
    assert slots.paths[armed["to"]] == s.upcoming(1)[0], "armed with the image after the current"
    assert {"1", "2", "3"} <= set(armed["keys"]) and "Backspace" not in armed["keys"]
    before, switches = s.current, slots.switches
    assert press("2")
    assert annotator.labels[before] == "one" and on_screen(annotator) == s.display_png(s.current)
    assert annotator.labelling.filename.value == s.current
    assert (slots.page_switches, slots.switches) == (1, switches), "the key found its image on top"
    assert slots.switch.settled == page.seq, "answered once the lines describe it"
    assert slots.switch.armed["to"] >= 0, "armed again for the next key"
    # Typing a label's name: the page spent its arm on '/', the kernel arms nothing while the filter runs.
    shown = s.current
    assert not press("/") and slots.switch.armed["to"] == -1
    assert not press("1") and s.current == shown and annotator.labels.get(shown) is None
    press("Escape")
    assert slots.switch.armed["to"] >= 0 and on_screen(annotator) == s.display_png(s.current)
    press("g")  # the grid: its keys move a cursor
    settle(annotator)
    assert slots.switch.armed["to"] == -1
    press("g")
    settle(annotator)
    assert slots.switch.armed["to"] >= 0


def test_after_a_key_that_failed_the_image_on_top_is_the_session_s_again(panel, monkeypatch):
    """The page switched, the kernel took it in, then the key did not move on (an error here; a store
    that refused the label, a key the kernel ignores): the kernel puts the current image back on top."""
    annotator, _ = panel
    s, slots = annotator.session, annotator.labelling.slots
    page = Page(slots)
    annotator._on_key(key("1"))
    settle(annotator)
    current = s.current

    def broken(*args, **kwargs):
        raise RuntimeError("the store is away")

    monkeypatch.setattr(annotator.modes, "do", broken)
    assert page.key("2")
    assert slots.paths[slots.shown] != current, "the page put the next image on top"
    annotator._on_key(key("2"))
    assert s.current == current and "the store is away" in annotator._error.value
    assert on_screen(annotator) == s.display_png(current) and slots.paths[slots.shown] == current
    assert slots.switch.settled == page.seq


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
