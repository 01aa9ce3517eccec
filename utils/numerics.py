"""What decides a CPU run's digits besides the code, the data and the package versions: the thread count and the
kernels (instruction set) that torch, MKL and oneDNN pick for this CPU.

Measured on the demo's SFT (8,000 records, seed 42): one thread, two threads and two threads with AVX2 kernels gave
three different losses on one Intel machine, and MKL's AVX2 branch gave another loss again on an AMD one, so a run's
digits follow the machine unless these are fixed. The launch scripts fix them (shell/common.sh, KERNELS=portable, the
default; the values live there alone): CPU_THREADS threads a machine, ATen's AVX2 kernels, MKL's COMPATIBLE branch
(the one Intel documents as giving the same results on Intel and other CPUs) and oneDNN at AVX2. KERNELS=native takes
the machine's cores and fastest kernels instead (faster; the digits are then the machine's own).

Every stage records both (utils/provenance.write_run_config): `numerics` is result-changing (a finished stage made
with other threads or kernels is not silently reused), `environment` is the facts (CPU model and flags, the
variables' values).
"""
import json
import os
import sys
from pathlib import Path

# The environment variables that pin the kernels (shell/common.sh sets them).
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
# CPU flags worth recording: which kernels the machine could run natively.
_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "asimd")


def numerics(device: str | None = None) -> dict:
    """The result-changing settings of this process: on the CPU, torch's thread count and the kernels torch (its CPU
    capability as dispatched), MKL and oneDNN use; on a GPU, the device type alone (CPU threads and kernels do not
    decide a GPU run's digits). Asked before torch is imported (a finished stage checking its settings), the answer
    comes from the cache of an earlier process with the same environment, CPU and torch version (`_cache_path`)."""
    from utils.device import default_device
    from utils.io import read_cache, write_cache

    cache = _cache_path(device)
    if "torch" not in sys.modules and (cached := read_cache(cache)) is not None:
        return cached
    import torch

    from utils.device import half_precision

    device = device or default_device()
    found = {"device": device} if device != "cpu" else {
        "device": "cpu", "threads": torch.get_num_threads(), "aten_kernels": torch.backends.cpu.get_cpu_capability(),
        "mkl_kernels": os.environ.get("MKL_CBWR") or "native",
        "onednn_kernels": os.environ.get("ONEDNN_MAX_CPU_ISA") or "native",
        **({"autocast": "bf16"} if half_precision() else {})}  # KERNELS=bf16; fp32 runs record as they always did
    write_cache(cache, found)
    return found


def _cache_path(device: str | None) -> Path:
    """Where `numerics` keeps its answer for this environment: keyed by everything it depends on (the thread and
    kernel variables, which GPUs are visible, the CPU, the cores this process may use, torch's version)."""
    import hashlib
    from importlib.metadata import version

    key = {"device": device, "torch": version("torch"), "cpu": cpu_facts(),
           "gpu_driver": Path("/dev/nvidiactl").exists(),
           **{n: os.environ.get(n) for n in ("KERNELS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", *KERNEL_VARIABLES)}}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    from utils.io import user_cache

    return user_cache(f"numerics-{digest}.json")


def cpu_facts() -> dict:
    """The CPU's model, the cores this process may use, and its instruction-set flags among _FLAGS (Linux)."""
    facts = {"cores_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return facts
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {**facts, "cpu_model": fields.get("model name") or fields.get("Model") or "unknown",
            "cpu_flags": [f for f in _FLAGS if f in flags]}


def environment() -> dict:
    """Facts about where a stage ran (not compared on a rerun): the CPU and the variables that choose threads and
    kernels, as this process saw them."""
    names = ("KERNELS", "OMP_NUM_THREADS", *KERNEL_VARIABLES)
    return {**cpu_facts(), **{name: os.environ.get(name) for name in names}}
