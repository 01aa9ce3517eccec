"""Launching: the plan's launcher (utils/plan.py: accelerate's arguments from the GPU ids and the launch variables) and
shell/common.sh's launch (GPU ids within a scheduler's CUDA_VISIBLE_DEVICES, a free port, the launcher's stderr).
nvidia-smi and accelerate are stand-ins on PATH that report 8 GPUs and print what they were asked to run."""
import os
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT

from utils.io import UserError
from utils.plan import Variables, launcher


@pytest.fixture
def fake_bin(tmp_path):
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\nfor i in 0 1 2 3 4 5 6 7; do echo \"GPU $i: H100\"; done\n")
    (tmp_path / "accelerate").write_text('#!/bin/sh\necho "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES $*"\n')
    for f in ("nvidia-smi", "accelerate"):
        (tmp_path / f).chmod(0o755)
    return tmp_path


def args_of(gpus="", **env) -> str:
    return " ".join(launcher(Variables(env, "test"), gpus.split()))


def launch(fake_bin, gpus="", **env):
    """parse_gpu_ids, the plan's launcher for those ids and variables, then `launch -m train.sft --x 1`."""
    full = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "ACCELERATE_CONFIG")}
    full.update(PATH=f"{fake_bin}{os.pathsep}{full['PATH']}", **env)
    script = (f"source shell/common.sh; parse_gpu_ids 0 {gpus}; "
              f"LAUNCHER=({shlex.join(launcher(Variables(full, 'test'), gpus.split()))}); launch -m train.sft --x 1")
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=full, capture_output=True, text=True)


def test_gpu_ids_count_within_cuda_visible_devices(fake_bin):
    p = launch(fake_bin, "0 1 3", CUDA_VISIBLE_DEVICES="4,5,6,7")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CUDA_VISIBLE_DEVICES=4,5,7 launch --config_file shell/accelerate/multi_gpu.yaml "
                               "--num_processes 3 --num_machines 1 --machine_rank 0 ")
    assert p.stdout.strip().endswith("-m train.sft --x 1")


def test_one_machine_launches_on_a_free_port(fake_bin):
    p = launch(fake_bin, "6")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("CUDA_VISIBLE_DEVICES=6 launch --config_file shell/accelerate/single_gpu.yaml ")
    port = p.stdout.split("--main_process_port ")[1].split()[0]
    assert port.isdigit() and args_of("6").endswith("--main_process_port FREE")


def test_a_gpu_outside_the_allocation_is_a_clear_error(fake_bin):
    p = launch(fake_bin, "0 4", CUDA_VISIBLE_DEVICES="4,5,6,7")
    assert p.returncode == 2
    assert "GPU id 4 does not exist: 4 GPU(s) visible (CUDA_VISIBLE_DEVICES=4,5,6,7)" in p.stderr


def test_one_cpu_process_is_plain_python_and_several_use_the_projects_cpu_config(fake_bin):
    assert args_of() == "" and args_of(CPU_PROCESSES="1") == ""
    assert args_of(CPU_PROCESSES="2", ACCELERATE_CONFIG="/x.yaml", CPU_THREADS="4").startswith(
        "--config_file shell/accelerate/multi_cpu.yaml --num_processes 2 ")
    assert "--num_cpu_threads_per_process 2 " in args_of(CPU_PROCESSES="2", CPU_THREADS="4")
    p = launch(fake_bin, CPU_PROCESSES="2")
    assert p.returncode == 0 and p.stdout.startswith("CUDA_VISIBLE_DEVICES= launch --config_file "), p.stderr


def test_machines_and_sharding_reach_accelerate():
    assert args_of("0 1", NUM_MACHINES="2", MACHINE_RANK="1", MAIN_PROCESS_IP="10.0.0.5", MAIN_PROCESS_PORT="29600",
                   SHARDING="fsdp") == ("--config_file shell/accelerate/fsdp.yaml --num_processes 4 --num_machines 2 "
                                        "--machine_rank 1 --main_process_ip 10.0.0.5 --main_process_port 29600")
    assert args_of("0 1", ACCELERATE_CONFIG="/x.yaml").startswith("--config_file /x.yaml ")  # a user's, for GPUs


def test_one_cpu_process_per_machine_still_goes_through_accelerate():
    args = args_of(NUM_MACHINES="2", MACHINE_RANK="0", KERNELS="native")
    assert "shell/accelerate/multi_cpu.yaml --num_processes 2 --num_machines 2 --machine_rank 0 " in args
    # the machine's cores for its one process, passed (accelerate warns when it has to pick them itself)
    assert f"--num_cpu_threads_per_process {len(os.sched_getaffinity(0))} --main_process_port 29500" in args


