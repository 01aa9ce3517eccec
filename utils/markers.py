"""A directory that appears whole: a stage (or a build: data, the small model, an embedded model) writes into
`<dir>.partial`, removed first if a crashed attempt left one, writes the DONE marker last and renames it into place.
A directory with DONE is finished.
"""
import os
import shutil
from pathlib import Path

from utils.io import UserError, write_text

DONE = "DONE"  # marker file written last inside a finished stage directory


def is_done(stage_dir) -> bool:
    return (Path(stage_dir) / DONE).is_file()


def partial_dir(stage_dir) -> Path:
    """Where a stage writes before it is complete; renamed to `stage_dir` by `finish_stage`."""
    stage_dir = Path(stage_dir)
    return stage_dir.with_name(stage_dir.name + ".partial")


def start_stage(stage_dir) -> Path:
    """Fresh partial directory for a stage (leftovers of a crashed attempt are removed)."""
    tmp = partial_dir(stage_dir)
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"cannot create {tmp}: {e.strerror}") from None
    return tmp


def finish_stage(stage_dir) -> Path:
    """Mark the partial directory complete and move it into place atomically."""
    stage_dir = Path(stage_dir)
    tmp = partial_dir(stage_dir)
    write_text(tmp / DONE, "")
    if stage_dir.exists():  # an incomplete directory left by something else: replace it
        shutil.rmtree(stage_dir)
    os.replace(tmp, stage_dir)
    return stage_dir
