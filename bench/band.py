"""The accuracy band, measured offline: record what the estimator is given, then try estimators in seconds.

``record``: ``simulate`` (the product's defaults) once per data set and seed, in this process, with the
estimator's inputs recorded at every evaluation: the classifier's probabilities on the test reserve, the
held-out rows and classes (with the order they were labelled in), the latest first-sight predictions it
was given, EVERY first-sight prediction that still stands (with the number of training labels its model
had), and the row's true accuracy on simulate's oracle set. Saved as ``bench/results/band_<set>.pkl.gz``.

``table``: every candidate estimator on the recordings, per set: coverage (share of evaluations whose
band held the true accuracy), mean half-width and mean |shown - true| from 100 labels on. A candidate
that narrows the band also stops test labels sooner (``estimate.wants_test``): the replay keeps only the
test labels that would have been asked (the first ones labelled), never more than were recorded.

With ``--tag wired`` the estimate inside ``simulate`` is given ``FirstSight.for_estimate`` (the latest
half of the first sights) instead of what the trainer passes today, so the loop runs the new estimator
end to end (its band decides when test labels stop); the table's first row is the band shown in the loop.

    .venv/bin/python bench/band.py record --dataset digits --seeds 3
    .venv/bin/python bench/band.py table --dataset digits mnist5k
    .venv/bin/python bench/band.py record --tag wired --dataset animals --seeds 2
"""

from __future__ import annotations

import argparse
import gzip
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results"
#: Evaluations from this many labels on count (as in ``label_efficiency``).
BAND_FROM = 100
#: (labels per run, seeds by default): label_efficiency's budgets; faces has few evaluations per run.
BUDGETS = {"digits": (300, 3), "mnist5k": (300, 3), "animals": (400, 3), "faces": (120, 8)}


# --- recording ----------------------------------------------------------------------------------------------
class Recorder:
    """Monkeypatches in this process only: ``evaluation.evaluate``/``estimate``, ``FirstSight`` and
    ``OracleSet.accuracy`` report to it; the product's behaviour is unchanged."""

    def __init__(self, wired: bool = False):
        #: Give the estimate ``FirstSight.for_estimate`` (the latest half) instead of what core passes.
        self.wired = wired
        self.records: list[dict] = []
        self.labels = None
        self.all_sight: list[tuple[np.ndarray, int, int]] = []

    def install(self) -> None:
        from oal_widget import simulate as sim
        from oal_widget.training import evaluation, first_sight

        rec = self
        FirstSight = first_sight.FirstSight
        orig_score, orig_recent = FirstSight.score, FirstSight.recent
        orig_evaluate, orig_estimate = evaluation.evaluate, evaluation.estimate
        orig_accuracy = sim.OracleSet.accuracy

        def score(self, path, label, source):
            self.__dict__.setdefault("bench_age", {})[path] = len(self.labels.train)
            return orig_score(self, path, label, source)

        def recent(self, n=first_sight.RECENT):
            ages = self.__dict__.get("bench_age", {})
            rec.all_sight = [
                (self.graph.blend_one(*self._parts[p]), self.labels.train[p], ages.get(p, -1))
                for p in self._parts
                if p in self.labels.train
            ]
            return orig_recent(self, n)

        def evaluate(classify, labels, recent_, rng):
            rec.labels = labels
            if rec.wired:  # core's ``self.sight.recent()`` just refreshed all_sight
                half = int(np.ceil(first_sight.ESTIMATE_SHARE * len(rec.all_sight)))
                recent_ = [(p, k) for p, k, _ in rec.all_sight[len(rec.all_sight) - half :]]
            return orig_evaluate(classify, labels, recent_, rng)

        def estimate(reserve_probs, held_out, held_y, recent_probs=None, recent_y=None):
            out = orig_estimate(reserve_probs, held_out, held_y, recent_probs, recent_y)
            if out is None:
                return out
            labels = rec.labels
            held = [p for p in labels.test_paths if p in labels.test]
            order = {p: i for i, p in enumerate(labels.test)}
            rank = (
                np.array([order[p] for p in held]) if len(held) == len(held_out) else np.arange(len(held_out))
            )
            sight = rec.all_sight
            rec.records.append(
                {
                    "P": np.asarray(reserve_probs, dtype="float32"),
                    "held": np.asarray(held_out, int),
                    "y": np.asarray(held_y, int),
                    "rank": rank,
                    "recent_P": None if recent_probs is None else np.asarray(recent_probs, "float32"),
                    "recent_y": None if recent_y is None else np.asarray(recent_y, int),
                    "fs_P": np.array([s[0] for s in sight], "float32").reshape(len(sight), -1),
                    "fs_y": np.array([s[1] for s in sight], int),
                    "fs_age": np.array([s[2] for s in sight], int),
                    "n_train": len(labels.train),
                    "n_test": len(held_out),
                    "shown": (out.accuracy, out.low, out.high),
                }
            )
            return out

        def accuracy(self, model):
            value = orig_accuracy(self, model)
            if rec.records and "true" not in rec.records[-1]:
                rec.records[-1]["true"] = value
            return value

        FirstSight.score, FirstSight.recent = score, recent
        evaluation.evaluate, evaluation.estimate = evaluate, estimate
        sim.OracleSet.accuracy = accuracy


