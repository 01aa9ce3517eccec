"""A learning curve: how far SFT gets on growing budgets of train records (shell/learning_curve.sh trains and evaluates
the stages; this module cuts their data and reads their results).

usage: python -m eval.learning_curve --run_root runs/curve --category ML100K [--figs_dir figs/curve]   # table, figure
       python -m eval.learning_curve --run_root runs/curve --category ML100K --slices 512,1024,2048,4096 --seed 42
The budgets are cumulative: the stage for budget b continues the previous stage's model on records it has not seen,
so stage b has seen b records in all. `--slices` writes each stage's records: one seeded draw of the largest budget
from the train split, shuffled, cut at the budgets (<run_root>/slices/<Category>/records-<b>.jsonl); a rerun with the
same draw leaves them as they are and refuses a different one. Without `--slices`, the table reads each stage's
eval files, per-user file and run config (<run_root>/SFT-<b>/<Category>) and MostPop's on the same test users
(<run_root>/MostPop/<Category>), and writes <run_root>/<Category>_curve.md and <Category>_curve.png (in --figs_dir
when given): per budget
ValidRatio, HR@5, NDCG@5, how many distinct titles the model wrote, the most common answer and its share, and the
train loss and time.
"""
import json
import random
from pathlib import Path

from eval.collect import answer_counts
from utils.cli import comma_list, run_cli
from utils.data import category_dir, load_split, sample_records
from utils.io import UserError, read_json, write_text
from utils.methods import curve_slice, method_dir
from utils.metrics import read_eval_users, users_name


def parse_budgets(budgets) -> list[int]:
    """Strictly increasing positive record counts from "512,1024,..." (or fire's tuple)."""
    try:
        out = [int(b) for b in comma_list(budgets, "--slices")]
    except ValueError:
        raise UserError(f"--slices {budgets}: give increasing record counts, e.g. 512,1024,2048") from None
    if out[0] < 1 or any(b >= c for b, c in zip(out, out[1:])):
        raise UserError(f"--slices {budgets}: the budgets must be positive and strictly increasing")
    return out


def budget_slices(records: list, budgets: list[int], seed: int) -> dict[int, list]:
    """{budget: the records stage `budget` trains on}: disjoint, together the first max(budgets) of one seeded
    shuffle, so stage b has seen b records in all."""
    if budgets[-1] > len(records):
        raise UserError(f"budget {budgets[-1]} is more than the {len(records)} train records")
    drawn = sample_records(records, budgets[-1], seed)
    random.Random(seed).shuffle(drawn)
    return {b: drawn[a:b] for a, b in zip([0, *budgets], budgets)}


def write_slices(run_root, category: str, budgets: list[int], seed: int, data_dir: str = "") -> None:
    data = Path(data_dir) if data_dir else category_dir(category)
    for b, records in budget_slices(load_split(data, "train"), budgets, seed).items():
        path = curve_slice(run_root, category, b)
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not path.is_file():
            write_text(path, text)
        elif path.read_text(encoding="utf-8") != text:
            raise UserError(f"{path} holds other records (another seed, data or budgets): use a new --run_root")
    print(f"[curve] records for budgets {','.join(map(str, budgets))} (seed {seed}) in {path.parent}")


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion: each test user is a hit or not (HR@5), names a catalog title or
    not (ValidRatio)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def stage_row(model_dir: Path) -> dict:
    """One budget's figures from its stage's directory."""
    top5 = read_json(model_dir / "eval_top5.json")
    users = read_eval_users(model_dir / users_name(), 5)
    n = len(users["keys"])
    texts = answer_counts(users["texts"])
    common, count = texts.most_common(1)[0]
    sft = read_json(model_dir / "run_config_sft.json")["args"]
    hits, valid = int((users["ranks"] < 5).sum()), sum(bool(v) for v in users["valid"])
    return {"users": n, "ValidRatio": top5["ValidRatio"], "HR@5": top5["HR"], "NDCG@5": top5["NDCG"],
            "hits@5": hits, "HR@5_interval": wilson(hits, n), "valid": valid,
            "ValidRatio_interval": wilson(valid, n),
            "DivRatio@5": top5["DivRatio"], "ORRatio@5": top5["ORRatio"], "distinct_titles": len(texts),
            "most_common": common, "most_common_share": count / n, "train_loss": sft["train_loss"],
            "train_seconds": sft["train_seconds"], "train_records": sft["train_records"],
            "fingerprint": top5.get("test_records")}


