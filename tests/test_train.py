"""The trainer: schedules in closed form, fitting a known solution, exact resume after kill -9, clear errors."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from PIL import Image

from tinyvdm.train import (CheckpointError, ConfigError, Task, TrainConfig, ema_update, export_checkpoint,
                           export_run, get_preset, learning_rate, load_checkpoint, parse_train_args,
                           read_checkpoint, read_log, sample_cli, step_generator, train, train_cli)

A = torch.tensor([[2.0, -1.0, 0.0, 0.5], [0.0, 1.0, 3.0, 0.0], [1.0, 0.0, -2.0, 1.0], [0.0, 0.5, 0.0, -1.0]])


def regression_task(config: TrainConfig) -> Task:
    """y = A x with x ~ N(0, I): the unique minimiser of E|W x + b - y|^2 is W = A, b = 0."""
    def batch_fn(step):
        x = torch.randn(config.batch_size, 4, generator=step_generator(config.seed, step, "data"))
        return x, x @ A.T

    def loss_fn(model, batch, generator):
        x, y = batch
        return F.mse_loss(model(x), y)

    return Task(nn.Linear(4, 4), loss_fn, batch_fn)


def noisy_task(config: TrainConfig) -> Task:
    """Draws from every source a step can: its batch, its generator (input noise) and the global RNG (dropout)."""
    model = nn.Sequential(nn.Linear(4, 32), nn.SiLU(), nn.Dropout(0.2), nn.Linear(32, 4))

    def loss_fn(model, batch, generator):
        x, y = batch
        return F.mse_loss(model(x + 0.1 * torch.randn(x.shape, generator=generator)), y)

    return Task(model, loss_fn, regression_task(config).batch_fn)


def toy_config(tmp_path, **changes) -> TrainConfig:
    base = replace(get_preset("tiny"), task="test_train:regression_task", batch_size=64, steps=200, lr=0.05,
                   min_lr=0.0, warmup=10, ema_decay=0.9, out_dir=str(tmp_path / "run"), ckpt_every=100,
                   log_every=10, threads=1, progress=False)
    return replace(base, **changes)


def test_learning_rate_warms_up_linearly_then_follows_a_half_cosine():
    c = TrainConfig(lr=1.0, min_lr=0.1, warmup=10, steps=110)
    assert learning_rate(c, 0) == pytest.approx(0.1)  # lr (0 + 1) / warmup
    assert learning_rate(c, 4) == pytest.approx(0.5)
    assert learning_rate(c, 10) == pytest.approx(1.0)  # top of the cosine
    assert learning_rate(c, 60) == pytest.approx(0.55)  # half-way: (lr + min_lr) / 2
    assert learning_rate(c, 85) == pytest.approx(0.1 + 0.9 * (1 + math.cos(0.75 * math.pi)) / 2)
    assert learning_rate(c, 110) == pytest.approx(0.1)  # the end of the cosine is min_lr


def test_ema_of_a_still_model_closes_the_gap_by_the_decay_each_step():
    model, ema = nn.Linear(3, 2), nn.Linear(3, 2)
    gap = [p_e - p for p_e, p in zip(ema.parameters(), model.parameters())]
    for s in range(10**6, 10**6 + 20):  # past the warm-up, d = decay
        ema_update(ema, model, decay=0.9, step=s)
    for g, p_e, p in zip(gap, ema.parameters(), model.parameters()):
        torch.testing.assert_close(p_e - p, g.detach() * 0.9**20)
    ema_update(ema, model, decay=0.999, step=0)  # warm-up: d = (1 + 0) / (10 + 0)
    for g, p_e, p in zip(gap, ema.parameters(), model.parameters()):
        torch.testing.assert_close(p_e - p, g.detach() * 0.9**20 * 0.1)


def test_training_finds_the_least_squares_solution(tmp_path):
    result = train(toy_config(tmp_path))
    for net in (result.model, result.ema):
        assert (net.weight - A).abs().max() < 0.01, f"learned W deviates from A by {(net.weight - A).abs().max():.3f}"
        assert net.bias.abs().max() < 0.01
    assert result.log[-1]["loss"] < 1e-4 * result.log[0]["loss"]


def test_bf16_autocast_runs_the_model_in_bf16_and_still_finds_it(tmp_path):
    config = toy_config(tmp_path, precision="bf16")
    torch.manual_seed(config.seed)
    task, dtypes = regression_task(config), set()

    def loss_fn(model, batch, generator):
        x, y = batch
        prediction = model(x)
        dtypes.add(prediction.dtype)
        return F.mse_loss(prediction.float(), y)

    result = train(config, task=replace(task, loss_fn=loss_fn))
    assert dtypes == {torch.bfloat16}
    assert (result.ema.weight - A).abs().max() < 2**-5  # two bf16 steps (8 bits of mantissa) at |w| = 3


def test_log_records_each_interval_and_the_plot_is_saved(tmp_path):
    config = toy_config(tmp_path, steps=50, log_every=10)
    train(config)
    log = read_log(tmp_path / "run" / "log.jsonl")
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50]
    assert set(log[0]) == {"step", "loss", "lr", "grad_norm", "samples_per_s", "wall_s"}
    assert [r["lr"] for r in log] == [learning_rate(config, r["step"] - 1) for r in log]
    assert all(r["samples_per_s"] > 0 for r in log) and log[-1]["wall_s"] > log[0]["wall_s"]
    assert (tmp_path / "run" / "log.png").stat().st_size > 1000


def test_checkpoint_loads_without_pickle_and_rebuilds_the_ema_model(tmp_path):
    result = train(toy_config(tmp_path, steps=20))
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["step"] == 20 and state["config"]["task"] == "test_train:regression_task"
    model, config, _ = load_checkpoint(result.checkpoint)
    assert config == result.config and not model.training
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), result.ema.parameters()))


def test_snapshots_and_exports_hold_the_ema_weights_but_cannot_resume_a_run(tmp_path):
    result = train(toy_config(tmp_path, steps=20, snapshot_every=5))
    snaps = sorted((Path(result.checkpoint).parent / "snapshots").glob("*.pt"))
    assert [torch.load(p, weights_only=True)["step"] for p in snaps] == [5, 10, 15, 20]
    last, _, _ = load_checkpoint(snaps[-1])
    assert all(torch.equal(p, q) for p, q in zip(last.parameters(), result.ema.parameters()))
    slim = export_checkpoint(result.checkpoint, tmp_path / "slim.pt")
    assert set(torch.load(slim, weights_only=True)) == {"config", "step", "wall_s", "ema"}
    half, _, _ = load_checkpoint(slim)
    assert half.weight.dtype == torch.float32
    torch.testing.assert_close(half.weight, result.ema.weight, rtol=1e-3, atol=1e-3)  # fp16: 11 significant bits
    with pytest.raises(CheckpointError, match="expected keys"):
        load_checkpoint(slim, ema=False)
    card = export_run(Path(result.checkpoint).parent, tmp_path / "card.pt", "a toy regression", "python -m tinyvdm …")
    assert card["steps"] == 20 and card["checkpoint_bytes"] == (tmp_path / "card.pt").stat().st_size
    assert card["weights"] == "fp16"
    assert card["final_loss"] == read_log(Path(result.checkpoint).parent / "log.jsonl")[-1]["loss"]
    assert card["parameters"] == sum(p.numel() for p in result.ema.parameters()) and card["config"]["steps"] == 20


def test_int8_export_keeps_each_weight_within_half_its_channel_step_in_about_half_the_bytes(tmp_path):
    config = replace(get_preset("tiny"), steps=1, warmup=0, threads=1, progress=False, out_dir=str(tmp_path / "run"))
    result = train(config)
    fp16 = export_checkpoint(result.checkpoint, tmp_path / "fp16.pt")
    int8 = export_checkpoint(result.checkpoint, tmp_path / "int8.pt", weights="int8")
    stored = torch.load(int8, weights_only=True)
    tensor_bytes = lambda d: sum(v.nbytes for v in d.values())  # noqa: E731 (a tiny model's file is mostly pickle)
    assert tensor_bytes(stored["ema"]) + tensor_bytes(stored["scales"]) < 0.6 * tensor_bytes(
        torch.load(fp16, weights_only=True)["ema"])
    model, _, _ = load_checkpoint(int8)
    for name, w in result.ema.state_dict().items():
        got = model.state_dict()[name]
        if w.is_floating_point() and w.ndim >= 2:
            assert stored["ema"][name].dtype == torch.int8
            step = w.abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True) / 127  # one int8 step of each row
            assert ((got - w).abs() <= step / 2 + 1e-6).all(), name
        else:
            torch.testing.assert_close(got, w, rtol=1e-3, atol=1e-3)  # fp16
    with pytest.raises(ValueError, match="'fp16' or 'int8'"):
        export_checkpoint(result.checkpoint, tmp_path / "x.pt", weights="int4")


def test_image_only_task_treats_frames_as_independent_images(tmp_path):
    """The image-only baseline's output for a frame does not depend on the other frames."""
    config = replace(get_preset("tiny"), task="image_diffusion", model={**get_preset("tiny").model,
                     "temporal_attention": "none"}, steps=2, warmup=1, threads=1, progress=False,
                     out_dir=str(tmp_path / "img"))
    model = train(config).ema
    with torch.no_grad():  # wake the zero-initialised temporal layers, so that a video model would mix frames
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x, t = torch.randn(1, 1, 4, 16, 16), torch.tensor([10])
    y = torch.randn(1, 1, 4, 16, 16)
    y[:, :, 0] = x[:, :, 0]
    torch.testing.assert_close(model(x, t)[:, :, 0], model(y, t)[:, :, 0])
    as_video = model.unet(x, t)[:, :, 0] - model.unet(y, t)[:, :, 0]
    assert as_video.abs().max() > 1e-3  # the same weights run as a video model see the other frames


