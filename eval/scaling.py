"""The small model's scaling study (shell/scaling.sh trains and evaluates the points; this module measures and tables
them): model size, train windows and records seen against accuracy under both protocols, beside MostPop, with what
the training cost and how much of the CPU it used.

usage: python -m eval.scaling --run_root runs/scaling --measure          # per point: parameters, tokens, FLOPs
       python -m eval.scaling --run_root results/scaling [--figs_dir figs/scaling] [--peak_dir results/bench]
A point is <run_root>/<H>x<L>-<Category>-<records>/<Category>, MostPop on its category <run_root>/MostPop-<Category>/
<Category>. `--measure` needs the trained model and the category's data: it writes <point>/scaling.json (the model's
parameter count and shape, the train records' tokens and the training's model FLOPs). Without it, the table and figure
come from committed files alone (scaling.json, run_config_sft.json, eval files and per-user files, the peak files):
<run_root>/scaling.md and scaling.png.

Model FLOPs (the FLOPs the model needs, not what the kernels did, padding excluded): a record of T tokens costs
6 N T + 6 L h T (T + 1) in training: forward and backward (3 x 2 FLOPs a multiply-add) of the N weights every token
multiplies (the layers' projections and the tied output head; the embedding lookup is no multiply), and of causal
attention's scores and weighted sum (2 x 2 L h FLOPs per attended position, (T + 1) / 2 positions on average).
Utilisation = those FLOPs / train time / the peak of the cores the training used (bench/peak_flops.py writes
<peak_dir>/peak_flops-<threads>t.json: the larger of the nominal peak at the reported clock and a measured GEMM).
"""
import re
from pathlib import Path

import numpy as np

from eval.collect import answer_counts
from eval.stats import bootstrap
from utils.cli import run_cli
from utils.io import UserError, read_json, write_json, write_text
from utils.metrics import eval_name, read_eval_users, users_name

POINT = re.compile(r"^(\d+)x(\d+)-([A-Za-z0-9_.-]+)-(\d+)$")
RESAMPLES = 2000


def matmul_params(config: dict) -> int:
    """Weights every token multiplies, from a Llama config.json: per layer q, k, v, o and the gated MLP's three
    projections; plus the output head (tied to the embedding, but a matmul all the same)."""
    h, i, n_layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    kv = h * config["num_key_value_heads"] // config["num_attention_heads"]
    return n_layers * (2 * h * h + 2 * h * kv + 3 * h * i) + config["vocab_size"] * h


def train_flops(config: dict, lengths) -> float:
    """Model FLOPs of one training pass over records of these token lengths (module docstring)."""
    t = np.asarray(lengths, dtype=np.float64)
    n, h, n_layers = matmul_params(config), config["hidden_size"], config["num_hidden_layers"]
    return float((6 * n * t + 6 * n_layers * h * t * (t + 1)).sum())


def points(run_root) -> list[tuple[dict, Path]]:
    """[(the point's name fields, its model directory)] in name order, for every trained point."""
    out = []
    for d in sorted(Path(run_root).iterdir()):
        m = POINT.match(d.name)
        if m and (d / m[3] / "run_config_sft.json").is_file():
            hidden, layers, category, records = m.groups()
            out.append(({"name": d.name, "hidden": int(hidden), "layers": int(layers), "category": category,
                         "records": int(records)}, d / category))
    if not out:
        raise UserError(f"{run_root}: no trained point <H>x<L>-<Category>-<records>/<Category> (run shell/scaling.sh)")
    return out


