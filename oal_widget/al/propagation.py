"""Learning from the unlabelled images: label spreading on a k-nearest-neighbour graph of embeddings
that exist before any label (a PCA of the pixels, or a frozen backbone's embedding), blended with the
network's probabilities.

Label spreading (Zhou et al. 2004; seeds normalised per class as in Iscen et al. 2019) gives every
image of the graph soft labels from the labelled ones; an image outside the graph gets a weighted vote
of its neighbours. The blend ``w * p_graph + (1 - w) * p_network`` takes the weight that best
predicted the latest labels BEFORE they were known (prequential log-likelihood), so it falls to 0 where
the graph does not help. Pure numpy: the graphs here have a few thousand nodes (a query's sample and
the labelled images), where brute-force distances cost milliseconds.
"""

from __future__ import annotations

import numpy as np

#: Neighbours per node, the spreading's alpha and iterations (Zhou et al. 2004's usual values).
K, ALPHA, ITERS = 10, 0.99, 20
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Labels whose first-sight predictions choose the weight; below MIN_RECORDS the network alone.
WINDOW, MIN_RECORDS = 50, 5
_CHUNK = 1024


def _neighbours(A: np.ndarray, B: np.ndarray, k: int, skip_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """(squared distances, indices) of each row of A's k nearest rows of B, nearest first."""
    b2 = np.einsum("ij,ij->i", B, B)
    dist, index = [], []
    for i in range(0, len(A), _CHUNK):
        a = A[i : i + _CHUNK]
        # Ranked by |b|^2 - 2 a.b, in place (|a|^2 is the same along a row: added to the k kept only);
        # a query of the whole pool votes ~100,000 rows against the graph.
        s = a @ B.T
        s *= -2
        s += b2[None]
        if skip_self:
            s[np.arange(len(a)), np.arange(i, i + len(a))] = np.inf
        kk = min(k, s.shape[1] - skip_self)
        part = np.argpartition(s, kk - 1, axis=1)[:, :kk]
        rows = np.arange(len(a))[:, None]
        kept = s[rows, part]
        order = np.argsort(kept, axis=1)
        index.append(part[rows, order])
        dist.append(np.maximum(kept[rows, order] + np.einsum("ij,ij->i", a, a)[:, None], 0.0))
    return np.concatenate(dist), np.concatenate(index)


class LabelSpreading:
    """A graph over ``E`` (n, d); ``spread`` its labelled nodes' classes; ``vote`` for new points."""

    def __init__(self, E: np.ndarray, k: int = K):
        self.E = np.asarray(E, dtype=np.float32)
        n = len(self.E)
        self.k = max(1, min(k, n - 1))
        d, idx = _neighbours(self.E, self.E, self.k, skip_self=True)
        self.sigma2 = float(np.median(d[:, -1])) or 1.0
        w = np.exp(-d / (2 * self.sigma2))
        rows = np.repeat(np.arange(n), self.k)
        W = np.zeros((n, n), dtype=np.float32) if n <= 4096 else None
        if W is None:  # big graphs: a sparse product instead of a dense matrix
            from scipy import sparse

            W = sparse.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(n, n))
            W = W + W.T
            deg = np.asarray(W.sum(1)).ravel()
            inv = sparse.diags(1.0 / np.sqrt(deg + 1e-12))
            self.S = inv @ W @ inv
        else:
            np.add.at(W, (rows, idx.ravel()), w.ravel())
            W = W + W.T
            inv = 1.0 / np.sqrt(W.sum(1) + 1e-12)
            self.S = W * inv[:, None] * inv[None, :]
        self.P: np.ndarray | None = None

    def spread(self, nodes: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Soft labels (n, num_classes) of every node from the labelled ``nodes``."""
        Y = np.zeros((len(self.E), num_classes), dtype=np.float32)
        Y[nodes, labels] = 1.0
        Y /= np.maximum(Y.sum(0), 1.0)  # each class counts the same, however many seeds it has
        F = Y.copy()
        for _ in range(ITERS):
            F = ALPHA * (self.S @ F) + (1 - ALPHA) * Y
        F = np.maximum(F, 0.0)
        total = F.sum(1, keepdims=True)
        self.P = np.where(total > 1e-12, F / np.maximum(total, 1e-12), 1.0 / num_classes)
        return self.P

    def vote(self, X: np.ndarray) -> np.ndarray:
        """Soft labels of points outside the graph: their neighbours' soft labels, Gaussian-weighted."""
        d, idx = _neighbours(np.asarray(X, dtype=np.float32), self.E, self.k, skip_self=False)
        w = np.exp(-d / (2 * self.sigma2)) + 1e-12
        P = (self.P[idx] * w[..., None]).sum(1) / w.sum(1, keepdims=True)
        return P / np.maximum(P.sum(1, keepdims=True), 1e-12)


def choose_weight(p_network_true, p_graph_true) -> float:
    """The ``w`` of ``WEIGHTS`` whose blend gave the latest labels the highest probability before they
    were known (``p_*_true``: the probability each gave the true class); 0 with too few records."""
    a = np.asarray(p_network_true, dtype=float)[-WINDOW:]
    b = np.asarray(p_graph_true, dtype=float)[-WINDOW:]
    if len(a) < MIN_RECORDS:
        return 0.0
    scores = [np.mean(np.log(w * b + (1 - w) * a + 1e-4)) for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmax(scores))])


def blend(p_network: np.ndarray, p_graph: np.ndarray | None, w: float) -> np.ndarray:
    if p_graph is None or w == 0:
        return p_network
    return w * p_graph + (1 - w) * p_network
