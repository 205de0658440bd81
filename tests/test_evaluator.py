"""The Moving MNIST evaluator: the bouncing-motion fit in closed form, the shipped checkpoint's accuracy on
test digits, Fréchet sanity (real vs real, shuffled frames, noise), other sizes and frame counts, clear errors."""
import re

import pytest
import torch

from tinyvdm.data import MovingMNIST
from tinyvdm.data.moving_mnist import STEPS
from tinyvdm.metrics import Evaluator, fit_bouncing_motion, frechet_distance, shuffle_frames
from tinyvdm.metrics.evaluator import CHECKPOINT

N = 300  # test videos per set: enough for accuracies within ~1 %, small enough for a fast test


def visible_directions(labels, size: int = 32, digit_size: int = 14) -> tuple[torch.Tensor, torch.Tensor]:
    """(direction a viewer sees, whether it is the label): a digit starting on a wall moving into it moves away."""
    p0 = labels["positions"][:, 0, 0]  # (B, 2) first centre (y, x)
    step = torch.tensor(STEPS)[labels["direction"][:, 0]]  # (B, 2) (dy, dx)
    lo, hi = (digit_size - 1) / 2, size - 1 - (digit_size - 1) / 2
    into_wall = ((p0 == lo) & (step < 0)) | ((p0 == hi) & (step > 0))
    seen = torch.where(into_wall, -step, step)
    index = {s: i for i, s in enumerate(STEPS)}
    return torch.tensor([index[tuple(s)] for s in seen.tolist()]), ~into_wall.any(1)


def triangle_wave(z0, speed, T, lo, L):
    """p(t) = lo + L - |L - ((z0 + s t) mod 2L)|: the data generator's bounce, written out."""
    t = torch.arange(T, dtype=torch.float64)
    return lo + L - (L - torch.remainder(z0[:, None] + speed[:, None] * t, 2 * L)).abs()


# ---------------------------------------------------------------- the motion fit (no weights)


def test_fit_reads_the_visible_direction_of_every_true_trajectory():
    """On the data's own positions the fit is exact: zero error, speed 2, and the labelled direction wherever a
    viewer can see it (a start on a wall moving into it looks like moving away: those are the only misses)."""
    _, _, labels = MovingMNIST(2000, split="test", seed=5).batch(range(2000))
    fit = fit_bouncing_motion(labels["positions"][:, :, 0])
    seen, is_label = visible_directions(labels)
    assert torch.equal(fit["direction"], seen)
    assert torch.equal(fit["direction"] == labels["direction"][:, 0], is_label)
    assert fit["error"].max() < 1e-4 and torch.all(fit["speed"] == 2)


@pytest.mark.parametrize("speed, T", [(1.0, 8), (3.0, 5), (1.5, 16)])
def test_fit_recovers_bounces_at_other_speeds_and_lengths(speed, T):
    """Trajectories from the closed form with starts off the walls: direction, speed and the path come back, and
    the fitted motion continued 6 frames (`horizon`) is where the digit goes next."""
    g = torch.Generator().manual_seed(int(speed * 10) + T)
    B, lo, L = 400, 6.5, 18.0
    direction = torch.randint(8, (B,), generator=g)
    step = torch.tensor(STEPS, dtype=torch.float64)[direction]  # (B, 2)
    start = lo + 1 + torch.rand(B, 2, generator=g, dtype=torch.float64) * (L - 2)  # centres at least 1 px from walls
    z0 = torch.where(step < 0, 2 * L - (start - lo), start - lo)  # unfolded start moving towards -y / -x
    axes = [triangle_wave(z0[:, a], speed * step[:, a].abs(), T + 6, lo, L) for a in (0, 1)]
    positions, later = torch.stack(axes, -1).split([T, 6], 1)  # (B, T, 2), (B, 6, 2)
    fit = fit_bouncing_motion(positions)
    assert torch.equal(fit["direction"], direction)
    assert torch.allclose(fit["speed"], torch.full((B,), speed))
    assert (fit["fit"] - positions).abs().max() < 0.2 and fit["error"].max() < 0.2  # the start grid is 0.25 px
    continued = fit_bouncing_motion(positions, horizon=6)["fit"]
    assert continued.shape == (B, T + 6, 2) and torch.equal(continued[:, :T], fit["fit"])
    assert (continued[:, T:] - later).abs().max() < 0.2


def test_fit_tolerates_reading_noise():
    """Centres read with 0.3 px of noise (about the frame reader's error) still give the labelled direction."""
    _, _, labels = MovingMNIST(1000, split="test", seed=6).batch(range(1000))
    g = torch.Generator().manual_seed(0)
    noisy = labels["positions"][:, :, 0] + 0.3 * torch.randn(1000, 8, 2, generator=g)
    seen, _ = visible_directions(labels)
    assert (fit_bouncing_motion(noisy)["direction"] == seen).float().mean() > 0.99


def test_fit_rejects_bad_positions():
    with pytest.raises(ValueError, match=re.escape("expected positions (B, T, 2) with T >= 2, got (4, 8)")):
        fit_bouncing_motion(torch.zeros(4, 8))
    with pytest.raises(ValueError, match="T >= 2"):
        fit_bouncing_motion(torch.zeros(4, 1, 2))


