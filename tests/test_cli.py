"""The command line: the demo writes its GIF; unknown commands are errors."""
import subprocess
import sys

from PIL import Image

from tinyvdm.__main__ import main


def test_demo_writes_a_gif_and_prints_its_path(tmp_path):
    out = tmp_path / "demo.gif"
    run = subprocess.run([sys.executable, "-m", "tinyvdm", "demo", "--out", str(out), "--n", "4"],
                         capture_output=True, text=True, check=True)
    assert str(out) in run.stdout
    with Image.open(out) as im:
        assert im.n_frames == 8


def test_unknown_command_prints_usage(capsys):
    assert main(["frobnicate"]) == 2
    assert "usage" in capsys.readouterr().err
