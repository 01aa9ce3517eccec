"""The device, decided once. The launch scripts decide it: GPU ids given, those GPUs are made visible
(CUDA_VISIBLE_DEVICES, each launched process then takes its own); none given, CUDA_VISIBLE_DEVICES is empty and
everything runs on the CPU. Every module asks here, so one answer (`has_gpu`) picks the precision, the default recipe
of a pretrained model, accelerate's backend and the memory figures.
"""
import os
from functools import cache


@cache
def has_gpu() -> bool:
    """Whether this process sees a CUDA GPU (what the launcher made visible: an empty CUDA_VISIBLE_DEVICES, the CPU
    case, is answered without importing torch)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return False
    import torch

    return torch.cuda.is_available()


def default_device() -> str:
    """The device of a single-process tool (grounding's embedder, the benchmarks): the GPU when one is visible. A
    launched stage takes accelerate's instead (process_state().device: each process its own GPU)."""
    return "cuda" if has_gpu() else "cpu"


def launched_as_main() -> bool:
    """Whether this is the main process of its launch, without accelerate (so without torch): torchrun's RANK, 0 or
    unset. What a finished stage or evaluation needs to print its skip once."""
    return os.environ.get("RANK", "0") == "0"


def process_state():
    """accelerate's view of this launch: rank, world size, device. Without CUDA it must be asked for the CPU backend
    explicitly: a plain PartialState() under `accelerate launch --multi_gpu` with ACCELERATE_USE_CPU=1 reports one
    process in each of the two (measured), so work meant to be sharded would be done twice."""
    from accelerate import PartialState

    return PartialState(cpu=not has_gpu())


def half_precision() -> str | None:
    """The 16-bit type of this device's autocast and frozen weights: bf16, or fp16 on cards without bf16 (V100, T4).
    On the CPU, fp32 throughout (None), unless KERNELS=bf16 (shell/common.sh) asks for bf16 autocast and bf16 frozen
    weights, which this CPU must do in hardware (AVX512-BF16 or AMX): emulated, bf16 is slower than fp32."""
    if not has_gpu():
        if os.environ.get("KERNELS") != "bf16":
            return None
        import torch

        if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            from utils.io import UserError

            raise UserError("KERNELS=bf16 needs a CPU with bf16 instructions (AVX512-BF16 or AMX), and this one has "
                            "neither: use KERNELS=native (fp32, the machine's fastest kernels)")
        return "bf16"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def release_memory() -> None:
    """Hand cached GPU memory back (between a model that is done and the next one); nothing on the CPU."""
    if has_gpu():
        import torch

        torch.cuda.empty_cache()


def peak_memory_mb() -> float:
    """Peak memory of this process so far: GPU allocations on CUDA, else the resident set's high-water mark."""
    import resource

    if has_gpu():
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
