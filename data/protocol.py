"""The split protocol every converter shares (documented in data/README.md).

Per user, interactions sorted by time (ties kept in file order), repeated items dropped after the first. Test = the
last interaction, valid = the one before, train = sliding windows over the rest: up to `history_len` previous items ->
the next item, sampled to `train_size` windows with `seed`. Records are in the official format plus structured
`history` and `target`. The whole directory is written under a temporary name and renamed into place last.

Optional, for the large sources (off by default): a time window, an iterative k-core, sampled valid/test users, a
genre vocabulary of the N most frequent genres, and a catalog restricted to items some kept user interacted with.
"""
import bisect
import html
import random
import re
from array import array
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from utils.io import UserError, write_json
from utils.markers import finish_stage, start_stage
from utils.prompt import render_completion


@dataclass(frozen=True)
class Domain:
    """Words of the instruction for one kind of item, e.g. Domain("movie", "movies", "watched")."""

    noun: str
    plural: str
    verb: str

    def instruction(self) -> str:
        return (f"Given a list of {self.plural} the user recently {self.verb}, "
                f"please recommend a new {self.noun} that the user may like")

    def input_text(self, history: list[str]) -> str:
        return f"The user has {self.verb} the following {self.plural} before: " + ", ".join(f'"{h}"' for h in history)


def clean_title(title) -> str:
    """HTML entities decoded, whitespace collapsed; double quotes become single ones (quotes delimit titles)."""
    if not isinstance(title, str):
        return ""
    return re.sub(r"\s+", " ", html.unescape(title)).replace('"', "'").strip()


def make_record(domain: Domain, user, history: list[str], target: str) -> dict:
    """One record; its `output` is the answer as every stage renders it (utils/prompt.py)."""
    return {"instruction": domain.instruction(), "input": domain.input_text(history),
            "output": render_completion(target), "history": history, "target": target, "user": str(user)}


class Interactions:
    """A compact interaction log: user and item keys interned to ints, (user, item, time) in three typed arrays.

    About 24 bytes per interaction plus one string per distinct user and item, so a 10M-interaction dump fits in a
    few hundred MB. Insertion order is the file order that breaks timestamp ties.
    """

    def __init__(self):
        self.user_keys: list = []
        self.item_keys: list = []
        self._users: dict = {}
        self._items: dict = {}
        self.users, self.items, self.times = array("q"), array("q"), array("d")

    def add(self, user, item, ts: float) -> None:
        u = self._users.get(user)
        if u is None:
            u = self._users[user] = len(self.user_keys)
            self.user_keys.append(user)
        i = self._items.get(item)
        if i is None:
            i = self._items[item] = len(self.item_keys)
            self.item_keys.append(item)
        self.users.append(u)
        self.items.append(i)
        self.times.append(ts)

    def __len__(self):
        return len(self.users)

    def has_item(self, item) -> bool:
        return item in self._items

    @classmethod
    def of(cls, rows) -> "Interactions":
        if isinstance(rows, cls):
            return rows
        log = cls()
        for user, item, ts in rows:
            log.add(user, item, ts)
        return log


def _key_order(k):
    """Numeric keys in numeric order first, then the others as strings."""
    s = str(k)
    return (not s.isdigit(), int(s) if s.isdigit() else 0, s)


def _kcore(users, names, k):
    """Iteratively drop (user, item) pairs until every user and every item has at least k of them."""
    while len(users):
        keep = (np.bincount(users)[users] >= k) & (np.bincount(names)[names] >= k)
        if keep.all():
            break
        users, names = users[keep], names[keep]
    return users, names


def _iso(ts):
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _sample_users(n: int, size: int, seed: int, split: str) -> list[int]:
    if not size or size >= n:
        return list(range(n))
    return sorted(random.Random(f"{seed}:{split}").sample(range(n), size))


@dataclass(frozen=True)
class Protocol:
    """How a category's records are cut (data/prepare.py's common options): train windows of up to `history_len`
    items, sampled to `train_size` (0 = all) with `seed`. The rest changes nothing at its default: `start`/`end` keep
    interactions with start <= time < end (unix seconds); `kcore` keeps the iterative k-core of the distinct (user,
    item) pairs; `valid_size`/`test_size` sample that many users for valid/test (0 = all); with `top_genres` set the
    genre vocabulary becomes the allowed genres carried by catalog items, the `top_genres` most frequent ones (0 = all;
    frequency = number of catalog items, ties by name), kept in the order of the allowed genres when they are given,
    else by frequency; `keep_unused_items=False` leaves items out of the catalog that no kept user interacted with."""
    history_len: int = 10
    train_size: int = 20000
    seed: int = 0
    kcore: int = 0
    start: int | None = None
    end: int | None = None
    valid_size: int = 0
    test_size: int = 0
    top_genres: int | None = None
    keep_unused_items: bool = True


