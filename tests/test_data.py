"""Moving MNIST: determinism, disjoint splits, exact trajectories, the video contract, clear errors."""
import numpy as np
import pytest
import torch

from tinyvdm.data import DIRECTIONS, PRESETS, MovingMNIST, load_digits
from tinyvdm.data.moving_mnist import STEPS


def test_same_seed_same_video_and_different_index_differs():
    a, b = MovingMNIST(100, seed=3), MovingMNIST(100, seed=3)
    va, ca, la = a[17]
    vb, cb, lb = b[17]
    assert torch.equal(va, vb) and ca == cb and torch.equal(la["positions"], lb["positions"])
    assert not torch.equal(a[17][0], a[18][0])
    assert not torch.equal(MovingMNIST(100, seed=4)[17][0], va)


def test_video_i_does_not_depend_on_the_batch_it_is_made_in():
    ds = MovingMNIST(1000, seed=1)
    batch, captions, _ = ds.batch([5, 999, 42])
    assert torch.equal(batch[2], ds[42][0]) and captions[1] == ds[999][1]


def test_train_and_test_digits_are_disjoint():
    train, _ = load_digits("train")
    test, _ = load_digits("test")
    assert not {x.tobytes() for x in train} & {x.tobytes() for x in test}
    assert len(train) >= 10_000 and len(test) >= 2_000


def test_test_split_videos_use_only_test_digits():
    ds = MovingMNIST(200, split="test")
    test, labels = load_digits("test")
    src = ds.sample_labels(range(200))["source"][:, 0]
    assert torch.equal(ds.sample_labels(range(200))["digits"][:, 0], torch.from_numpy(labels[src.numpy()]))
    assert len(ds.digits) == len(test)


def test_video_contract_shape_dtype_range():
    ds = MovingMNIST(10)
    v, cap, lab = ds[0]
    c = ds.config
    assert v.shape == (1, c.frames, c.size, c.size) and v.dtype == torch.float32
    assert v.min() == -1 and v.max() <= 1 and v.max() > 0.5
    assert lab["positions"].shape == (c.frames, 1, 2)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_trajectories_are_constant_velocity_reflected_at_the_walls(preset):
    """p(t) = L - |L - (p0 + v t) mod 2L|, checked frame by frame from the label's start and direction."""
    ds = MovingMNIST(300, preset=preset, seed=2)
    c = ds.config
    lab = ds.sample_labels(range(300))
    corners = lab["positions"].double() - (c.digit_size - 1) / 2  # (B, T, n, 2)
    L = c.size - c.digit_size
    v = torch.tensor(STEPS, dtype=torch.float64)[lab["direction"]] * c.speed  # (B, n, 2)
    free = corners[:, :1] + v[:, None] * torch.arange(c.frames, dtype=torch.float64)[None, :, None, None]
    expected = L - (L - free.remainder(2 * L)).abs()
    assert torch.allclose(corners, expected)
    assert corners.min() >= 0 and corners.max() <= L
    step = (corners[:, 1:] - corners[:, :-1]).abs()
    assert (step <= c.speed + 1e-9).all()
    assert ((step == c.speed) | (step == 0)).float().mean() > 0.8  # bounces only bend a few steps


def test_digit_is_drawn_where_the_label_says():
    ds = MovingMNIST(50, seed=5)
    videos, _, lab = ds.batch(range(50))
    ink = (videos[:, 0] + 1) / 2  # (B, T, H, W)
    grid = torch.arange(ds.config.size, dtype=torch.float32)
    mass = ink.sum((-1, -2))
    cy = (ink.sum(-1) * grid).sum(-1) / mass
    cx = (ink.sum(-2) * grid).sum(-1) / mass
    centroid = torch.stack([cy, cx], -1)
    # ink centroid of a digit lies within a few pixels of its box centre
    assert (centroid - lab["positions"][:, :, 0]).abs().max() < 4


def test_directions_and_captions_agree_with_labels():
    ds = MovingMNIST(400, seed=7)
    _, captions, lab = ds.batch(range(400))
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    for cap, d, r in zip(captions, lab["digits"][:, 0], lab["direction"][:, 0]):
        assert cap.endswith(DIRECTIONS[r]) and (f" {int(d)} " in f" {cap} " or words[d] in cap.split())
    assert set(lab["direction"][:, 0].tolist()) == set(range(8))
    assert set(lab["digits"][:, 0].tolist()) == set(range(10))


def test_classic_preset_has_two_digits_and_a_two_part_caption():
    ds = MovingMNIST(10, preset="classic")
    v, cap, lab = ds[0]
    assert v.shape == (1, 20, 64, 64) and lab["digits"].shape == (2,) and " and " in cap


def test_no_bounce_lets_digits_leave_the_frame():
    ds = MovingMNIST(200, bounce=False, speed=4, seed=0)
    videos, _, lab = ds.batch(range(200))
    outside = (lab["positions"] < 0) | (lab["positions"] > ds.config.size - 1)
    assert outside.any()
    assert videos.shape == (200, 1, 8, 32, 32)


@pytest.mark.parametrize("kwargs, name", [
    (dict(size=10, digit_size=14), "size"),
    (dict(frames=0), "frames"),
    (dict(preset="huge"), "preset"),
    (dict(colour=3), "colour"),
    (dict(split="valid"), "split"),
    (dict(length=0), "length"),
    (dict(speed=-1), "speed"),
])
def test_bad_options_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MovingMNIST(**{"length": 10, **kwargs})


def test_index_out_of_range_is_an_index_error():
    with pytest.raises(IndexError, match="out of range"):
        MovingMNIST(5)[5]


def test_full_idx_files_are_used_when_present(tmp_path):
    images, labels = load_digits("test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (7, 28, 28)) + images[:7].tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + (7).to_bytes(4, "big") + labels[:7].astype(np.uint8).tobytes())
    got, got_labels = load_digits("test", root=tmp_path)
    assert np.array_equal(got, images[:7]) and np.array_equal(got_labels, labels[:7])


def test_direction_label_is_the_motion_the_video_shows():
    """A digit that starts on a wall moving into it looks like one moving away; the label must say so."""
    ds = MovingMNIST(4000, seed=11)
    lab = ds.sample_labels(range(4000))
    first = lab["positions"][:, 1, 0] - lab["positions"][:, 0, 0]  # (B, 2) displacement from frame 0 to 1
    step = torch.tensor(STEPS)[lab["direction"][:, 0]]  # (B, 2) the label's (dy, dx)
    moving = first != 0
    assert moving.float().mean() > 0.5
    assert (torch.sign(first[moving]) == step[moving].float()).all()