def test_kill9_then_resume_ends_with_the_same_weights_and_log(tmp_path):
    steps = 300
    args = ["--preset", "tiny", "--task", "test_train:noisy_task", "--batch_size", "32", "--steps", str(steps),
            "--warmup", "20", "--ckpt_every", "10", "--log_every", "1", "--threads", "1", "--progress", "false",
            "--out_dir", str(tmp_path / "killed")]
    log_path = tmp_path / "killed" / "log.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    run = [sys.executable, "-m", "tinyvdm", "train", *args]
    proc = subprocess.Popen(run, env=env)
    while proc.poll() is None and _last_step(log_path) < 97:  # a few checkpoints in, between two of them
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended (code {proc.returncode}) before it was killed"
    assert 0 < read_checkpoint(tmp_path / "killed" / "ckpt.pt")["step"] < steps
    subprocess.run(run, env=env, check=True)

    config, _ = parse_train_args([*args[:-1], str(tmp_path / "straight")])
    _assert_same_run(read_checkpoint(tmp_path / "killed" / "ckpt.pt"), log_path, train(config))


class Crash(Exception):
    pass


def test_a_run_that_dies_writing_a_checkpoint_resumes_from_the_one_before(tmp_path):
    config = toy_config(tmp_path, task="test_train:noisy_task", steps=40, ckpt_every=10, log_every=5)
    torch.manual_seed(config.seed)  # the initial weights train() would draw
    task = noisy_task(config)

    def dies_at_step_25(step):
        if step == 25:
            raise Crash
        return task.batch_fn(step)

    with pytest.raises(Crash):
        train(config, task=replace(task, batch_fn=dies_at_step_25))
    (tmp_path / "run" / "ckpt.pt.tmp").write_bytes(b"half a checkpoint")
    train(config)
    straight = train(replace(config, out_dir=str(tmp_path / "straight")))
    _assert_same_run(read_checkpoint(tmp_path / "run" / "ckpt.pt"), tmp_path / "run" / "log.jsonl", straight)