def record(dataset: str, seeds: range, budget: int, every: int = 10, tag: str = "") -> Path:
    from label_efficiency import DATASETS, write_images

    from oal_widget.simulate import simulate

    rec = Recorder(wired=tag == "wired")
    rec.install()
    size = DATASETS[dataset][1]
    runs = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oal-band-") as tmp:
        images = Path(tmp) / dataset
        write_images(dataset, size, images)
        for seed in seeds:
            rec.records = []
            rows = simulate(
                images,
                budget=budget,
                seed=seed,
                eval_every=every,
                query_every=every,
                input_shape=(size, size, 1),
                progress=None,
            )
            kept = [r for r in rec.records if "true" in r]
            if len(kept) != len(rows):
                raise RuntimeError(
                    f"{dataset} seed {seed}: {len(kept)} recorded evaluations, {len(rows)} rows"
                )
            runs.append({"seed": seed, "records": kept})
            print(
                f"{dataset} seed {seed}: {len(kept)} evaluations ({time.monotonic() - start:.0f} s)",
                flush=True,
            )
    path = RESULTS / f"band_{dataset}{'_' + tag if tag else ''}.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({"dataset": dataset, "budget": budget, "runs": runs}, f)
    print(f"wrote {path} ({os.getloadavg()[0]:.1f} load, {time.strftime('%Y-%m-%d %H:%M')})")
    return path


def load(dataset: str, tag: str = "") -> dict:
    with gzip.open(RESULTS / f"band_{dataset}{'_' + tag if tag else ''}.pkl.gz", "rb") as f:
        return pickle.load(f)


# --- the candidates, offline ------------------------------------------------------------------------------
def _inputs(r: dict, k_cap: int | None) -> dict:
    """A record's inputs with only the first ``k_cap`` test labels (in the order labelled)."""
    held, y = r["held"], r["y"]
    if k_cap is not None and len(held) > k_cap:
        keep = np.sort(np.argsort(r["rank"])[:k_cap])
        held, y = held[keep], y[keep]
    return {**r, "held": held, "y": y}


def replay(runs, candidate, target_halfwidth: float, min_test: int) -> list[tuple]:
    """(n_labels, est, low, high, true) of every evaluation, the candidate's band deciding (as
    ``wants_test`` does) when test labels stop being asked."""
    out = []
    for run in runs:
        cap = None
        for r in run["records"]:
            x = _inputs(r, cap)
            est, low, high = candidate(x)
            k = len(x["held"])
            cap = k if (high - low) / 2 <= target_halfwidth and k >= min_test else None
            out.append((r["n_train"] + r["n_test"], est, low, high, r["true"], k))
    return out