def write_category(out_dir, items: dict, interactions, domain: Domain, genres: list[str] | None,
                   protocol: Protocol | None = None, source: str = "", extra_stats: dict | None = None) -> dict:
    """Build a category directory from an item table and an interaction stream, cut by `protocol` (None: the
    defaults).

    items: raw item key -> (title, [genres]); titles are cleaned, items without one dropped, and items sharing a name
    merged into the one with the first key. interactions: an `Interactions` log or an iterable of (user, raw item key,
    timestamp). `genres` is the allowed genre vocabulary (None = any genre). Returns stats.
    """
    p = protocol or Protocol()
    history_len, train_size, seed, kcore, start, end = p.history_len, p.train_size, p.seed, p.kcore, p.start, p.end
    valid_size, test_size, top_genres, keep_unused_items = p.valid_size, p.test_size, p.top_genres, p.keep_unused_items
    extended = bool(kcore or start is not None or end is not None or valid_size or test_size
                    or top_genres is not None or not keep_unused_items)
    if genres is None and top_genres is None:
        top_genres = 0
    name_index, names, raw_genres, item_counts = _catalog_names(items)
    log = Interactions.of(interactions)
    seqs, used, counts = _user_sequences(log, name_index, names, start, end, kcore)
    valid, test, train, n_windows = _split_records(seqs, domain, history_len, train_size, valid_size, test_size, seed)
    n_items_all = len(names)
    if not keep_unused_items:
        keep_idx = np.flatnonzero(used).tolist()
        names, raw_genres = [names[j] for j in keep_idx], [raw_genres[j] for j in keep_idx]
    vocab, genres_of = _genre_vocabulary(names, raw_genres, genres, top_genres)

    stats = {
        "source": source, "users": len(seqs), "users_skipped_under_3_items": counts["skipped_users"],
        "items": len(names), **item_counts,
        "interactions": sum(len(s) for _, s in seqs), "interactions_unknown_item": counts["unknown"],
        "train_windows_total": n_windows,
        "records": {"train": len(train), "valid": len(valid), "test": len(test)},
        "genres": len(vocab), "items_with_genres": sum(bool(genres_of[n]) for n in names),
        "history_len": history_len, "seed": seed,
    }
    if extended:
        stats.update({
            "interactions_read": len(log), "interactions_outside_window": counts["outside_window"],
            "interactions_repeated_item": counts["repeats"],
            "kcore": kcore, "users_removed_by_kcore": counts["users_removed_by_kcore"],
            "interactions_removed_by_kcore": counts["pairs_removed_by_kcore"],
            "items_dropped_no_interactions": n_items_all - len(names),
            "window": {"start": _iso(start), "end": _iso(end)}, "valid_size": valid_size, "test_size": test_size,
            "train_size": train_size, "top_genres": top_genres,
        })
    stats.update(extra_stats or {})
    if not seqs:
        raise UserError(f"no user is left with 3 or more items ({source}); loosen --kcore / --start / --end")
    if not train:
        raise UserError(f"no train window ({source}): every kept user has exactly 3 items; loosen the filters")
    if not vocab:
        raise UserError(f"no genre is left in the vocabulary ({source}); the catalog needs at least one genre")
    out_dir = Path(out_dir)
    tmp = start_stage(out_dir)
    write_json(tmp / "train.json", train, indent=None)
    write_json(tmp / "valid.json", valid, indent=None)
    write_json(tmp / "test.json", test, indent=None)
    write_json(tmp / "id2name.json", {str(i): n for i, n in enumerate(names)})
    write_json(tmp / "name2id.json", {n: i for i, n in enumerate(names)})
    write_json(tmp / "name2genre.json", genres_of)
    write_json(tmp / "genre_dict.json", {g: 0 for g in vocab})
    write_json(tmp / "stats.json", stats)
    finish_stage(out_dir)
    return stats


def user_sequences(items: dict, interactions, *, start=None, end=None, kcore: int = 0) -> list[tuple]:
    """Each kept user's whole item sequence in time order, as `write_category` splits it: [(user, [names])] in user-key
    order, the catalog's merged names. For a method that trains on whole sequences (eval/sasrec.py), not records."""
    name_index, names, _, _ = _catalog_names(items)
    seqs, _, _ = _user_sequences(Interactions.of(interactions), name_index, names, start, end, kcore)
    return seqs


def _catalog_names(items: dict):
    """Clean names, items sharing a name merged into the first key, untitled ones dropped: (raw key -> name index,
    names, each name's genres, the counts for stats)."""
    name_index, raw_genres, names, dropped_untitled, merged = {}, [], [], 0, 0
    first_of_name = {}
    for k in sorted(items, key=_key_order):
        title, item_genres = items[k]
        name = clean_title(title)
        if not name:
            dropped_untitled += 1
            continue
        j = first_of_name.get(name)
        if j is None:
            j = first_of_name[name] = len(names)
            names.append(name)
            raw_genres.append(list(dict.fromkeys(g for g in item_genres if isinstance(g, str))))
        else:
            merged += 1
        name_index[k] = j
    return name_index, names, raw_genres, {"items_merged_same_name": merged, "items_dropped_untitled": dropped_untitled}


