"""shell/common.sh: GPU ids within a scheduler's CUDA_VISIBLE_DEVICES, and an accelerate config always passed.
nvidia-smi and accelerate are stand-ins on PATH that report 8 GPUs and print what they were asked to run."""
import os
import subprocess

import pytest
from conftest import ROOT


@pytest.fixture
def fake_bin(tmp_path):
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nfor i in 0 1 2 3 4 5 6 7; do echo \"GPU $i: H100\"; done\n")
    (tmp_path / "accelerate").write_text('#!/bin/sh\necho "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES $*"\n')
    for f in ("nvidia-smi", "accelerate"):
        (tmp_path / f).chmod(0o755)
    return tmp_path


def common(fake_bin, script, **env):
    full = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "ACCELERATE_CONFIG")}
    full.update(PATH=f"{fake_bin}{os.pathsep}{full['PATH']}", **env)
    return subprocess.run(["bash", "-c", f"source shell/common.sh; {script}"], cwd=ROOT, env=full,
                          capture_output=True, text=True)


def test_gpu_ids_count_within_cuda_visible_devices(fake_bin):
    p = common(fake_bin, "parse_gpu_ids 0 0 1 3; launch train/sft.py --x 1", CUDA_VISIBLE_DEVICES="4,5,6,7")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CUDA_VISIBLE_DEVICES=4,5,7 launch --config_file ")
    assert "shell/accelerate/multi_gpu.yaml --num_processes 3 " in p.stdout and p.stdout.strip().endswith("--x 1")


def test_one_gpu_gets_the_single_gpu_config_and_all_gpus_without_a_mask(fake_bin):
    p = common(fake_bin, "parse_gpu_ids 0 6; launch train/sft.py")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CUDA_VISIBLE_DEVICES=6 launch --config_file ") and "single_gpu.yaml" in p.stdout


def test_a_gpu_outside_the_allocation_is_a_clear_error(fake_bin):
    p = common(fake_bin, "parse_gpu_ids 0 0 4", CUDA_VISIBLE_DEVICES="4,5,6,7")
    assert p.returncode == 2
    assert "GPU id 4 does not exist: 4 GPU(s) visible (CUDA_VISIBLE_DEVICES=4,5,6,7)" in p.stderr


def test_cpu_processes_use_the_projects_cpu_config(fake_bin):
    p = common(fake_bin, "parse_gpu_ids 0; launch train/sft.py", CPU_PROCESSES="2", ACCELERATE_CONFIG="/x.yaml")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CUDA_VISIBLE_DEVICES= launch --config_file ")
    assert "shell/accelerate/multi_cpu.yaml --num_processes 2 " in p.stdout