@pytest.mark.parametrize("env, message", [
    ({"SHARDING": "fsdp"}, "SHARDING=fsdp needs GPUs"),
    ({"SHARDING": "zero4"}, "SHARDING must be none, fsdp, zero2 or zero3"),
    ({"NUM_MACHINES": "2", "MACHINE_RANK": "2"}, "need 0 <= MACHINE_RANK < NUM_MACHINES"),
    ({"CPU_PROCESSES": "0"}, "CPU_PROCESSES must be a positive integer, got '0'"),
])
def test_bad_launch_variables_are_clear_errors(env, message):
    with pytest.raises(UserError, match=message):
        args_of(**env)


def test_fsdp_config_makes_an_fsdp2_plugin_with_whole_weight_saving(monkeypatch):
    """What accelerate makes of shell/accelerate/fsdp.yaml (the launch environment, then the plugin the trainer
    builds from it); FSDP itself needs GPUs under accelerate (docs/gpu.md)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(ROOT / "shell/accelerate/fsdp.yaml"),
                                               "--num_processes", "2", "x.py"])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    for k, v in env.items():
        if k.startswith(("FSDP_", "ACCELERATE_USE_FSDP")):
            monkeypatch.setenv(k, v)
    assert env["ACCELERATE_USE_FSDP"] == "true"
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.cpu_ram_efficient_loading
    assert str(plugin.state_dict_type).endswith("FULL_STATE_DICT")


@pytest.mark.parametrize("cuda", [True, False])
def test_setup_keeps_an_installed_cuda_torch(tmp_path, cuda):
    """shell/setup.sh in an active env whose python is a stand-in: with a CUDA torch it installs the lock without
    torch's entry (the working build stays); without one, the whole lock."""
    (tmp_path / "python").write_text(
        "#!/bin/bash\n"
        f'if [[ "$1" == - ]]; then cat >/dev/null; exit {0 if cuda else 1}; fi\n'
        'if [[ "$1" == -c ]]; then echo 2.11.0+cu128; exit 0; fi\n'
        'if [[ "$*" == *" -r "* ]]; then cp "${@: -1}" "$(dirname "$0")/installed.txt"; fi\n')
    (tmp_path / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CONDA_PREFIX"}
    env.update(PATH=f"{tmp_path}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(tmp_path))
    p = subprocess.run(["bash", "shell/setup.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    installed = (tmp_path / "installed.txt").read_text()
    assert ("torch==" in installed) != cuda and "transformers==" in installed
    # the lock, every entry hashed; without torch, torch's own hash line goes with it
    lock = (ROOT / "requirements.lock").read_text()
    torch_hash = lock.split("torch==", 1)[1].split("--hash=", 1)[1].split()[0]
    assert "--hash=sha256:" in installed and (torch_hash in installed) != cuda
    assert ("keeping the installed CUDA torch 2.11.0+cu128" in p.stdout) == cuda


def test_setup_of_an_environment_without_a_lock_is_a_clear_error(tmp_path):
    p = subprocess.run(["bash", "shell/setup.sh", "envs/nope"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr == "error: no envs/nope/requirements.lock to install\n"
    assert not (ROOT / ".venv-nope").exists()


def test_the_stderr_of_a_multi_process_launch_reads_like_one_process(tmp_path):
    """utils/launcher_stderr.py: a user error once (and recorded), no launcher report, a process's crash whole, the
    rest (progress frames ending in \\r included) as it came."""
    launcher_traceback = ("Traceback (most recent call last):\n"
                          '  File ".venv/bin/accelerate", line 6, in <module>\n'
                          '  File ".venv/lib/python3.11/site-packages/accelerate/commands/launch.py", line 1074\n'
                          "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
                          "============================================================\n"
                          "train.sft FAILED\n")
    crash = ('Traceback (most recent call last):\n  File "/tmp/boom.py", line 5, in <module>\n'
             "    raise RuntimeError('boom')\nRuntimeError: boom\n")
    stream = ("step 1/2\rstep 2/2\r\n"
              "error: global batch 3 does not split evenly over 2 process(es)\n"
              "error: global batch 3 does not split evenly over 2 process(es)\n"
              "W1205 00:21:48.681000 10712 torch/distributed/elastic/multiprocessing/api.py:1028] Sending process 1\n"
              + crash +
              "E1205 00:21:48.786000 10712 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exit 2)\n"
              + launcher_traceback)
    errors = tmp_path / "errors"
    p = subprocess.run([sys.executable, "-m", "utils.launcher_stderr", str(errors)], cwd=ROOT, input=stream.encode(),
                       capture_output=True)  # bytes: text mode would turn the \r into \n
    assert p.returncode == 0 and p.stdout == b""
    assert p.stderr.decode() == ("step 1/2\rstep 2/2\r\n"
                                 "error: global batch 3 does not split evenly over 2 process(es)\n" + crash)
    assert errors.read_text() == "error: global batch 3 does not split evenly over 2 process(es)\n"
