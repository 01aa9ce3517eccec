"""Catalog-constrained beam search: K distinct real catalog items per prompt, ranked by sequence log-probability.

The prefix tree. Each item's answer, `render_completion(name)` (the quoted title and the newline that ends the answer
line; generation stops there), is tokenized the way a completion follows a prompt (utils.prompt.completion_ids:
on its own, no special tokens). The tree is stored in compressed sparse row form: node n's children are the edges
child_ptr[n]:child_ptr[n+1], sorted by token, and edge e leads to node e + 1 (nodes are numbered in edge order, the
root is 0). A node where an item's tokens end holds that item (item[n] >= 0) and may still have children (an item
whose tokens are a prefix of another's). The continuations of a whole batch of beams are found with tensor operations
(`edges`: a gather and a repeat_interleave), never a Python walk per beam; `allowed_mask` is the same set written as
the mask over the vocabulary that it amounts to. Trees are built once per (tokenizer, catalog) and process.

The search. Each prompt starts as one beam at the root (its prompt is run once, not K times). Every step, each live
beam is extended by each token its node allows, scored with the model's full-vocabulary log-softmax, so a beam's score
is the model's log-probability of its tokens: not renormalised over the allowed tokens and not length-normalised
(D3 finding). Extensions that end an item enter the prompt's pool of its K best items; the K best extensions that can
go on stay live. A prompt is done when its pool is full and no live beam scores above the pool's K-th item (a score
only falls as tokens are added); its beams then leave the batch and the KV cache. Distinct paths end in distinct
items, so the K items are distinct; with K >= the number of items nothing is pruned and the result is the exact
top-K by log-probability.
"""
import hashlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from utils.generation import BATCHING, Batching
from utils.io import UserError

if TYPE_CHECKING:
    import torch

_TRIES = {}


class SameTokens(ValueError):
    """Two items have the same token sequence (`items` holds their indices)."""

    def __init__(self, i: int, j: int):
        super().__init__(f"items {i} and {j} have the same token sequence")
        self.items = (i, j)


@dataclass
class CatalogTrie:
    child_ptr: "torch.Tensor"  # (nodes + 1,) int64: the children of node n are edges child_ptr[n]:child_ptr[n + 1]
    child_tok: "torch.Tensor"  # (edges,) int64: each edge's token, sorted within a node; edge e leads to node e + 1
    item: "torch.Tensor"  # (nodes,) int64: the item whose tokens end at the node, else -1
    depth: int  # the most tokens of any item: the most steps a search takes

    @property
    def n_nodes(self) -> int:
        return len(self.item)

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.child_ptr, self.child_tok, self.item))

    def to(self, device) -> "CatalogTrie":
        return CatalogTrie(self.child_ptr.to(device), self.child_tok.to(device), self.item.to(device), self.depth)

    def edges(self, nodes):
        """Every allowed continuation of each node, flattened: (position in `nodes`, token, child node), grouped by
        position in order."""
        import torch

        start = self.child_ptr[nodes]
        count = self.child_ptr[nodes + 1] - start
        row = torch.repeat_interleave(torch.arange(len(nodes), device=nodes.device), count)
        first = (count.cumsum(0) - count)[row]  # where each row's edges start in the flattened list
        edge = start[row] + torch.arange(len(row), device=nodes.device) - first
        return row, self.child_tok[edge], edge + 1

    def allowed_mask(self, nodes, vocab_size: int):
        """(len(nodes), vocab_size) bools: the tokens that continue some catalog item from each node."""
        import torch

        row, tok, _ = self.edges(nodes)
        mask = torch.zeros((len(nodes), vocab_size), dtype=torch.bool, device=nodes.device)
        mask[row, tok] = True
        return mask

    def has_children(self, nodes):
        return self.child_ptr[nodes + 1] > self.child_ptr[nodes]