def summary(rows, start: int = BAND_FROM) -> dict:
    a = np.array([row for row in rows if row[0] >= start], dtype=float)
    if not len(a):
        return {"n": 0}
    held = (a[:, 2] <= a[:, 4]) & (a[:, 4] <= a[:, 3])
    return {
        "n": len(a),
        "coverage": held.mean(),
        "halfwidth": ((a[:, 3] - a[:, 2]) / 2).mean(),
        "gap": np.abs(a[:, 1] - a[:, 4]).mean(),
        "below": (a[:, 3] < a[:, 4]).mean(),  # misses with the band under the truth
        # test labels it would have asked for, as a share of the labels (the recorded run's at most)
        "test share": (a[:, 5] / a[:, 0]).mean(),
    }


# --- experimental estimators ------------------------------------------------------------------------------
Z = 1.959964


def _log(P):
    return np.log(np.clip(np.asarray(P, float), 1e-7, 1.0))


def _first_sight(x, which):
    """Rows of the first-sight predictions used: the latest N, those of models with at least
    ``frac`` of today's training labels, or all."""
    age, n = x["fs_age"], x["n_train"]
    idx = np.arange(len(age))
    if which == "all":
        return idx
    if isinstance(which, tuple):  # ("latest", share): the latest share of those that stand
        return idx[len(idx) - int(np.ceil(which[1] * len(idx))) :]
    if isinstance(which, int):
        return idx[-which:] if which else idx[:0]
    return idx[age >= which * n]  # a fraction


def _fit_T(logp, y, w):
    from oal_widget.training.estimate import fit_temperature

    return fit_temperature(logp, y, w)


def _conf(L, T):
    from oal_widget.training.estimate import calibrated_confidence

    return calibrated_confidence(L, T)


def _plus4_sd(est, n):
    a = (est * n + 2) / (n + 4)
    return np.sqrt(a * (1 - a) / max(n, 1))


def calibrated(which=30, w_fs=0.25, band="floor", rectify="significant", floor_n="k+r", boots=0, seed=0):
    """Temperature fitted on the test labels (weight 1) and the chosen first-sight labels (``w_fs``);
    the mean calibrated confidence over the reserve. ``band``: "floor" (residual and reserve variance,
    never under a plus-four band over ``floor_n`` labels), "ppi" (the rectified estimate's own band with
    a plus-four floor over the test labels). ``boots``: bootstrap the calibration labels and add that
    spread."""
    rng = np.random.default_rng(seed)

    def f(x):
        P = np.asarray(x["P"], float)
        L = _log(P)
        held, y = x["held"], x["y"]
        sel = _first_sight(x, which)
        fsL, fsy = _log(x["fs_P"][sel]), x["fs_y"][sel]
        k, r = len(held), len(sel)
        logp = np.concatenate([L[held], fsL]) if r else L[held]
        yy = np.concatenate([y, fsy]) if r else y
        wf = w_fs if w_fs > 0 else -w_fs / max(r, 1)  # negative: the first sights' total weight
        w = np.concatenate([np.ones(k), wf * np.ones(r)])
        T = _fit_T(logp, yy, w) if len(yy) else 1.0
        g = _conf(L, T)
        est = float(g.mean())
        hit = (P[held].argmax(1) == y).astype(float)
        resid = hit - g[held]
        var_res = resid.var(ddof=1) if k >= 2 else 0.25
        sd_model = np.sqrt(var_res / max(k, 1) + g.var() / len(g))
        if boots:
            ests = []
            for _ in range(boots):
                bi = rng.integers(0, k, k) if k else np.arange(0)
                bf = rng.integers(0, r, r) if r else np.arange(0)
                lp = np.concatenate([L[held][bi], fsL[bf]])
                Tb = _fit_T(
                    lp, np.concatenate([y[bi], fsy[bf]]), np.concatenate([np.ones(k), wf * np.ones(r)])
                )
                ests.append(_conf(L, Tb).mean())
            sd_boot = float(np.std(ests))
        else:
            sd_boot = 0.0
        if band == "ppi":
            est_pp = min(1.0, max(0.0, est + resid.mean())) if k else est
            sd = max(sd_model, _plus4_sd(hit.mean() if k else est, k) if False else 0.0)
            sd = max(sd_model, _plus4_sd(est_pp, k))
            return est_pp, max(0.0, est_pp - Z * sd), min(1.0, est_pp + Z * sd)
        if rectify == "significant" and k >= 2:
            hits = hit.sum()
            fl = (hits + 2) / (k + 4) * (1 - (hits + 2) / (k + 4))
            bias, bias_se = float(resid.mean()), np.sqrt(max(var_res, fl) / k)
            if abs(bias) > Z * bias_se:
                est = min(1.0, max(0.0, est + bias))
        sd = np.sqrt(sd_model**2 + sd_boot**2) if band == "floor" else np.sqrt(g.var() / len(g) + sd_boot**2)
        if floor_n == "k+r":
            n = k + r
        elif isinstance(floor_n, tuple):
            n = k + len(_first_sight(x, floor_n[1]))
        else:
            n = k + int(floor_n * r)
        sd = max(sd, _plus4_sd(est, n))
        return est, max(0.0, est - Z * sd), min(1.0, est + Z * sd)

    return f