def measure_point(model_dir: Path, category: str) -> dict:
    """The point's parameters, its train records' token lengths and the training's model FLOPs (needs the model)."""
    from transformers import AutoTokenizer

    from train.sft import training_records
    from utils.data import category_dir
    from utils.prompt import contract_of

    config = read_json(model_dir / "config.json")
    sft = read_json(model_dir / "run_config_sft.json")["args"]
    recipe = sft["resolved_recipe"]
    splits, _, _ = training_records("sft", recipe, category_dir(category), sft["train_file"], sft["seed"], False)
    columns = contract_of(recipe).sft_columns(splits["train"], None)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # trl tokenizes prompt and completion apart and appends EOS to the completion; the small model's tokenizer
    # keeps a title's tokens the same either way (utils/tiny_model.py)
    prompt = tokenizer(columns["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(columns["completion"], add_special_tokens=False)["input_ids"]
    lengths = [len(p) + len(c) + 1 for p, c in zip(prompt, completion)]
    epochs = recipe["sft"]["num_train_epochs"]
    shape = {k: config[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                    "num_key_value_heads", "vocab_size")}
    import torch

    from utils.modeling import load_model

    params = sum(p.numel() for p in load_model(str(model_dir)).parameters())
    return {"parameters": int(params), "matmul_parameters": matmul_params(config), "config": shape,
            "train_records": len(lengths), "epochs": epochs, "tokens_per_epoch": int(sum(lengths)),
            "mean_tokens_per_record": round(float(np.mean(lengths)), 2),
            "train_flops": epochs * train_flops(config, lengths), "torch": torch.__version__}


def protocol(model_dir: Path, decoding: str | None) -> dict:
    """HR@1, HR@5, NDCG@5 (and ValidRatio) under one protocol, and its per-user lists for the paired intervals."""
    top1, top5 = (read_json(model_dir / eval_name(k, decoding)) for k in (1, 5))
    users = read_eval_users(model_dir / users_name(decoding), 5)
    return {"HR@1": top1["HR"], "HR@5": top5["HR"], "NDCG@5": top5["NDCG"], "ValidRatio": top5.get("ValidRatio"),
            "users": users, "fingerprint": top5.get("test_records")}


def paired_hr(a: dict, b: dict, k: int) -> tuple[float, float, float]:
    """HR@k of a minus b over the same users, with its 95% paired bootstrap interval (eval/stats.py)."""
    if a["users"]["keys"] != b["users"]["keys"]:
        raise UserError("the paired interval needs the same test users in the same order")
    (mean_a, boot_a), (mean_b, boot_b) = (bootstrap({"ranks": m["users"]["ranks"]}, RESAMPLES, 0, k) for m in (a, b))
    diff = boot_a["HR"] - boot_b["HR"]
    return mean_a["HR"] - mean_b["HR"], float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))


def point_row(fields: dict, model_dir: Path, mostpop: dict, peaks: dict) -> dict:
    measured_path = model_dir / "scaling.json"
    if not measured_path.is_file():
        raise UserError(f"{measured_path} is missing: run python -m eval.scaling --run_root ... --measure where the "
                        f"model is")
    measured = read_json(measured_path)
    sft = read_json(model_dir / "run_config_sft.json")
    greedy, constrained = protocol(model_dir, "greedy"), protocol(model_dir, "constrained")
    for p in (greedy, constrained):
        if p["fingerprint"] != mostpop["fingerprint"]:
            raise UserError(f"{model_dir} was evaluated on other test users than MostPop on {fields['category']}")
    seconds, threads = sft["args"]["train_seconds"], sft["settings"]["numerics"]["threads"]
    achieved, peak = measured["train_flops"] / seconds, peaks.get(threads)
    return {**fields, **measured, "train_minutes": seconds / 60, "train_loss": sft["args"]["train_loss"],
            "records_seen": sft["args"]["steps"] * sft["args"]["global_batch_size"],
            "kernels": sft["environment"].get("KERNELS"), "threads": threads,
            "seed": sft["args"]["seed"], "commit": (sft.get("git_commit") or "")[:7], "dirty": sft.get("git_dirty"),
            "cpu": sft["environment"].get("cpu_model"), "achieved_flops": achieved,
            "mfu": achieved / peak["peak_flops"] if peak else None,
            "greedy": {k: v for k, v in greedy.items() if k != "users"},
            "constrained": {k: v for k, v in constrained.items() if k != "users"},
            "distinct_answers": len(answer_counts(greedy["users"]["texts"])),
            "distinct_top1_constrained": len(set(constrained["users"]["topk"][:, 0].tolist())),
            "greedy_hr1_vs_mostpop": paired_hr(greedy, mostpop, 1),
            "constrained_hr5_vs_mostpop": paired_hr(constrained, mostpop, 5)}


def read_peaks(peak_dir) -> dict:
    """{threads: bench.peak_flops' result} from <peak_dir>/peak_flops-<threads>t.json."""
    if not peak_dir:
        return {}
    return {int(p.stem.split("-")[1][:-1]): read_json(p) for p in sorted(Path(peak_dir).glob("peak_flops-*t.json"))}


def collect(run_root, peak_dir: str = "") -> tuple[list[dict], dict]:
    root = Path(run_root)
    peaks = read_peaks(peak_dir)
    mostpops, rows = {}, []
    for fields, model_dir in points(root):
        category = fields["category"]
        if category not in mostpops:
            d = root / f"MostPop-{category}" / category
            if not (d / eval_name(5, None)).is_file():
                raise UserError(f"{d}: MostPop is not evaluated on {category} (shell/scaling.sh runs it)")
            mostpops[category] = protocol(d, None)
        rows.append(point_row(fields, model_dir, mostpops[category], peaks))
    return rows, mostpops


def interval(d) -> str:
    bold = d[1] > 0 or d[2] < 0
    text = f"{d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]"
    return f"**{text}**" if bold else text


