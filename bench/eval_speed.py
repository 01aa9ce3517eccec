"""Speed and memory of this project's evaluation against the official SPRec/BIGRec evaluation algorithm.

usage: .venv/bin/python -m bench.eval_speed [--n 5000] [--items 50000] [--repeats 3] [--datasets ml100k,synthetic]
       [--threads 0]

Both methods get the same precomputed embeddings (predictions N x d, items M x d) and targets, and compute top-1
and top-5 metrics. Timed: ranking + metrics, not embedding.
- ours: `utils.grounding.rank_items` (chunked L2 ranking, ties by smaller item) + `utils.metrics.topk_metrics`
  (which also computes MGU/DGU from genre weights; the official algorithm below does not).
- official: a re-implementation, written from its description, of the algorithm in the official code: the full
  N x M `torch.cdist`, a full double `argsort` of it (ranks of every item for every prediction), then per K and per
  record the top-K items found by a loop of `torch.argwhere(rank[i] == j)` for j < K; HR/NDCG from the target's
  rank, diversity/ORRatio by counting.
Each method runs in its own fresh subprocess, so its peak RSS is its own (VmHWM, reset after imports and data
loading); "extra" is that peak minus the RSS at the reset: the memory the method itself needs. Both run in this one
invocation, so the ratio compares like with like.
The two must agree on HR, NDCG, diversity and ORRatio (asserted).

Datasets: `ml100k` = the real catalog in data/ML100K (1,664 items) and its 943 test records, predictions a mix of
exact target titles, corrupted titles (lower-cased, year dropped: embedded with the real model) and random catalog
names; `synthetic` = --items random unit 384-d item embeddings, and --n predictions, each its (random) target's
embedding plus noise of a random size, normalised. The official method holds N x M float32 distances plus two
N x M int64 rank/index tensors (and sort temporaries): about 24 bytes x N x M, 6.7 GB at the default 5,000 x 50,000,
about a minute per repeat with --threads 1 on 2 CPU cores (ours: ~1 GB, a few seconds).
On a shared machine pass --threads 1: with torch's default of one thread per core, the official per-record loop
of tiny torch ops slows down several-fold whenever another process competes for the cores (OpenMP waits).
"""
import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KS = (1, 5)


# ------------------------------------------------------------------------------------------------- the methods
def run_ours(query, items, targets, histories, catalog):
    from utils.grounding import rank_items
    from utils.metrics import topk_metrics

    ranks, topk = rank_items(query, items, targets, max(KS))
    return {k: topk_metrics(ranks, topk, k, catalog, histories) for k in KS}


def run_official(query, items, targets):
    """The official algorithm (re-implemented): full distance matrix, double argsort, per-rank argwhere loop."""
    import torch

    pred = torch.as_tensor(query)
    item = torch.as_tensor(items)
    dist = torch.cdist(pred, item, p=2)
    rank = dist.argsort(dim=-1).argsort(dim=-1)  # rank[i, j]: position of item j in prediction i's ordering
    del dist
    n_items = item.shape[0]
    out = {}
    for k in KS:
        hr = ndcg = 0.0
        counts = [0] * n_items
        for i in range(len(pred)):
            r = int(rank[i, int(targets[i])])
            if r < k:
                hr += 1
                ndcg += 1 / math.log2(r + 2)
            for j in range(k):
                counts[int(torch.argwhere(rank[i] == j).item())] += 1
        n = len(pred)
        diversity = sum(c > 0 for c in counts)
        out[k] = {"n": n, "HR": hr / n, "NDCG": ndcg / n, "diversity": diversity, "DivRatio": diversity / (n * k),
                  "ORRatio": sum(sorted(counts, reverse=True)[:3]) / (n * k)}
    return out


# ------------------------------------------------------------------------------------------------------- data
def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def reset_peak_rss() -> bool:
    """Start the peak-RSS count afresh (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM, not ru_maxrss: ru_maxrss keeps the parent's peak across exec, and the
    parent holds the sentence-embedding model."""
    try:
        return _status_mb("VmHWM")
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def prepare_ml100k(out: Path, seed: int = 0):
    from utils.data import load_catalog, load_split
    from utils.grounding import default_embedding_model, embed_titles, item_embeddings
    from utils.metrics import evaluated_records
    from utils.prompt import parse_title, record_target

    d = REPO / "data" / "ML100K"
    if not (d / "DONE").is_file():
        print("skip ml100k: data/ML100K is not built (python -m data.prepare ml-100k)")
        return False
    catalog = load_catalog(d)
    records = load_split(d, "test")
    keep, targets, _ = evaluated_records(records, catalog)
    model = default_embedding_model()
    items = item_embeddings(catalog, model)
    rng = random.Random(seed)
    titles = []
    for i in keep:
        t, u = parse_title(record_target(records[i])), rng.random()
        if u < 0.5:
            titles.append(t)  # exact
        elif u < 0.75:
            titles.append(t.lower().rsplit(" (", 1)[0])  # corrupted: embedded with the model
        else:
            titles.append(rng.choice(catalog.names))  # another item
    query = embed_titles(titles, catalog, items, model)
    np.save(out / "query.npy", query)
    np.save(out / "items.npy", items)
    np.save(out / "targets.npy", targets)
    (out / "meta.json").write_text(json.dumps({"kind": "ml100k", "keep": keep}))
    return True