def ppi_plus(which=30, w_fs=0.25, floor="k"):
    """PPI++ (Angelopoulos et al. 2023): the reserve's calibrated confidence times a power-tuning
    lambda, corrected by the held-out labels; plus-four floor over the held-out labels ("k") or none."""
    base = calibrated(which, w_fs)

    def f(x):
        P = np.asarray(x["P"], float)
        L = _log(P)
        held, y = x["held"], x["y"]
        k, R = len(held), len(P)
        if k < 3:
            return base(x)
        sel = _first_sight(x, which)
        lp = np.concatenate([L[held], _log(x["fs_P"][sel])])
        T = _fit_T(
            lp, np.concatenate([y, x["fs_y"][sel]]), np.concatenate([np.ones(k), w_fs * np.ones(len(sel))])
        )
        g = _conf(L, T)
        hit = (P[held].argmax(1) == y).astype(float)
        gh = g[held]
        v = gh.var(ddof=1)
        lam = 0.0 if v <= 1e-12 else float(np.clip(np.cov(hit, gh)[0, 1] / ((1 + k / R) * v), 0, 1))
        est = lam * g.mean() + (hit - lam * gh).mean()
        sd = np.sqrt((hit - lam * gh).var(ddof=1) / k + lam**2 * g.var() / R)
        if floor == "k":
            sd = max(sd, _plus4_sd(est, k))
        est = min(1.0, max(0.0, est))
        return est, max(0.0, est - Z * sd), min(1.0, est + Z * sd)

    return f


def test_only(x):
    """Plus-four on the test labels alone (the honest reference: no model in it)."""
    P, held, y = np.asarray(x["P"]), x["held"], x["y"]
    k = len(held)
    hits = (P[held].argmax(1) == y).sum() if k else 0
    a = (hits + 2) / (k + 4)
    sd = np.sqrt(a * (1 - a) / (k + 4))
    return a, max(0.0, a - Z * sd), min(1.0, a + Z * sd)


def experimental() -> dict:
    return {
        "test-only plus4": test_only,
        "before: cal 30 w.25": calibrated(30, 0.25),
        "cal 60 w.25": calibrated(60, 0.25),
        "cal half w.25": calibrated(0.5, 0.25),
        "cal all w.25": calibrated("all", 0.25),
        "cal half w1": calibrated(0.5, 1.0),
        "cal all w1": calibrated("all", 1.0),
        "cal latest half w1": calibrated(("latest", 0.5), 1.0),
        "cal latest half w.5": calibrated(("latest", 0.5), 0.5),
        "cal latest half w1 boot": calibrated(("latest", 0.5), 1.0, band="boot", boots=100),
        "cal 30 w.25 floor k+half": calibrated(30, 0.25, floor_n=("k+", 0.5)),
        "cal 30 w.25 floor k+all": calibrated(30, 0.25, floor_n=("k+", "all")),
        "cal 30 w.25 floor k+60": calibrated(30, 0.25, floor_n=("k+", 60)),
        "cal 30 w.25 floor k+100": calibrated(30, 0.25, floor_n=("k+", 100)),
        "cal 30 w.25 boot floor k+half": calibrated(30, 0.25, band="boot", boots=100, floor_n=("k+", 0.5)),
        "cal half tot7.5": calibrated(0.5, -7.5),
        "cal half tot7.5 boot": calibrated(0.5, -7.5, band="boot", boots=100),
        "cal half tot15": calibrated(0.5, -15),
        "cal 0.25 w1": calibrated(0.25, 1.0),
        "cal 0.75 w1": calibrated(0.75, 1.0),
        "cal 100 w1": calibrated(100, 1.0),
        "ppi 30": calibrated(30, 0.25, band="ppi"),
        "ppi++ 30": ppi_plus(30, 0.25),
        "ppi++ 30 no floor": ppi_plus(30, 0.25, floor=None),
        "ppi half w1": calibrated(0.5, 1.0, band="ppi"),
        "cal half w.25 boot": calibrated(0.5, 0.25, band="boot", boots=100),
        "cal half w1 boot": calibrated(0.5, 1.0, band="boot", boots=100),
    }