def _assert_same_run(resumed: dict, log_path: Path, straight) -> None:
    for name, net in (("model", straight.model), ("ema", straight.ema)):
        for key, value in net.state_dict().items():
            assert torch.equal(resumed[name][key], value), f"{name}.{key} differs after the run was resumed"
    log = read_log(log_path)
    assert [r["step"] for r in log] == [r["step"] for r in straight.log], "each step should be logged once"
    assert [r["loss"] for r in log] == [r["loss"] for r in straight.log], "resumed and straight logs differ"


def _last_step(log_path: Path) -> int:
    lines = log_path.read_text().splitlines() if log_path.exists() else []
    try:
        return json.loads(lines[-1])["step"] if lines else 0
    except json.JSONDecodeError:
        return 0


def test_truncated_checkpoint_is_an_error_naming_the_file(tmp_path):
    config = toy_config(tmp_path, steps=20, ckpt_every=10)
    path = train(config).checkpoint
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{path}.*truncated"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=f"{path}.*truncated"):
        train(replace(config, steps=30))
    train(replace(config, steps=30), fresh=True)  # --fresh starts over


def test_resuming_with_different_settings_is_an_error_but_run_keys_may_change(tmp_path):
    config = toy_config(tmp_path, steps=20)
    train(config)
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.05, now 0.1"):
        train(replace(config, lr=0.1))
    assert train(replace(config, log_every=5, threads=2)).log[-1]["step"] == 20


