"""Data-parallel training: two gloo processes on CPU end with the weights of one process that accumulates the
same two micro-batches, and a DDP run killed mid-way resumes to the weights of one never interrupted."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tinyvdm.train import micro_batch, read_checkpoint, read_log

ARGS = ["--preset", "tiny", "--batch_size", "8", "--micro_batches", "2", "--steps", "12", "--warmup", "2",
        "--ckpt_every", "4", "--log_every", "1", "--threads", "1", "--progress", "false"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# gloo sums the two gradients, one process adds its two halves: the same numbers in another order
TOLERANCE = dict(rtol=1e-4, atol=1e-6)


def train_command(out, processes=1, *extra):
    head = TORCHRUN if processes == 2 else [sys.executable]
    return [*head, "-m", "tinyvdm", "train", *ARGS, "--out_dir", str(out), *extra]


def assert_same_weights(a, b, **tolerance):
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            torch.testing.assert_close(tensor, b[key][name], **tolerance, msg=lambda m: f"{key} {name}: {m}")


def test_micro_batches_split_every_part_of_a_batch_evenly():
    batch = (torch.arange(8), {"ids": torch.arange(16).reshape(8, 2)}, "meta")
    parts = [micro_batch(batch, i, 4) for i in range(4)]
    assert [p[0].tolist() for p in parts] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert torch.equal(parts[3][1]["ids"], torch.tensor([[12, 13], [14, 15]])) and parts[0][2] == "meta"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    subprocess.run(train_command(out), check=True, capture_output=True)
    return out


def test_two_processes_equal_one_process_with_the_combined_batch(tmp_path, single):
    run = subprocess.run(train_command(tmp_path / "ddp", 2), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    ddp, one = read_checkpoint(tmp_path / "ddp" / "ckpt.pt"), read_checkpoint(single / "ckpt.pt")
    assert ddp["config"]["micro_batches"] == 2 and ddp["step"] == 12
    assert_same_weights(ddp, one, **TOLERANCE)
    losses = [r["loss"] for r in read_log(tmp_path / "ddp" / "log.jsonl")]
    assert losses == pytest.approx([r["loss"] for r in read_log(single / "log.jsonl")], rel=1e-4)
    assert len(losses) == 12  # one process writes the log


def test_ddp_run_killed_mid_way_resumes_to_the_same_weights(tmp_path, single):
    out = tmp_path / "killed"
    proc = subprocess.Popen(train_command(out, 2), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = out / "ckpt.pt"
    while proc.poll() is None and not (ckpt.exists() and read_checkpoint(ckpt)["step"] >= 4):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
    proc.wait()
    step = read_checkpoint(ckpt)["step"]
    assert 4 <= step < 12, f"the run ended at step {step} before it was killed"
    subprocess.run(train_command(out, 2), check=True, capture_output=True)
    assert_same_weights(read_checkpoint(ckpt), read_checkpoint(single / "ckpt.pt"), **TOLERANCE)


def test_micro_batches_that_do_not_divide_the_batch_are_an_error(tmp_path):
    run = subprocess.run(train_command(tmp_path / "bad", 1, "--micro_batches", "3"), capture_output=True, text=True)
    assert run.returncode != 0 and "micro_batches=3 must divide batch_size=8" in run.stderr