def _user_sequences(log, name_index: dict, names: list, start, end, kcore: int):
    """Each kept user's distinct items in time order: known items, inside the time window, chronological per user (ties
    in file order), the first occurrence of an item kept, the k-core if asked, users with at least three items (one
    history item before the valid target). Returns ([(user, [names])] in user-key order, which names are used,
    counts)."""
    item_to_name = np.array([name_index.get(k, -1) for k in log.item_keys] or [-1], dtype=np.int64)
    user_rank = np.empty(max(len(log.user_keys), 1), dtype=np.int64)
    user_rank[sorted(range(len(log.user_keys)), key=lambda u: _key_order(log.user_keys[u]))] = \
        np.arange(len(log.user_keys))
    users_by_rank = sorted(log.user_keys, key=_key_order)
    nm = item_to_name[np.frombuffer(log.items, dtype=np.int64)] if len(log) else np.zeros(0, np.int64)
    ts = np.frombuffer(log.times, dtype=np.float64) if len(log) else np.zeros(0)
    ur = user_rank[np.frombuffer(log.users, dtype=np.int64)] if len(log) else np.zeros(0, np.int64)
    known = nm >= 0
    in_window = known.copy()
    if start is not None:
        in_window &= ts >= start
    if end is not None:
        in_window &= ts < end
    counts = {"unknown": int((~known).sum()), "outside_window": int(known.sum() - in_window.sum())}
    pos = np.flatnonzero(in_window)
    pos = pos[np.lexsort((pos, ts[pos], ur[pos]))]
    ur, nm = ur[pos], nm[pos]
    _, first = np.unique(ur * max(len(names), 1) + nm, return_index=True)
    first.sort()
    counts["repeats"] = len(ur) - len(first)
    ur, nm = ur[first], nm[first]
    pairs_before_kcore, users_before_kcore = len(ur), len(np.unique(ur))
    if kcore:
        ur, nm = _kcore(ur, nm, kcore)
    counts["users_removed_by_kcore"] = users_before_kcore - len(np.unique(ur))
    counts["pairs_removed_by_kcore"] = pairs_before_kcore - len(ur)

    bounds = np.flatnonzero(np.r_[True, ur[1:] != ur[:-1], True]) if len(ur) else np.zeros(1, np.int64)
    seqs, skipped_users, used = [], 0, np.zeros(len(names), dtype=bool)
    names_arr = np.array(names, dtype=object)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if b - a < 3:
            skipped_users += 1
            continue
        seqs.append((users_by_rank[ur[a]], names_arr[nm[a:b]].tolist()))
        used[nm[a:b]] = True
    counts["skipped_users"] = skipped_users
    return seqs, used, counts


def _split_records(seqs, domain: Domain, history_len: int, train_size: int, valid_size: int, test_size: int,
                   seed: int):
    """The leave-one-out records: valid = each (sampled) user's second-to-last item, test = the last; train = a seeded
    sample of `train_size` of all earlier sliding windows (all when fewer). Returns (valid, test, train, windows)."""
    rng = random.Random(seed)
    valid = [make_record(domain, u, s[max(0, len(s) - 2 - history_len):-2], s[-2])
             for u, s in (seqs[i] for i in _sample_users(len(seqs), valid_size, seed, "valid"))]
    test = [make_record(domain, u, s[max(0, len(s) - 1 - history_len):-1], s[-1])
            for u, s in (seqs[i] for i in _sample_users(len(seqs), test_size, seed, "test"))]
    offsets = np.cumsum([0] + [len(s) - 3 for _, s in seqs])  # user i owns windows offsets[i] .. offsets[i+1]-1
    n_windows = int(offsets[-1])
    chosen = range(n_windows)
    if train_size and train_size < n_windows:
        chosen = sorted(rng.sample(range(n_windows), train_size))
    train = []
    for w in chosen:
        i = bisect.bisect_right(offsets, w) - 1
        (u, s), t = seqs[i], 1 + w - int(offsets[i])
        train.append(make_record(domain, u, s[max(0, t - history_len):t], s[t]))
    return valid, test, train, n_windows


def _genre_vocabulary(names: list, raw_genres: list, genres: list | None, top_genres: int | None):
    """The genre vocabulary (`genres`, or its `top_genres` most frequent among the catalog's items) and each name's
    genres in it."""
    allowed = None if genres is None else set(genres)
    if top_genres is None:
        vocab = list(genres)
    else:
        freq = Counter(g for gs in raw_genres for g in gs if allowed is None or g in allowed)
        ranked = sorted(freq, key=lambda g: (-freq[g], g))
        chosen_genres = set(ranked[:top_genres] if top_genres else ranked)
        vocab = [g for g in genres if g in chosen_genres] if genres is not None else \
            [g for g in ranked if g in chosen_genres]
    in_vocab = set(vocab)
    return vocab, {n: [g for g in gs if g in in_vocab] for n, gs in zip(names, raw_genres)}
