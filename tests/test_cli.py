"""The command line: the demo writes its GIF from the shipped model; sampling by prompt; unknown commands are errors."""
import subprocess
import sys

from PIL import Image

from tinyvdm.__main__ import main
from tinyvdm.train import sample_cli


def test_demo_writes_a_gif_of_generated_videos_and_prints_its_path(tmp_path):
    out = tmp_path / "demo.gif"
    run = subprocess.run([sys.executable, "-m", "tinyvdm", "demo", "--out", str(out), "--steps", "4",
                          "--prompt", "the digit 3 moves left", "--prompt", "an 8 goes up"],
                         capture_output=True, text=True, check=True)
    assert str(out) in run.stdout and "generated videos (dpmpp_sde, 4 NFE" in run.stdout
    with Image.open(out) as im:
        assert im.n_frames == 8


def test_demo_data_writes_real_videos(tmp_path):
    out = tmp_path / "data.gif"
    run = subprocess.run([sys.executable, "-m", "tinyvdm", "demo", "--data", "--out", str(out)],
                         capture_output=True, text=True, check=True)
    assert "Moving MNIST videos" in run.stdout and out.exists()


def test_sample_by_prompt_uses_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "x.gif"
    sample_cli(["--prompt", "the digit 7 moves up and to the left", "--sampler", "dpmpp", "--steps", "3",
                "--out", str(out)])
    assert "wrote 1 videos" in capsys.readouterr().out and out.exists()


def test_unknown_command_prints_usage(capsys):
    assert main(["frobnicate"]) == 2
    assert "usage" in capsys.readouterr().err