def prepare_synthetic(out: Path, n: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)

    def unit(rows):
        x = rng.standard_normal((rows, 384), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    items = unit(m)
    targets = rng.integers(0, m, n)
    # a prediction is its target's embedding plus noise of a random size: near targets rank first, far ones do not
    sigma = rng.uniform(0, 0.3, (n, 1)).astype(np.float32)
    query = items[targets] + sigma * rng.standard_normal((n, 384), dtype=np.float32)
    np.save(out / "items.npy", items)
    np.save(out / "query.npy", query / np.linalg.norm(query, axis=1, keepdims=True))
    np.save(out / "targets.npy", targets)
    np.save(out / "histories.npy", rng.integers(0, m, (n, 10)))
    (out / "meta.json").write_text(json.dumps({"kind": "synthetic", "genres": 20, "seed": seed}))
    return True


def load(data: Path):
    """Embeddings, targets, and what `ours` needs besides: per-record history rows and a catalog with genres."""
    from utils.data import Catalog, load_catalog, load_split
    from utils.metrics import history_rows

    meta = json.loads((data / "meta.json").read_text())
    query, items, targets = (np.load(data / f"{x}.npy") for x in ("query", "items", "targets"))
    if meta["kind"] == "ml100k":
        d = REPO / "data" / "ML100K"
        catalog = load_catalog(d)
        records = load_split(d, "test")
        histories = history_rows([records[i] for i in meta["keep"]], catalog)
    else:
        rng = random.Random(meta["seed"])
        genres = [f"g{j}" for j in range(meta["genres"])]
        names = [f"item {i}" for i in range(len(items))]
        catalog = Catalog(ids=np.arange(len(items)), names=names, genres=genres,
                          name2genre={nm: rng.sample(genres, rng.randint(1, 3)) for nm in names})
        histories = np.load(data / "histories.npy").tolist()
    return query, items, targets, histories, catalog


# ------------------------------------------------------------------------------------------------- processes
def child(method: str, data: Path, repeats: int, threads: int):
    import torch

    if threads:
        torch.set_num_threads(threads)
    query, items, targets, histories, catalog = load(data)
    torch.zeros(1)  # torch initialised before the baseline RSS is read
    base = _status_mb("VmRSS") if reset_peak_rss() else peak_rss_mb()
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        if method == "ours":
            result = run_ours(query, items, targets, histories, catalog)
        else:
            result = run_official(query, items, targets)
        times.append(time.perf_counter() - t0)
    peak = peak_rss_mb()
    print(json.dumps({"times": times, "base_mb": base, "peak_mb": peak, "threads": torch.get_num_threads(),
                      "metrics": {str(k): v for k, v in result.items()}}))


def spawn(method: str, data: Path, repeats: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "bench.eval_speed", "--child", method, "--data", str(data), "--repeats", str(repeats),
           "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"})
    if out.returncode:
        sys.exit(f"{method} failed on {data}:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(name: str, shape: str, data: Path, repeats: int, threads: int):
    res = {m: spawn(m, data, repeats, threads) for m in ("official", "ours")}
    for k in map(str, KS):
        a, b = res["official"]["metrics"][k], res["ours"]["metrics"][k]
        for key in ("HR", "NDCG", "DivRatio", "ORRatio"):
            assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), (name, k, key, a[key], b[key])
        assert a["diversity"] == b["diversity"] and a["n"] == b["n"], (name, k, a, b)
    best = {m: min(r["times"]) for m, r in res.items()}
    print(f"\n{name}: {shape}, best of {repeats}, {res['ours']['threads']} torch threads")
    print(f"  {'method':<9} {'time s':>9} {'peak RSS MB':>12} {'extra MB':>9}")
    for m, r in res.items():
        print(f"  {m:<9} {best[m]:>9.3f} {r['peak_mb']:>12.0f} {r['peak_mb'] - r['base_mb']:>9.0f}")
    extra = {m: max(r["peak_mb"] - r["base_mb"], 1.0) for m, r in res.items()}
    print(f"  speed-up {best['official'] / best['ours']:.1f}x, extra memory {extra['official'] / extra['ours']:.1f}x "
          "less; metrics agree (HR, NDCG, diversity, DivRatio, ORRatio at K=" + ",".join(map(str, KS)) + ")")
    for k in map(str, KS):
        m = res["ours"]["metrics"][k]
        print(f"    K={k}: HR={m['HR']:.4f} NDCG={m['NDCG']:.4f} diversity={m['diversity']} ORRatio={m['ORRatio']:.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=5000, help="synthetic predictions")
    p.add_argument("--items", type=int, default=50000, help="synthetic catalog size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--datasets", default="ml100k,synthetic")
    p.add_argument("--threads", type=int, default=0, help="torch threads in both methods (0: torch's default)")
    p.add_argument("--child", choices=("ours", "official"), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child, a.data, a.repeats, a.threads)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads {a.threads or 'default'}")
    with tempfile.TemporaryDirectory(prefix="eval_speed_") as tmp:
        for name in a.datasets.split(","):
            d = Path(tmp) / name
            d.mkdir()
            if name == "ml100k":
                if prepare_ml100k(d):
                    n, m = np.load(d / "query.npy").shape[0], np.load(d / "items.npy").shape[0]
                    compare(name, f"N={n} predictions x M={m} items", d, a.repeats, a.threads)
            elif name == "synthetic":
                prepare_synthetic(d, a.n, a.items)
                compare(name, f"N={a.n} predictions x M={a.items} items, d=384", d, a.repeats, a.threads)
            else:
                sys.exit(f"unknown dataset {name!r} (ml100k, synthetic)")


if __name__ == "__main__":
    main()
