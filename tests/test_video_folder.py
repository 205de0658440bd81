"""VideoFolder on tiny videos written here with PyAV: labels, clip timing, resize/crop, and clear errors."""
import numpy as np
import pytest
import torch

av = pytest.importorskip("av")  # the `video` extra; the test extra installs it

from tinyvdm.data.video_folder import VideoFolder  # noqa: E402


def write_video(path, length=20, height=48, width=64, fps=8):
    """A white 8x8 square moving 2 px right per frame on black; frame k's square covers x = 16 + 2k ... 23 + 2k."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(length):
            frame = np.zeros((height, width, 3), np.uint8)
            frame[20:28, 16 + 2 * k:24 + 2 * k] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name, count in (("walk", 2), ("jump", 1)):
        (root / name).mkdir()
        for i in range(count):
            write_video(root / name / f"v{i}.mp4")
    (root / "walk" / "notes.txt").write_text("not a video")
    return root


def centre_x(frame: torch.Tensor) -> float:
    weights = (frame + 1).clamp(min=0)
    return float((weights.sum(0) * torch.arange(frame.shape[1])).sum() / weights.sum())


def test_clips_have_the_course_contract_and_sorted_class_labels(root):
    data = VideoFolder(root, frames=8, stride=2, size=32)
    assert data.classes == ["jump", "walk"] and len(data) == 3
    clip, label = data[0]
    assert clip.shape == (1, 8, 32, 32) and clip.dtype == torch.float32
    assert -1 <= clip.min() and clip.max() <= 1 and clip.max() > 0.5
    assert [data[i][1] for i in range(3)] == [0, 1, 1]
    assert VideoFolder(root, frames=4, channels=3, size=16)[0][0].shape == (3, 4, 16, 16)


def test_frames_are_taken_at_the_stride_and_the_square_moves_as_written(root):
    """Resize 48x64 -> 32x43, crop 5 columns from the left: a centre at column c moves to (c + 1/2) 43/64 - 1/2 - 5."""
    for stride in (1, 2):
        clip, _ = VideoFolder(root, frames=6, stride=stride, size=32)[0]
        xs = [centre_x(clip[0, k]) for k in range(6)]
        expected = [(16 + 2 * k * stride + 3.5 + 0.5) * 43 / 64 - 0.5 - 5 for k in range(6)]
        assert np.allclose(xs, expected, atol=0.6), (stride, xs, expected)


def test_several_clips_per_video_cover_it_evenly(root):
    data = VideoFolder(root, frames=4, stride=1, size=32, clips_per_video=3)
    assert len(data) == 9 and [start for _, start, _ in data.clips[:3]] == [0, 8, 16]


def test_bad_folders_and_files_are_clear_errors(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="no videos"):
        VideoFolder(tmp_path)
    with pytest.raises(ValueError, match="has 20 frames; a clip of 8 frames at stride 3 needs 22"):
        VideoFolder(root, frames=8, stride=3)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.mp4").write_bytes(b"not an mp4 at all")
    with pytest.raises(ValueError, match="cannot read .*x.mp4"):
        VideoFolder(tmp_path)
    with pytest.raises(ValueError, match="channels must be 1"):
        VideoFolder(root, channels=2)


def test_the_trainer_learns_a_folder_and_its_checkpoint_samples_without_it(tmp_path, root):
    """The `video_folder` task: the course's diffusion on the folder's clips; the checkpoint needs no folder."""
    import shutil
    from dataclasses import replace

    from tinyvdm.train import get_preset, load_checkpoint, train

    mine = shutil.copytree(root, tmp_path / "mine")
    data = {**get_preset("folder").data, "root": str(mine), "frames": 4, "stride": 2, "size": 16}
    config = replace(get_preset("tiny"), task="video_folder", data=data, steps=4, warmup=1, threads=1,
                     progress=False, out_dir=str(tmp_path / "run"))
    result = train(config)
    assert len(result.log) == 1 and result.log[0]["loss"] > 0
    shutil.rmtree(mine)
    model, _, task = load_checkpoint(result.checkpoint)
    videos = task.sample(model, 2, steps=3, generator=torch.Generator().manual_seed(0), progress=False)
    assert videos.shape == (2, 1, 4, 16, 16) and torch.isfinite(videos).all()
    with pytest.raises(FileNotFoundError, match="no folder .*mine"):
        task.batch_fn(0)


def test_the_folder_task_wants_as_many_model_channels_as_the_clips_have(root):
    from dataclasses import replace

    from tinyvdm.train import ConfigError, build_task, get_preset

    config = replace(get_preset("folder"), data={**get_preset("folder").data, "root": str(root), "channels": 3})
    with pytest.raises(ConfigError, match="model.in_channels=1 must equal data.channels=3"):
        build_task(config)
