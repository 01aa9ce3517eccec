"""One training stage's life, shared by train/sft.py, train/dpo.py and train/self_play.py.

    stage = Stage("sft", output_dir, args, what="the SFT stage")
    if stage.skip():                  # finished before with the same settings (other settings: a clear error)
        return
    ...checks, data, model; trl's config writes to stage.partial...
    stage.begin()                     # a fresh partial directory, every process past the barrier
    ...train, save into stage.partial...
    stage.finish(facts, "wrote ...")  # run config, DONE, the atomic rename, the message, the closing barrier

Only the main process writes; every process calls each method, so the barriers line up. A crash leaves only
`<dir>.partial`, which the next attempt starts afresh; the finished directory appears in one rename.
"""
from pathlib import Path

from utils.io import check_same_settings, finish_stage, is_done, partial_dir, start_stage, write_run_config


class Stage:
    def __init__(self, name: str, output_dir, args: dict, what: str, tag: str = ""):
        from utils.modeling import process_state

        self.name, self.out, self.args, self.what = name, Path(output_dir), args, what
        self.tag = tag or name
        self.state = process_state()
        self.is_main = self.state.is_main_process
        self.partial = partial_dir(self.out)

    def say(self, message: str) -> None:
        """Print on the main process only, prefixed with the stage's tag."""
        if self.is_main:
            print(f"[{self.tag}] {message}", flush=True)

    def skip(self) -> bool:
        """True when the stage is finished: its settings must equal these (check_same_settings stops otherwise)."""
        if not is_done(self.out):
            return False
        check_same_settings(self.out, self.name, self.args, f"{self.what} {self.out}")
        self.say(f"{self.out} is complete; skipping")
        return True

    def begin(self) -> Path:
        """A fresh partial directory (a crashed attempt's leftovers removed), then every process waits for it."""
        if self.is_main:
            start_stage(self.out)
        self.state.wait_for_everyone()
        return self.partial

    def finish(self, facts: dict | None = None, message: str = "") -> None:
        """Record the run config (the arguments plus `facts`), mark the stage done and move it into place; then
        every process waits, so none goes on before the directory exists."""
        if self.is_main:
            write_run_config(self.partial, self.name, self.args, facts)
            finish_stage(self.out)
            self.say(message or f"wrote {self.out}")
        self.state.wait_for_everyone()

    def stand_by(self) -> None:
        """For a process with no part in what the stage writes (self-play's helpers once their share is generated):
        pass the barriers of `begin` and `finish` while the main process writes."""
        self.begin()
        self.finish()
