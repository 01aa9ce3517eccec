"""Where one self-play iteration's time goes, stage by stage, read from a finished run (no re-running).

usage: python bench/iteration_budget.py --iteration_dir runs/smollm2/SPRec/ML100K/it0 [--pairs 256]
Every stage records in its run config how long its process had run when it finished (`process_seconds`: start-up,
model loading and the work) and the work itself: the self-play sampling's generation and grounding, the SFT and DPO
steps' trainer set-up and training, each evaluation's generation. Start-up is a stage's process time minus its work.
The launcher's own start-up (accelerate, multi-process runs) is not inside any process and is not counted.
With --pairs N the per-record, per-pair and per-prompt costs are scaled to an iteration of N pairs (N SFT records,
N(1 + spare) sampled prompts, the same evaluations).
"""
import argparse
import json
import sys
from pathlib import Path


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def rows(it: Path) -> list[tuple[str, float | None, float | None, str, float]]:
    """(stage, work seconds, process seconds, what the work was, units of work) for each stage that ran."""
    out = []
    play, summary = read(it / "data/run_config_self_play.json"), read(it / "data/summary.json")
    if play:
        drawn = summary.get("drawn", 0)
        generation = summary.get("generation_seconds")
        out.append(("self-play sampling (generation, model load included)", generation, None,
                    f"{drawn} prompts", drawn))
        grounding = summary["seconds"] - generation if generation is not None else None
        out.append(("self-play pairs (grounding)", grounding, play.get("process_seconds"), "", drawn))
    for step, stage, unit in (("SFT", "sft", "train_records"), ("DPO", "dpo", "pairs")):
        config = read(it / step / f"run_config_{stage}.json")
        if config:
            args = config["args"]
            work = (args.get("train_seconds") or 0) + (args.get("setup_seconds") or 0)
            out.append((f"{step} step (trainer set-up + training)", work or None, config.get("process_seconds"),
                        f"{args.get(unit)} {'records' if stage == 'sft' else 'pairs'}, {args.get('steps')} steps",
                        args.get(unit) or 0))
        inference = read(it / step / "run_config_inference.json")
        if inference:
            args = inference["args"]
            out.append((f"evaluation of the {step} step's model (generation)", args.get("generation_seconds"),
                        inference.get("process_seconds"), f"{args.get('records')} test prompts", 0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iteration_dir", required=True, help="a finished iteration, e.g. runs/smollm2/SPRec/ML100K/it0")
    ap.add_argument("--pairs", type=int, default=0, help="also scale the training stages to this many pairs")
    args = ap.parse_args()
    it = Path(args.iteration_dir)
    table = rows(it)
    if not table:
        sys.exit(f"{it}: no finished stage with recorded times (run configs written before they recorded times "
                 "have none: rerun the iteration with the current code)")
    pairs = read(it / "DPO/run_config_dpo.json").get("args", {}).get("pairs") or 0
    print(f"{it}: one iteration, stage by stage (seconds)\n")
    print("| stage | work | process (work + start-up) | start-up | what |\n|---|---:|---:|---:|---|")
    total = 0.0
    for stage, work, process, what, _ in table:
        startup = process - work if process is not None and work is not None else None
        total += process if process is not None else (work or 0)
        cell = [f"{x:.0f}" if x is not None else "–" for x in (work, process, startup)]
        print(f"| {stage} | {cell[0]} | {cell[1]} | {cell[2]} | {what} |")
    print(f"| **total** | | **{total:.0f}** ({total / 60:.1f} min) | | |")
    if args.pairs and pairs:
        scale = args.pairs / pairs
        scaled = sum((process if process is not None else (work or 0)) * (scale if units else 1)
                     for _, work, process, _, units in table)
        print(f"\nscaled to {args.pairs} pairs (the sampling, grounding, SFT and DPO stages' process times "
              f"x{scale:.2f}, start-up included, so a slight overestimate; evaluations as measured): "
              f"about {scaled / 60:.1f} min")


if __name__ == "__main__":
    main()
