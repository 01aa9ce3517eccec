"""The CPU's peak FLOP/s, the denominator of the scaling study's utilisation (eval/scaling.py).

usage: OMP_NUM_THREADS=1 python -m bench.peak_flops [--size 4096] [--repeats 7] [--out FILE]

Two figures, for the cores a training uses (OMP_NUM_THREADS, else every visible core): the nominal fp32 peak,
cores x clock x FLOPs per cycle per core (64 with AVX-512: two 512-bit FMA units
of 16 lanes, 2 FLOPs a fused multiply-add; 32 with AVX2 alone), the clock being /proc/cpuinfo's "cpu MHz" (a virtual
machine shows the nominal clock, not a turbo one); and what torch reaches on this machine: the median of --repeats
fp32 matrix products of --size squared, after a warm-up, on as many threads. The peak utilisation is read against
(`peak_flops`) is the larger of the two: a virtual machine reports its nominal clock, so a GEMM running at a turbo
clock can beat the nominal figure, which then is no peak. Run it with nothing else on those cores: it measures the
machine, not the code.
"""
import os
import statistics
import time
from pathlib import Path

from utils.cli import run_cli
from utils.io import write_json
from utils.numerics import cpu_facts
from utils.provenance import git_commit, git_dirty, versions


def clock_hz() -> float:
    mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
           if line.startswith("cpu MHz")]
    return max(mhz) * 1e6


def run(size: int = 4096, repeats: int = 7, out: str = ""):
    """Writes --out, by default results/bench/peak_flops-<threads>t.json."""
    import torch

    facts = cpu_facts()
    flags = set(Path("/proc/cpuinfo").read_text().split())
    per_cycle = 64 if "avx512f" in flags else 32
    cores = threads = int(os.environ.get("OMP_NUM_THREADS") or facts["cores_visible"])
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b  # warm-up: the first products pay for allocation and kernel choice
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        seconds.append(time.perf_counter() - start)
    gemm = 2 * size**3 / statistics.median(seconds)
    nominal = cores * clock_hz() * per_cycle
    result = {"peak_flops": max(nominal, gemm), "nominal_peak_flops": nominal, "measured_gemm_flops": gemm,
              "measured_over_nominal": gemm / nominal,
              "how": f"{cores} cores x {clock_hz() / 1e9:.2f} GHz x {per_cycle} fp32 FLOPs a cycle",
              "threads": threads, "gemm_seconds": seconds, "cpu": facts, "versions": versions(),
              "git_commit": git_commit(), "git_dirty": git_dirty()}
    out = out or f"results/bench/peak_flops-{threads}t.json"
    result["file_note"] = f"{out}, a {size}x{size} fp32 product, median of {repeats}"
    write_json(out, result)
    print(f"nominal {nominal / 1e9:.0f} GFLOP/s ({result['how']}); measured GEMM {gemm / 1e9:.0f} GFLOP/s "
          f"({100 * gemm / nominal:.0f}% of nominal); peak {result['peak_flops'] / 1e9:.0f} -> {out}")


if __name__ == "__main__":
    run_cli(run)