def build_trie(sequences) -> CatalogTrie:
    """The prefix tree of token sequences (item i = sequences[i]), built a level at a time with numpy.

    Level d numbers the distinct (parent node, d-th token) pairs in sorted order, so edges come out sorted by parent
    node, then token, and the CSR arrays need no further sort. Time and memory are linear in the total tokens.
    """
    import torch

    n = len(sequences)
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
    if n == 0 or lengths.min() == 0:
        raise ValueError("a prefix tree needs one or more non-empty token sequences")
    flat = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    base = int(flat.max()) + 1
    node = np.zeros(n, dtype=np.int64)  # each sequence's node so far
    parents, tokens, n_nodes = [], [], 1
    for d in range(int(lengths.max())):
        active = np.flatnonzero(lengths > d)
        key = node[active] * base + flat[starts[active] + d]
        uniq, inverse = np.unique(key, return_inverse=True)
        parents.append(uniq // base)
        tokens.append(uniq % base)
        node[active] = n_nodes + inverse.reshape(-1)
        n_nodes += len(uniq)
    ends, first, counts = np.unique(node, return_index=True, return_counts=True)
    if (counts > 1).any():
        i = int(first[np.argmax(counts > 1)])
        j = int(np.flatnonzero(node == node[i])[1])
        raise SameTokens(i, j)
    item = np.full(n_nodes, -1, dtype=np.int64)
    item[node] = np.arange(n)
    parent = np.concatenate(parents)
    child_ptr = np.searchsorted(parent, np.arange(n_nodes + 1))
    return CatalogTrie(torch.from_numpy(child_ptr), torch.from_numpy(np.concatenate(tokens)),
                       torch.from_numpy(item), int(lengths.max()))


def catalog_trie(tokenizer, names) -> CatalogTrie:
    """The prefix tree of the catalog's answers under this tokenizer (on the CPU), built once per process."""
    from utils.prompt import completion_ids

    names = list(names)
    key = (tokenizer.name_or_path, len(tokenizer), hashlib.sha256("\0".join(names).encode()).hexdigest())
    if key not in _TRIES:
        try:
            _TRIES[key] = build_trie(completion_ids(tokenizer, names))
        except SameTokens as e:  # a lossy tokenizer (unknown characters) can merge two titles
            i, j = e.items
            raise UserError(f"catalog items {names[i]!r} and {names[j]!r} tokenize the same, so constrained decoding "
                            f"cannot tell them apart: use a tokenizer that keeps every character") from None
    return _TRIES[key]


def _by_segment(seg, values, n_seg: int):
    """Scatter values grouped by ascending segment into an (n_seg, widest segment) matrix, -inf elsewhere; with the
    index of each value in `values` (-1 elsewhere)."""
    import torch

    counts = torch.bincount(seg, minlength=n_seg)
    pos = torch.arange(len(seg), device=seg.device) - (counts.cumsum(0) - counts)[seg]
    width = max(int(counts.max()), 1)
    vals = torch.full((n_seg, width), -torch.inf, device=values.device)
    idx = torch.full((n_seg, width), -1, dtype=torch.long, device=values.device)
    vals[seg, pos] = values
    idx[seg, pos] = torch.arange(len(seg), device=seg.device)
    return vals, idx


def _search(model, ids, mask, prefix, trie: CatalogTrie, k: int):
    """Beam search of one left-padded batch of prompts: ((prompts, k) item rows, their log-probabilities), best
    first; -1 and -inf where the catalog has fewer than k items."""
    import torch

    from utils.generation import extend, prefill

    n, dev = ids.shape[0], ids.device
    cache, logits, next_pos, mask = prefill(model, ids, mask, prefix)
    prompt = torch.arange(n, device=dev)  # each live beam's prompt: beams stay grouped by prompt, in order
    node = torch.zeros(n, dtype=torch.long, device=dev)
    score = torch.zeros(n, device=dev)
    pool_score = torch.full((n, k), -torch.inf, device=dev)
    pool_item = torch.full((n, k), -1, dtype=torch.long, device=dev)
    for _ in range(trie.depth):
        logits = logits.float()
        row, tok, child = trie.edges(node)
        cand = score[row] + logits[row, tok] - torch.logsumexp(logits, -1)[row]
        seg = prompt[row]
        fin = (trie.item[child] >= 0).nonzero().squeeze(1)
        if len(fin):  # extensions that end an item: merge them into the prompt's pool of its k best
            vals, idx = _by_segment(seg[fin], cand[fin], n)
            items = torch.where(idx >= 0, trie.item[child[fin]][idx.clamp(min=0)], -1)
            pool_score, top = torch.cat([pool_score, vals], 1).topk(k, dim=1)
            pool_item = torch.cat([pool_item, items], 1).gather(1, top)
        go = trie.has_children(child).nonzero().squeeze(1)
        if not len(go):
            break
        vals, idx = _by_segment(seg[go], cand[go], n)
        vals, top = vals.topk(min(k, vals.shape[1]), dim=1)
        done = vals[:, 0] <= pool_score[:, -1]  # pool full and no live beam can beat its k-th item
        sel = go[idx.gather(1, top)[(vals > -torch.inf) & ~done[:, None]]]  # row-major: grouped by prompt
        if not len(sel):
            break
        parent = row[sel]
        cache.batch_select_indices(parent)
        mask, next_pos = mask[parent], next_pos[parent]
        prompt, node, score = seg[sel], child[sel], cand[sel]
        cache, logits, mask = extend(model, tok[sel], mask, next_pos, cache)
        next_pos = next_pos + 1
    return pool_item, pool_score


def beam_search(model, tokenizer, prompts, names, *, k: int,
                batching: Batching = BATCHING) -> list[list[tuple[int, float]]]:
    """For each prompt, in the order given: its k best catalog items as (row in `names`, sequence log-probability),
    best first (fewer when the catalog has fewer than k items).

    Prompts are batched like utils.generation.generate: sorted by length, each batch within the token budget counting
    k beams of (prompt + longest answer) tokens per prompt, their shared prefix computed once (`Batching`).
    """
    import torch
    from tqdm.auto import tqdm

    from utils.generation import SharedPrefix, batches, encode_prompts, left_pad, pad_token_id

    if k < 1:
        raise UserError(f"constrained decoding needs k >= 1 beams, got {k}")
    if not prompts:
        return []
    device = next(model.parameters()).device
    trie = catalog_trie(tokenizer, names).to(device)
    enc, lengths = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    prefix = SharedPrefix.of(model, enc) if batching.share_prefix else None
    suffixes = [e[prefix.length:] for e in enc] if prefix else enc
    out = [None] * len(prompts)
    bar = tqdm(total=len(prompts), desc=batching.desc or "constrained beam search", disable=not batching.progress,
               leave=False)
    with torch.inference_mode():
        for batch in batches(lengths, order, max(batching.token_budget // k, 1), trie.depth, batching.max_batch):
            ids, mask = left_pad(suffixes, batch, pad_token_id(tokenizer))
            items, scores = _search(model, ids.to(device), mask.to(device), prefix, trie, k)
            for row, i in enumerate(batch):
                out[i] = [(a, b) for a, b in zip(items[row].tolist(), scores[row].tolist()) if a >= 0]
            bar.update(len(batch))
    bar.close()
    return out


def beam_search_sharded(model, tokenizer, prompts, names, **kwargs) -> list[list[tuple[int, float]]]:
    """`beam_search` under accelerate: prompts sharded across processes, all get the full result in order."""
    from utils.generation import sharded

    return sharded(beam_search, model, tokenizer, prompts, names=names, **kwargs)
