"""The stderr of a multi-process launch, as one process's would read (shell/common.sh's `launch` pipes it through).

usage: accelerate launch ... 2>&1 1>&3 | python -m utils.launcher_stderr ERRORS_FILE
Every process of a launch meets the same bad input, so a user error (`error: ...`) comes once per process: it is
printed once and recorded in ERRORS_FILE, from which `launch` exits 2. The launcher's own report of a failed
process (torch elastic's log lines, accelerate's traceback and its ChildFailedError summary) is dropped: it only
repeats that a process exited, as a page of traceback under a one-line error. A process's own traceback (a real
crash) is kept whole, and everything else (progress bars included) passes through as it comes.
"""
import re
import sys

ELASTIC_LOG = re.compile(rb"^[WEI]\d{4} [\d:.]+ \d+ torch/distributed/elastic/")
LAUNCHER_FRAME = re.compile(rb"accelerate/commands/|torch/distributed/(run|launcher)")


def main(errors_path: str) -> None:
    source, out = sys.stdin.buffer, sys.stderr.buffer
    seen, traceback, launcher, pending = set(), None, False, b""
    while chunk := source.read1(65536):
        pending += chunk
        *lines, pending = re.split(rb"(?<=[\r\n])", pending)  # complete lines (or progress-bar frames) only
        for line in lines:
            if launcher:
                continue  # the launcher's traceback runs to the end of its output
            if line.startswith(b"error: "):
                if line not in seen:
                    seen.add(line)
                    out.write(line)
                    with open(errors_path, "ab") as f:
                        f.write(line)
            elif ELASTIC_LOG.match(line):
                continue
            elif traceback is not None:  # a traceback: whose is it?
                if LAUNCHER_FRAME.search(line):
                    launcher, traceback = True, None
                    continue
                traceback += line
                if not line[:1].isspace():  # its last line, the exception: a process's own, kept
                    out.write(traceback)
                    traceback = None
            elif line.startswith(b"Traceback (most recent call last):"):
                traceback = line
            else:
                out.write(line)
        out.flush()
    if traceback is not None and not launcher:
        out.write(traceback)
    if pending and not launcher:
        out.write(pending)
    out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
