"""The representation learned from the pool's own images (an autoencoder in the idle time) and the
graph's choice of space: it learns from pool images only, in short chunks; the cold start moves to it
once it is ready; a space is kept only where its graph predicts new labels better; a frozen backbone
stays the only space. Real (tiny) TensorFlow on real digit images."""

import numpy as np

from oal_widget.config import Config
from oal_widget.training import representation
from oal_widget.training.graph import NETWORK_FROM, GraphBlend
from oal_widget.training.representation import CODE, PoolAutoencoder, small
from oal_widget.training.trainer import Trainer

SHAPE = (16, 16, 1)
LABELS = [str(d) for d in range(10)]
CFG = Config(input_shape=SHAPE, train_steps=2, batch_size=16, eval_every=5, query_every=5, min_test_labels=1)


class Reading:
    """A pool that records every path it decodes."""

    def __init__(self, pool, paths):
        self._pool, self.paths, self.read = pool, list(paths), []

    def arrays(self, paths):
        self.read.extend(paths)
        return self._pool.arrays(paths)


def test_small_averages_down_and_pads_to_a_multiple_of_four():
    X = np.random.default_rng(0).random((3, 56, 25, 3), dtype=np.float32)
    out = small(X, side=28)
    assert out.shape == (3, 28, 28, 3)  # 56 rows: 28 means of 2; 25 columns padded to 28
    np.testing.assert_allclose(out[0, 0, 0], X[0, :2, 0].mean(0), rtol=1e-5)
    assert not out[:, :, 25:].any()