# ---------------------------------------------------------------- the shipped checkpoint


@pytest.fixture(scope="module")
def ev():
    return Evaluator.load()


@pytest.fixture(scope="module")
def test_set():
    return MovingMNIST(N, split="test", seed=11).batch(range(N))


@pytest.fixture(scope="module")
def second_test_set():
    return MovingMNIST(N, split="test", seed=12).batch(range(N))[0]


def test_checkpoint_is_small_and_plain_tensors():
    assert CHECKPOINT.stat().st_size <= 2 * 2 ** 20
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state["weights"].values())


def test_accuracy_on_test_digits(ev, test_set):
    videos, _, labels = test_set
    seen, is_label = visible_directions(labels)
    positions = labels["positions"][:, :, 0]
    scores = ev.score(videos, digits=labels["digits"][:, 0], directions=seen, positions=positions)
    assert scores["n"] == N
    assert scores["digit_acc"] >= 0.97, f"digit accuracy {scores['digit_acc']:.3f} on {N} test videos"
    assert scores["direction_acc"] >= 0.97, f"direction accuracy {scores['direction_acc']:.3f} on {N} test videos"
    assert scores["trajectory_error"] < 0.5, f"centres read {scores['trajectory_error']:.2f} px from the truth"
    assert scores["identity_consistency"] > 0.97 and scores["motion_error"] < 0.5
    labelled = ev.score(videos[is_label], directions=labels["direction"][is_label, 0])
    assert labelled["direction_acc"] >= 0.97


def test_reads_larger_frames_and_more_frames(ev):
    """The course geometry at 64 x 64 and 16 frames (digit 28 px, 4 px per frame): same digits, directions,
    and centres in the input's pixels."""
    videos, _, labels = MovingMNIST(100, split="test", seed=13, size=64, digit_size=28, speed=4,
                                    frames=16).batch(range(100))
    seen, _ = visible_directions(labels, size=64, digit_size=28)
    scores = ev.score(videos, digits=labels["digits"][:, 0], directions=seen, positions=labels["positions"][:, :, 0])
    assert scores["digit_acc"] >= 0.95 and scores["direction_acc"] >= 0.95
    assert scores["trajectory_error"] < 1.0, f"centres read {scores['trajectory_error']:.2f} px (of 64) from the truth"


def noisy(videos: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    return (videos + std * torch.randn(videos.shape, generator=generator)).clamp(-1, 1)


def test_fvd_sanity(ev, test_set, second_test_set):
    """Real vs real (other seed) is near 0: far below shuffled frames, and below noise, more so as it grows."""
    real_a, real_b = test_set[0], second_test_set
    g = torch.Generator().manual_seed(0)
    real = ev.fvd(real_a, real_b)
    assert (real.n_a, real.n_b) == (N, N) and f"n = {N} vs {N} videos" in str(real)
    features_a = ev.video_features(real_a)
    shuffled = frechet_distance(features_a, ev.video_features(shuffle_frames(real_b, g))).value
    noise = [frechet_distance(features_a, ev.video_features(noisy(real_b, std, g))).value for std in (0.2, 0.4, 0.8)]
    assert real.value < 0.25 * shuffled, f"{real} vs shuffled frames {shuffled:.2f}"
    assert real.value < noise[0] < noise[1] < noise[2], f"{real}; noise std 0.2, 0.4, 0.8: {noise}"


def test_fid_sanity(ev, test_set, second_test_set):
    """Per frame: real vs real is near 0 and below noise, more so as it grows (n counts frames)."""
    real_a, real_b = test_set[0][:150], second_test_set[:150]
    g = torch.Generator().manual_seed(1)
    real = ev.fid(real_a, real_b)
    assert (real.n_a, real.n_b) == (150 * 8, 150 * 8) and "n = 1200 vs 1200 frames" in str(real)
    features_a = ev.frame_features(real_a)
    noise = [frechet_distance(features_a, ev.frame_features(noisy(real_b, std, g))).value for std in (0.4, 0.8)]
    assert real.value < 0.5 * noise[0] and noise[0] < noise[1], f"{real}; noise std 0.4, 0.8: {noise}"


def test_bad_inputs_give_clear_errors(ev, test_set):
    videos = test_set[0]
    expected = "expected a video batch (B, 1, T, H, W) in [-1, 1], got (8, 32, 32)"
    with pytest.raises(ValueError, match=re.escape(expected)):
        ev.read(videos[:8, 0, 0])
    with pytest.raises(ValueError, match="got \\(2, 3, 8, 32, 32\\)"):
        ev.read(videos[:2].expand(2, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="at least 2 frames"):
        ev.read(videos[:2, :, :1])
    with pytest.raises(ValueError, match="a covariance needs at least 2 samples, got 1"):
        ev.fvd(videos[:1], videos[:10])
    with pytest.raises(ValueError, match=re.escape("expected digit targets (B,) = (4,), got (3,)")):
        ev.score(videos[:4], digits=torch.zeros(3, dtype=torch.long))
