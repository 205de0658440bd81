"""viz: tensor <-> pixel conversions, GIFs with every frame, clear errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from tinyvdm import viz


def test_to_frames_maps_minus_one_to_black_and_one_to_white():
    v = torch.stack([torch.full((4, 4), -1.0), torch.zeros(4, 4), torch.full((4, 4), 1.0)])[None]  # (1, 3, 4, 4)
    f = viz.to_frames(v)
    assert f.dtype == np.uint8 and f.shape == (3, 4, 4)
    assert f[0].max() == 0 and f[2].min() == 255 and f[1].mean() in (127, 128)
    assert viz.to_frames(torch.zeros(3, 2, 4, 4)).shape == (2, 4, 4, 3)


def test_as_list_accepts_batches_single_videos_and_lists():
    assert len(viz.as_list(torch.zeros(5, 1, 2, 4, 4))) == 5
    assert len(viz.as_list(torch.zeros(1, 2, 4, 4))) == 1
    assert len(viz.as_list([torch.zeros(2, 4, 4)] * 3)) == 3


def test_save_gif_writes_every_frame(tmp_path):
    videos = torch.rand(3, 1, 6, 8, 8) * 2 - 1
    path = viz.save_gif(videos, tmp_path / "sub" / "x.gif", titles=["a", "b", "c"])
    with Image.open(path) as im:
        assert im.n_frames == 6


@pytest.mark.parametrize("shape", [(8, 32, 32, 2), (2, 8, 4, 4)])
def test_bad_shapes_say_what_was_expected(shape):
    with pytest.raises(ValueError, match="expected a video"):
        viz.to_frames(torch.zeros(shape))


def test_figures_and_animations_build():
    videos = torch.rand(2, 1, 3, 8, 8) * 2 - 1
    assert viz.plot_frames(videos, titles=["a", "b"]).axes
    assert "<script" in viz.video_grid(videos, titles=["a", "b"]).data
    assert len(viz.space_time_slices(videos[0]).axes) == 3
