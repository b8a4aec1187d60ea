"""k-center diversity: the head of an order spread over the embedding space. Pure numpy."""

import numpy as np
import pytest

from oal_widget.al import rank
from oal_widget.al.diversity import kcenter


def test_kcenter_spreads_the_batch_over_clusters():
    # 20 candidates ranked 0..19: the first 10 sit in one tight cluster, the next 10 in another.
    emb = np.vstack([np.zeros((10, 2)) + np.arange(10)[:, None] * 1e-3, np.ones((10, 2)) * 5])
    order = np.arange(20)
    new = kcenter(order, emb, batch=2, top=20)
    assert new[0] == 0 and new[1] >= 10  # second pick from the other cluster, not candidate 1
    assert sorted(new.tolist()) == list(range(20))
    assert kcenter(order, emb, batch=1).tolist() == list(range(20))  # nothing to spread


def test_kcenter_needs_embeddings_of_the_right_shape():
    with pytest.raises(ValueError, match="embeddings"):
        kcenter(np.arange(4), np.zeros((3, 2)), batch=2)
    with pytest.raises(ValueError, match="embeddings"):
        rank(list("abcd"), np.full((4, 2), 0.5), diversity="kcenter")
    with pytest.raises(ValueError, match="diversity"):
        rank(list("abcd"), np.full((4, 2), 0.5), diversity="clusters", embeddings=np.zeros((4, 2)))