def test_overrides_are_parsed_by_the_type_of_the_value_they_replace():
    config, fresh = parse_train_args(["--preset", "tiny", "--steps", "7", "--lr=3e-4", "--compile", "true",
                                      "--model.dim_mults", "1,2,4", "--model.dim", "16", "--betas", "(0.9, 0.95)",
                                      "--data.bounce", "false", "--fresh"])
    assert (config.steps, config.lr, config.compile, config.betas, fresh) == (7, 3e-4, True, (0.9, 0.95), True)
    assert (config.model["dim_mults"], config.model["dim"], config.data["bounce"]) == ((1, 2, 4), 16, False)
    assert get_preset("tiny").model["dim"] == 8, "overrides must not change the preset itself"
    config, _ = parse_train_args(["--preset", "t2v", "--diffusion.min_snr_gamma", "None"])
    assert config.diffusion["min_snr_gamma"] is None and get_preset("t2v").diffusion["min_snr_gamma"] == 5.0


@pytest.mark.parametrize("argv, message", [
    (["--preset", "huge"], r"unknown preset 'huge'; expected one of \[('[a-z0-9-]+', )*'tiny'"),
    (["--stpes", "10"], r"unknown key --stpes; expected one of \[.*'steps'"),
    (["--model.dimm", "10"], r"unknown key --model.dimm; preset 'course' has model keys \[.*'dim'"),
    (["--steps", "ten"], r"--steps expects int \(like 3000\), got 'ten'"),
    (["--compile", "maybe"], r"--compile expects bool"),
    (["--precision", "fp16"], r"precision must be one of \('fp32', 'bf16'\)"),
    (["--steps"], r"--steps needs a value"),
])
def test_bad_command_lines_are_errors_that_list_what_is_valid(argv, message):
    with pytest.raises(SystemExit, match=message):
        train_cli(argv)


def test_unknown_task_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'gan'"):
        train(toy_config(tmp_path, task="gan"))


def test_tiny_preset_trains_a_unet_from_the_command_line_and_samples_a_gif(tmp_path, capsys):
    out = tmp_path / "tiny"
    train_cli(["--preset", "tiny", "--steps", "3", "--warmup", "1", "--threads", "1", "--progress", "false",
               "--out_dir", str(out)])
    _, config, task = load_checkpoint(out / "ckpt.pt")
    assert type(task.model).__name__ == "UNet3D" and config.model["dim"] == 8
    sample_cli(["--ckpt", str(out / "ckpt.pt"), "--out", str(tmp_path / "s.gif"), "--n", "2", "--steps", "2"])
    assert Image.open(tmp_path / "s.gif").n_frames == config.data["frames"]
    assert "wrote 2 videos" in capsys.readouterr().out


def test_sampling_a_model_that_does_not_generate_is_an_error(tmp_path):
    path = train(toy_config(tmp_path, steps=2, warmup=1)).checkpoint
    with pytest.raises(SystemExit, match="does not generate videos"):
        sample_cli(["--ckpt", str(path)])


def test_backends_get_tf32_and_autotuning_on_cuda_and_nothing_on_cpu():
    from tinyvdm.train import configure_backends
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        assert configure_backends(torch.device("cpu")) == {}
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark) == flags
        set_ = configure_backends(torch.device("cuda"))  # flags only: runs without a GPU
        assert set_ == {"cuda.matmul.allow_tf32": True, "cudnn.allow_tf32": True, "cudnn.benchmark": True}
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = flags


def test_ladder_presets_fit_classic_moving_mnist_and_grad_checkpoint_is_a_run_key():
    from tinyvdm.models import UNet3D
    from tinyvdm.train import RUN_KEYS
    classic, gpu = get_preset("classic"), get_preset("gpu")
    assert (classic.data["num_digits"], classic.data["size"], classic.data["frames"]) == (2, 64, 20)
    assert (gpu.precision, gpu.compile, gpu.data["size"]) == ("bf16", True, 64)
    assert "grad_checkpoint" in RUN_KEYS and "grad_checkpoint" not in classic.model
    with torch.device("meta"):  # shapes only, without allocating or computing
        for config in (classic, gpu):
            x0 = torch.zeros(2, 1, config.data["frames"], config.data["size"], config.data["size"])
            assert UNet3D(**config.model)(x0, torch.zeros(2, dtype=torch.long)).shape == x0.shape
