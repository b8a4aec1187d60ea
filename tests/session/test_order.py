"""The order of images still to label, on its own: a permutation of what is wanted, whatever happens."""

from hypothesis import given, settings
from hypothesis import strategies as st

from oal_widget.session.order import Order

PATHS = [f"{c}/{i}.png" for c in "ab" for i in range(10)]
TEST = set(PATHS[::4])


class World:
    """What the session would be: labels, unreadable files, counts, and the lane rule."""

    def __init__(self):
        self.labels: dict[str, str] = {}
        self.unreadable: set[str] = set()
        self.order = Order(
            [p for p in PATHS if p not in TEST],
            [p for p in PATHS if p in TEST],
            wanted=lambda p: p not in self.labels and p not in self.unreadable,
            readable=lambda p: p not in self.unreadable,
            counts=lambda: (
                sum(p not in TEST for p in self.labels),
                sum(p in TEST for p in self.labels),
            ),
            pick=lambda n_train, n_test: "test" if n_test < n_train else "train",
        )

    def wanted(self) -> set[str]:
        return {p for p in PATHS if p not in self.labels and p not in self.unreadable}

    def check(self) -> None:
        paths = self.order.paths()
        assert len(paths) == len(set(paths)), f"an image twice: {paths}"
        assert set(paths) == self.wanted(), "an image lost or invented"
        current = self.order.current
        if current is not None and current not in self.labels:
            assert paths[0] == current
        assert not set(self.order.upcoming(5)) & ({current} | set(self.labels) - set(self.order._forward))


def test_the_lanes_take_turns_by_the_counts_and_restart_where_they_stopped():
    world = World()
    shown = []
    while world.order.current is not None:
        shown.append(world.order.current)
        world.labels[world.order.current] = "x"
        world.order.done_with_current()
    # One test image after each training image while both lanes have some.
    kinds = ["test" if p in TEST else "train" for p in shown[: 2 * len(TEST)]]
    assert kinds == ["train", "test"] * len(TEST)
    assert sorted(shown) == sorted(PATHS)


def test_an_image_unlabelled_elsewhere_while_on_the_forward_stack_is_not_queued_twice():
    world = World()
    a = world.order.current
    world.labels[a] = "x"
    world.order.done_with_current()
    b = world.order.current
    world.labels[b] = "x"
    world.order.done_with_current()
    assert world.order.back() == b and world.order.back() == a  # b waits on the forward stack
    del world.labels[b]  # another session undid b
    world.order.reinstate(b)
    world.check()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from(["label", "skip", "back", "unreadable"]), st.none()),
            st.tuples(st.just("rank"), st.lists(st.sampled_from(PATHS + ["junk.png"]), max_size=25)),
            st.tuples(st.just("elsewhere_label"), st.sampled_from(PATHS)),
            st.tuples(st.just("elsewhere_unlabel"), st.sampled_from(PATHS)),
            st.tuples(st.just("undo"), st.sampled_from(PATHS)),
        ),
        max_size=60,
    )
)
def test_the_order_is_always_a_permutation_of_the_wanted_images(ops):
    world = World()
    order = world.order
    for op, arg in ops:
        current = order.current
        if op == "label" and current is not None:
            world.labels[current] = "x"
            order.done_with_current()
        elif op == "skip":
            order.skip()
        elif op == "back":
            order.back()
        elif op == "unreadable" and current is not None:
            world.unreadable.add(current)
            order.drop_current()
        elif op == "rank":
            order.rank(arg)
            assert order.current == current, "a re-ranking moved the current image away"
        elif op == "elsewhere_label":
            world.labels[arg] = "y"
            if arg == current:
                order.done_with_current()
        elif op == "elsewhere_unlabel" and arg in world.labels:
            del world.labels[arg]
            order.reinstate(arg)
        elif op == "undo" and arg in world.labels and arg not in world.unreadable:
            del world.labels[arg]  # this session's undo: the image comes back on screen
            order.show(arg)
            assert order.current == arg
        world.check()


def test_a_test_image_labelled_before_the_order_began_comes_back_in_the_test_lane():
    """Labelled before this session started (so in no lane), then unlabelled elsewhere: drawn with the
    test images (a uniform sample), not queued behind the ranked training images."""
    labels = {"t.png": "x"}
    order = Order(
        ["a.png", "b.png", "c.png"], [],
        wanted=lambda p: p not in labels, readable=lambda p: True,
        counts=lambda: (sum(p != "t.png" for p in labels), int("t.png" in labels)),
        pick=lambda n_train, n_test: "test" if n_test < n_train else "train",
        test_split={"t.png"},
    )  # fmt: skip
    del labels["t.png"]  # another session's undo
    order.reinstate("t.png")
    order.rank(["c.png", "b.png", "a.png"])
    assert order.paths() == ["a.png", "t.png", "c.png", "b.png"], "the next turn of the test lane"
