"""One stage's life, shared by every stage: train/sft.py, train/dpo.py, train/self_play.py and eval/inference.py.

    stage = Stage("sft", output_dir, args, what="the SFT stage")
    if stage.skip():                  # finished before with the same settings (other settings: a clear error)
        return
    ...checks, data, model; trl's config writes to stage.partial...
    stage.begin()                     # a fresh partial directory, every process past the barrier
    ...train, save into stage.partial...
    stage.finish(facts, "wrote ...")  # run config, DONE, the atomic rename, the message, the closing barrier

Only the main process writes; every process calls each method, so the barriers line up. A crash leaves only
`<dir>.partial`, which the next attempt starts afresh; the finished directory appears in one rename.
A stage whose products are files inside a directory that exists already (evaluation's predictions and eval files in
a model directory) names them (`products`): it is finished when they and its run config are there; each file is
written atomically (utils/io.py) and the run config last, so a crash leaves it unfinished; the main process writes
them and takes no barrier (its caller waits where it must: evaluation runs on the main process alone). With
`redo_on_change` a
finished stage made with other settings is made again instead of stopping the run (the eval files of another
grounding model: cheap, and derived from predictions that are reused).
The directory markers (DONE, the partial directory): utils/markers.py. The run config and the settings it compares:
utils/provenance.py.
"""
from pathlib import Path

from utils.markers import finish_stage, is_done, partial_dir, start_stage
from utils.provenance import check_same_settings, run_config_path, settings_differences, write_run_config


class Stage:
    def __init__(self, name: str, output_dir, args: dict, what: str, tag: str = "", products=None,
                 redo_on_change: bool = False):
        self.name, self.out, self.args, self.what = name, Path(output_dir), args, what
        self.tag = tag or name
        self.products = [Path(p) for p in products] if products is not None else None
        self.redo_on_change = redo_on_change
        self.partial = self.out if self.products is not None else partial_dir(self.out)
        self._state = None

    @property
    def state(self):
        """accelerate's process state, made on first use: a finished stage skips without importing torch."""
        if self._state is None:
            from utils.device import process_state

            self._state = process_state()
        return self._state

    @property
    def is_main(self) -> bool:
        """The main process (rank 0 of the launch; torchrun's RANK until accelerate is asked)."""
        from utils.device import launched_as_main

        return self._state.is_main_process if self._state is not None else launched_as_main()

    def say(self, message: str) -> None:
        """Print on the main process only, prefixed with the stage's tag."""
        if self.is_main:
            print(f"[{self.tag}] {message}", flush=True)

    @property
    def done(self) -> bool:
        if self.products is None:
            return is_done(self.out)
        return run_config_path(self.out, self.name).is_file() and all(p.is_file() for p in self.products)

    def skip(self, redo: str = "", message: str = "") -> bool:
        """True when the stage is finished: its settings must equal these (check_same_settings stops otherwise; with
        `redo_on_change` the stage is made again). `redo` says how to make it again, `message` what skipping means."""
        if not self.done:
            return False
        where = self.products[0] if self.products else self.out
        if self.redo_on_change:
            differences = settings_differences(self.out, self.name, self.args, f"{self.what} {where}")
            if differences:
                self.say(f"{self.what} {where} was made with other settings ({differences}); making it again")
                return False
        else:
            check_same_settings(self.out, self.name, self.args, f"{self.what} {where}", redo)
        self.say(message or f"{where} is complete; skipping")
        return True

    def begin(self) -> Path:
        """A fresh partial directory (a crashed attempt's leftovers removed), then every process waits for it; for a
        stage of products, the end of its old run config (what it writes now is unfinished until the new one is
        there)."""
        if self.products is not None:
            if self.is_main:
                run_config_path(self.out, self.name).unlink(missing_ok=True)
            return self.partial
        if self.is_main:
            start_stage(self.out)
        self.state.wait_for_everyone()
        return self.partial

    def finish(self, facts: dict | None = None, message: str = "") -> None:
        """Record the run config (the arguments plus `facts`), mark the stage done and move it into place; then
        every process waits, so none goes on before the directory exists."""
        if self.is_main:
            write_run_config(self.partial, self.name, self.args, facts)
            if self.products is None:
                finish_stage(self.out)
            self.say(message or f"wrote {self.out}")
        if self.products is None:
            self.state.wait_for_everyone()

    def stand_by(self) -> None:
        """For a process with no part in what the stage writes (self-play's helpers once their share is generated):
        pass the barriers of `begin` and `finish` while the main process writes."""
        self.begin()
        self.finish()
