"""Where one self-play iteration's time goes, stage by stage, read from a finished run (no re-running).

usage: python -m bench.iteration_budget --iteration_dir runs/smollm2/SPRec/ML100K/it0 [--pairs 256]
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


def minus(process: float | None, work: float | None) -> float | None:
    """A process's start-up: its time minus its recorded work (unknown when either is)."""
    return process - work if process is not None and work is not None else None


def rows(it: Path) -> list[tuple[str, float | None, float | None, float | None, str, int]]:
    """(stage, work seconds, process seconds, start-up seconds, what the work was, units of work) per stage that ran;
    a process's time sits on its last row (self-play's generation and grounding share one process)."""
    out = []
    play, summary = read(it / "data/run_config_self_play.json"), read(it / "data/summary.json")
    if play:
        drawn, generation, process = summary.get("drawn", 0), summary.get("generation_seconds"), play.get(
            "process_seconds")
        grounding = summary["seconds"] - generation if generation is not None else None
        out.append(("self-play sampling (generation, model load included)", generation, None, None,
                    f"{drawn} prompts", drawn))
        out.append(("self-play pairs (grounding)", grounding, process,
                    minus(process, summary["seconds"]), "", drawn))
    for step, stage, unit in (("SFT", "sft", "train_records"), ("DPO", "dpo", "pairs")):
        config = read(it / step / f"run_config_{stage}.json")
        if config:
            args, process = config["args"], config.get("process_seconds")
            work = (args.get("train_seconds") or 0) + (args.get("setup_seconds") or 0) or None
            out.append((f"{step} step (trainer set-up + training)", work, process, minus(process, work),
                        f"{args.get(unit)} {'records' if stage == 'sft' else 'pairs'}, {args.get('steps')} steps",
                        args.get(unit) or 0))
        inference = read(it / step / "run_config_inference.json")
        if inference:
            args, process = inference["args"], inference.get("process_seconds")
            work = args.get("generation_seconds")
            out.append((f"evaluation of the {step} step's model (generation)", work, process, minus(process, work),
                        f"{args.get('records')} test prompts", 0))
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
    total = scaled = 0.0
    scale = args.pairs / pairs if args.pairs and pairs else 1.0
    for stage, work, process, startup, what, units in table:
        cell = [f"{x:.0f}" if x is not None else "–" for x in (work, process, startup)]
        print(f"| {stage} | {cell[0]} | {cell[1]} | {cell[2]} | {what} |")
        if process is not None:  # one process per stage: its time counts once, start-up included
            total += process
            scaled += process * (scale if units else 1)
    print(f"| **total** (the stages' processes) | | **{total:.0f}** ({total / 60:.1f} min) | | |")
    if args.pairs and pairs:
        print(f"\nscaled to {args.pairs} pairs (the self-play, SFT and DPO processes x{scale:.2f}, start-up included, "
              f"so a slight overestimate; evaluations as measured): about {scaled / 60:.1f} min")


if __name__ == "__main__":
    main()