def test_the_autoencoder_learns_from_the_pool_only_in_short_chunks(pool, split, monkeypatch):
    """Only the images of the pool it was given are read (``simulate`` gives a pool without the oracle
    set); work comes in chunks of a few steps; the loss falls; codes have CODE dimensions."""
    monkeypatch.setattr(representation, "STEPS_PER_CHUNK", 5)
    mine = Reading(pool, split[0])
    ae = PoolAutoencoder(mine, seed=0, steps=60)
    assert ae.pending() and not ae.ready
    works = []
    while (work := ae.step()) is not None:
        works.append(work)
    assert ae.ready and not ae.pending() and ae.step() is None
    learning = [w for w in works if w[0].startswith("learning")]
    n = min(60, representation.EPOCHS * len(split[0]) // representation.BATCH)  # at most EPOCHS passes
    assert learning[-1][1:] == (n, n) and len(learning) == -(-n // 5)  # 5 steps a chunk
    assert set(mine.read) <= set(split[0])  # never a path outside its pool
    first, last = ae.loss
    assert last < 0.7 * first
    E, ok = ae.vectors(split[1][:7])
    assert E.shape == (7, CODE) and ok == split[1][:7] and np.isfinite(E).all()


def test_too_few_images_leave_the_pixels(pool, split):
    tiny = Reading(pool, split[0][:20])
    ae = PoolAutoencoder(tiny, seed=0)
    assert not ae.pending() and ae.step() is None and not ae.ready


class _Learner:
    model = None

    def head(self):
        return None


def test_a_space_blends_only_where_its_graph_predicted_the_latest_labels_better(pool):
    """Judged blended with the network: a graph that only repeats the network (here: gives the true class
    what the network gives it) adds nothing, one that is right where the network is unsure wins."""
    graph = GraphBlend(pool, _Learner(), LABELS, seed=0, learned=False)
    names = ["pixels", "learned", "network"]
    assert graph._choose(names) == "learned"  # no evidence yet: the cold start's space
    unsure = [(0.3, 0.8)] * 20
    graph.space_records = {"pixels": unsure, "learned": [(0.3, 0.3)] * 20}
    assert graph._choose(names) == "pixels"  # the pixels predicted better: the learned space waits
    graph.space_records["network"] = [(0.3, 0.95)] * 12
    assert graph._choose(names) == "network"  # compared on the latest 12 labels every space scored
    graph.space_records["network"] = [(0.9, 0.9)] * 20  # sure where the network was: nothing new...
    graph.space_records["pixels"] = [(0.9, 0.5)] * 20
    graph.space_records["learned"] = [(0.9, 0.4)] * 20
    assert graph._choose(names) == "learned"  # ...so a tie, the blends are the network: the default
    graph.space_records = {"pixels": unsure, "learned": unsure}
    assert graph._choose(names) == "learned"  # a tie keeps the cold start's
    assert graph._choose(["pixels"]) == "pixels"


def make(pool, split, tmp_path, **settings):
    return Trainer(pool, LABELS, CFG.replace(**settings), test_paths=split[1], workdir=tmp_path)


def test_the_cold_start_moves_to_the_learned_space_once_it_is_ready(pool, split, tmp_path, monkeypatch):
    """The first order is there at once (pixels); the idle work then learns the representation, and the
    cold start is ordered again in its space; the graph then builds a graph in both spaces."""
    monkeypatch.setattr(representation, "STEPS", 30)
    trainer = make(pool, split, tmp_path, typical_start=10, representation=True)
    first = trainer.first_order()
    assert first is not None and not trainer.graph.learned_ready()
    picked = list(trainer.querier.typical)
    assert trainer.build()
    works = []
    while (work := trainer.prefill_step()) is not None:
        works.append(work)
        if trainer.graph.learned_ready():
            break  # the pool's features for "more like this" come next
    assert trainer.graph.learned_ready() and works[-1][1:] == (30, 30)
    assert trainer.latest.order is not None and sorted(trainer.latest.order) == sorted(split[0])
    again = trainer.querier.typical
    assert list(trainer.latest.order[: len(again)]) == again and again != picked
    assert len(again) >= 6 and len({p.split("/")[0] for p in again}) >= 5
    for p in again[:6]:
        trainer.handle(_labelled(p))
    trainer.train_round()
    trainer.query()
    assert set(trainer.graph._graphs) == {"pixels", "learned"}
    for p in [q for q in split[0] if q not in trainer.labels.train][: NETWORK_FROM - 6]:
        trainer.handle(_labelled(p))
    trainer.train_round()
    trainer.query()  # from NETWORK_FROM labels on, the network's embedding is a space too
    assert set(trainer.graph._graphs) == {"pixels", "learned", "network"}
    assert all(len(r) == 24 for r in trainer.graph.space_records.values())  # each scored every new label
    E, ok = trainer.graph.pixel_features(split[0][:5])
    assert ok == split[0][:5] and E.shape[1] <= CODE


def test_off_or_with_a_frozen_backbone_no_representation_is_learned(digits_dir, pool, split, tmp_path):
    off = make(pool, split, tmp_path / "off", representation=False)
    assert off.graph.representation is None and off.build()
    while (work := off.prefill_step()) is not None:
        assert work[0] in ("caching images", "indexing images")
    give = [_labelled(p) for p in split[0][:40]]
    for c in give:
        off.handle(c)
    off.train_round()
    off.query()
    assert set(off.graph._graphs) == {"pixels"}  # nor the network's embedding: the pixels as before
    from test_frozen import make_trainer

    frozen = make_trainer(digits_dir, tmp_path / "frozen", config=CFG.replace(representation=True))
    assert frozen.build() and frozen.frozen_backbone
    while (work := frozen.prefill_step()) is not None:
        assert work[0] in ("embedding images", "indexing images")  # no representation learned
    assert not frozen.graph.learned_ready() and frozen.graph._candidates(40) == ["backbone"]


def _labelled(path):
    from oal_widget.messages import Labelled

    return Labelled(path, path.split("/")[0], "train")


def test_simulate_never_shows_the_oracle_images_to_the_representation(digits_dir, monkeypatch):
    from oal_widget.data.pool import split_test
    from oal_widget.simulate import ORACLE_FRACTION, simulate

    seen: list[str] = []
    original = PoolAutoencoder.__init__

    def spy(self, pool, seed, *args, **kwargs):
        seen.extend(pool.paths)
        original(self, pool, seed, *args, **kwargs)

    monkeypatch.setattr(PoolAutoencoder, "__init__", spy)
    monkeypatch.setattr(representation, "STEPS", 10)
    simulate(digits_dir, budget=20, input_shape=SHAPE, progress=None, train_steps=2, representation=True)
    found = sorted(p.relative_to(digits_dir).as_posix() for p in digits_dir.rglob("*.png"))
    oracle = set(split_test(found, ORACLE_FRACTION, 1))
    assert seen and not set(seen) & oracle