def curve_table(run_root, category: str) -> tuple[list[tuple[int, dict]], dict | None]:
    """([(budget, row)] in budget order, MostPop's eval_top5 on the same users or None)."""
    root = Path(run_root)
    stages = sorted((int(d.name.split("-", 1)[1]), d / category) for d in root.glob("SFT-*")
                    if d.name.split("-", 1)[1].isdigit() and (d / category / "eval_top5.json").is_file())
    if not stages:
        raise UserError(f"{root}: no evaluated stage SFT-<budget>/{category} (run shell/learning_curve.sh first)")
    rows = [(b, stage_row(d)) for b, d in stages]
    if len({r["fingerprint"] for _, r in rows}) > 1:
        raise UserError(f"{root}: the stages were evaluated on different test users: evaluate them on the same ones")
    mostpop = method_dir(root, "MostPop", category) / "eval_top5.json"
    pop = read_json(mostpop) if mostpop.is_file() else None
    if pop and pop.get("test_records") != rows[0][1]["fingerprint"]:
        raise UserError(f"{mostpop} was evaluated on other test users than the stages")
    return rows, pop


def markdown(rows, pop, category: str) -> str:
    users = rows[0][1]["users"]
    lines = [f"# Learning curve, {category}: SFT on growing budgets, {users} test users", "",
             "Intervals: 95% Wilson score intervals over the users (each a hit or not, a catalog title or not).", "",
             "| records seen | ValidRatio [95%] | HR@5 [95%] (hits) | NDCG@5 | DivRatio@5 | ORRatio@5 | distinct "
             "titles | most common answer (share) | train loss | train minutes |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]

    def ci(interval, digits):
        return f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"

    for b, r in rows:
        common = r["most_common"].replace("|", "\\|")
        lines.append(f"| {b} | {r['ValidRatio']:.3f} {ci(r['ValidRatio_interval'], 3)} | {r['HR@5']:.4f} "
                     f"{ci(r['HR@5_interval'], 4)} ({r['hits@5']}) | {r['NDCG@5']:.4f} | {r['DivRatio@5']:.4f} | "
                     f"{r['ORRatio@5']:.4f} | {r['distinct_titles']} | `{common}` ({r['most_common_share']:.2f}) | "
                     f"{r['train_loss']:.4f} | {r['train_seconds'] / 60:.1f} |")
    if pop:
        hits = round(pop["HR"] * pop["n"])
        lines.append(f"| MostPop | – | {pop['HR']:.4f} {ci(wilson(hits, pop['n']), 4)} ({hits}) | {pop['NDCG']:.4f} | "
                     f"{pop['DivRatio']:.4f} | {pop['ORRatio']:.4f} | – | – | – | – |")
    return "\n".join(lines) + "\n"


def figure(rows, pop, path: Path, category: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = [b for b, _ in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    hr = [r["HR@5"] for _, r in rows]
    ax1.errorbar(budgets, hr, yerr=[[h - r["HR@5_interval"][0] for h, (_, r) in zip(hr, rows)],
                                    [r["HR@5_interval"][1] - h for h, (_, r) in zip(hr, rows)]],
                 fmt="o-", capsize=3, label="SFT HR@5 (95% Wilson)")
    if pop:
        ax1.axhline(pop["HR"], color="grey", ls="--", label="MostPop HR@5")
    ax1.set(xscale="log", xlabel="train records seen", ylabel="HR@5", title=f"{category}: accuracy", ylim=(0, None))
    ax1.legend()
    ax2.plot(budgets, [r["ValidRatio"] for _, r in rows], "o-", label="ValidRatio (catalog titles)")
    ax2.plot(budgets, [r["most_common_share"] for _, r in rows], "s-", label="share of the most common answer")
    ax2.set(xscale="log", xlabel="train records seen", ylim=(0, 1.02), title="what it writes")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run(run_root: str, category: str = "ML100K", slices: str = "", seed: int = 42, data_dir: str = "",
        figs_dir: str = ""):
    if slices:
        write_slices(run_root, category, parse_budgets(slices), seed, data_dir)
        return
    rows, pop = curve_table(run_root, category)
    out, table = Path(run_root) / f"{category}_curve.md", markdown(rows, pop, category)
    write_text(out, table)
    png = Path(figs_dir or run_root) / f"{category}_curve.png"
    figure(rows, pop, png, category)
    print(table)
    print(f"[curve] wrote {out} and {png}")


if __name__ == "__main__":
    run_cli(run)