def candidates() -> dict:
    """name -> estimator(inputs) -> (accuracy, low, high)."""
    from oal_widget.training import estimate as E

    def product(x):
        """estimate.py as it is, given what ``FirstSight.for_estimate`` gives: the latest half."""
        sel = _first_sight(x, ("latest", E.ESTIMATE_SHARE))
        fs_P, fs_y = (x["fs_P"][sel], x["fs_y"][sel]) if len(sel) else (None, None)
        e = E.estimate(x["P"], x["held"], x["y"], fs_P, fs_y)
        return e.accuracy, e.low, e.high

    def product_30(x):
        """estimate.py given the latest 30 first sights (``FirstSight.recent``, as core passed them)."""
        e = E.estimate(x["P"], x["held"], x["y"], x["recent_P"], x["recent_y"])
        return e.accuracy, e.low, e.high

    out = {"estimate.py": product, "estimate.py, latest 30": product_30}
    out.update(experimental())
    return out


def print_tables(datasets, tag: str = "", start: int = BAND_FROM, only: str = "") -> None:
    from oal_widget.training import estimate as E

    cands = candidates()
    for d in datasets:
        data = load(d, tag)
        print(f"\n{d}: {len(data['runs'])} runs, budget {data['budget']}; from {start} labels on")
        print(
            f"{'candidate':<30}{'n':>5}{'coverage':>10}{'halfwidth':>11}{'|gap|':>8}{'below':>8}{'test':>7}"
        )
        loop = [
            (r["n_train"] + r["n_test"], *r["shown"], r["true"], r["n_test"])
            for run in data["runs"]
            for r in run["records"]
        ]
        s = summary(loop, start)
        print(
            f"{'(shown in the recorded loop)':<30}{s['n']:>5}{s['coverage']:>10.3f}{s['halfwidth']:>11.4f}"
            f"{s['gap']:>8.4f}{s['below']:>8.3f}{s['test share']:>7.3f}"
        )
        for name, c in cands.items():
            if only and only not in name:
                continue
            s = summary(replay(data["runs"], c, E.TARGET_HALFWIDTH, E.MIN_TEST), start)
            if not s["n"]:
                continue
            print(
                f"{name:<30}{s['n']:>5}{s['coverage']:>10.3f}{s['halfwidth']:>11.4f}{s['gap']:>8.4f}"
                f"{s['below']:>8.3f}{s['test share']:>7.3f}"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("record", "table"))
    parser.add_argument("--dataset", nargs="+", default=["digits", "mnist5k"], choices=sorted(BUDGETS))
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: per set)")
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--from", dest="start", type=int, default=BAND_FROM, help="evaluations from N labels on"
    )
    parser.add_argument("--only", default="", help="candidates whose name contains this")
    parser.add_argument(
        "--tag",
        default="",
        help="recordings' name suffix; 'wired': the estimate gets FirstSight.for_estimate in the loop",
    )
    args = parser.parse_args(argv)
    if args.what == "record":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for d in args.dataset:
            budget, n = BUDGETS[d]
            first = args.first_seed
            record(d, range(first, first + (args.seeds or n)), args.budget or budget, tag=args.tag)
        return 0
    print_tables(args.dataset, args.tag, args.start, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