def markdown(rows: list[dict], mostpops: dict, peaks: dict) -> str:
    users = len(next(iter(mostpops.values()))["users"]["keys"])
    lines = [f"# The small model's scaling study: {users} test users, seed {rows[0]['seed']}", "",
             "Greedy: the paper's protocol (one generated title, grounded to its nearest catalog items); constrained: "
             "catalog-constrained beam search, five real items. Differences from MostPop on the same category and "
             f"users: 95% paired bootstrap intervals ({RESAMPLES} resamples), bold where 0 is outside. Windows: the "
             "train windows SFT draws from (ML100K: a 20,000 sample; ML100KALL: all 96,864).", "",
             "| size | parameters | windows | records seen | greedy HR@1 | greedy HR@5 | greedy NDCG@5 | ValidRatio | "
             "distinct answers | constrained HR@1 | constrained HR@5 | constrained NDCG@5 | greedy HR@1 − MostPop | "
             "constrained HR@5 − MostPop | train minutes (threads) | MFU |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        g, c = r["greedy"], r["constrained"]
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "–"
        lines.append(f"| {r['hidden']}×{r['layers']} | {r['parameters'] / 1e6:.2f}M | {r['category']} | "
                     f"{r['records_seen']:,} | {g['HR@1']:.4f} | {g['HR@5']:.4f} | {g['NDCG@5']:.4f} | "
                     f"{g['ValidRatio']:.3f} | {r['distinct_answers']} | {c['HR@1']:.4f} | {c['HR@5']:.4f} | "
                     f"{c['NDCG@5']:.4f} | {interval(r['greedy_hr1_vs_mostpop'])} | "
                     f"{interval(r['constrained_hr5_vs_mostpop'])} | {r['train_minutes']:.1f} ({r['threads']}) | "
                     f"{mfu} |")
    for category, p in mostpops.items():
        lines.append(f"| MostPop | – | {category} | – | {p['HR@1']:.4f} | {p['HR@5']:.4f} | {p['NDCG@5']:.4f} | – | – "
                     f"| – | – | – | – | – | – | – |")
    commits = sorted({(r["commit"], r["dirty"], r["kernels"], r["cpu"]) for r in rows})
    lines += ["", "Made at: " + "; ".join(f"{c}{' (dirty)' if d else ''}, KERNELS={k}, {cpu}"
                                          for c, d, k, cpu in commits) + "."]
    for threads in sorted({r["threads"] for r in rows if r["mfu"] is not None}):
        peak = peaks[threads]
        lines += [f"MFU at {threads} thread(s): model FLOPs per second of training (eval/scaling.py) over the fp32 "
                  f"peak of the cores used, {peak['peak_flops'] / 1e9:.0f} GFLOP/s: the larger of the nominal "
                  f"{peak['nominal_peak_flops'] / 1e9:.0f} ({peak['how']}, the clock the machine reports) and a large "
                  f"fp32 GEMM's {peak['measured_gemm_flops'] / 1e9:.0f} ({peak['file_note']})."]
    lines += ["", "Per point: " + "; ".join(
        f"{r['name']}: {r['mean_tokens_per_record']:.0f} tokens a record, {r['train_flops'] / 1e15:.2f} PFLOP, "
        f"{r['achieved_flops'] / 1e9:.1f} GFLOP/s, train loss {r['train_loss']:.3f}" for r in rows) + "."]
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], mostpops: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (proto, metric) in zip(axes, (("greedy", "HR@1"), ("constrained", "HR@5"))):
        for category in sorted({r["category"] for r in rows}):
            sub = sorted((r for r in rows if r["category"] == category), key=lambda r: r["train_flops"])
            ax.plot([r["train_flops"] for r in sub], [r[proto][metric] for r in sub], "o-", label=f"SFT, {category}")
            for r in sub:
                ax.annotate(f"{r['parameters'] / 1e6:.1f}M, {r['records_seen'] // 1000}k", (r["train_flops"],
                            r[proto][metric]), fontsize=7, xytext=(4, 4), textcoords="offset points")
            ax.axhline(mostpops[category][metric], ls="--", lw=1, color="grey" if category == "ML100K" else "black",
                       label=f"MostPop, {category}")
        ax.set(xscale="log", xlabel="training model FLOPs", ylabel=metric, title=f"{proto}: {metric}", ylim=(0, None))
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run(run_root: str = "runs/scaling", measure: bool = False, figs_dir: str = "", peak_dir: str = ""):
    if measure:
        for fields, model_dir in points(run_root):
            if (model_dir / "config.json").is_file():
                write_json(model_dir / "scaling.json", measure_point(model_dir, fields["category"]))
                print(f"[scaling] measured {model_dir}")
        return
    rows, mostpops = collect(run_root, peak_dir)
    table = markdown(rows, mostpops, read_peaks(peak_dir))
    out = Path(run_root) / "scaling.md"
    write_text(out, table)
    png = Path(figs_dir or run_root) / "scaling.png"
    figure(rows, mostpops, png)
    write_json(Path(run_root) / "scaling_summary.json", rows)
    print(table)
    print(f"[scaling] wrote {out}, {png}")


if __name__ == "__main__":
    run_cli(run)
