"""Real video clips from a folder of class folders (UCF-101 style), read with PyAV (`pip install 'tinyvdm[video]'`).

    root/
      ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi
      Archery/...

`VideoFolder(root, frames=8, stride=2, size=64)[i]` -> (clip (C, T, H, W) in [-1, 1], class index): the frames
start, start + stride, ..., of one video, resized so the shorter side is `size`, then centre-cropped to
size x size. Each video gives `clips_per_video` evenly spaced clips (1: from its first frame). Classes are
the sorted folder names (`classes`). The same tensor contract as Moving MNIST, so the course's models train
on it unchanged.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def _av():
    try:
        import av
    except ImportError:
        raise ImportError(
            "VideoFolder reads videos with PyAV: pip install 'tinyvdm[video]' (or pip install av)") from None
    return av


class VideoFolder(torch.utils.data.Dataset):
    def __init__(self, root: str | Path, frames: int = 8, stride: int = 1, size: int = 32, channels: int = 1,
                 clips_per_video: int = 1):
        if frames < 1 or stride < 1 or size < 1 or clips_per_video < 1:
            raise ValueError(f"frames, stride, size and clips_per_video must be positive, got frames={frames}, "
                             f"stride={stride}, size={size}, clips_per_video={clips_per_video}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
        self.root, self.frames, self.stride, self.size, self.channels = Path(root), frames, stride, size, channels
        if not self.root.is_dir():
            raise FileNotFoundError(f"no folder {self.root}")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        videos = [(path, label) for label, name in enumerate(self.classes)
                  for path in sorted((self.root / name).iterdir()) if path.suffix.lower() in EXTENSIONS]
        if not videos:
            raise FileNotFoundError(f"no videos ({', '.join(EXTENSIONS)}) in class folders of {self.root}; "
                                    "expected root/<class>/<video>")
        span = (frames - 1) * stride + 1  # frames a clip covers
        self.clips = []  # (path, first frame, label)
        for path, label in videos:
            length = frame_count(path)
            if length < span:
                raise ValueError(f"{path} has {length} frames; a clip of {frames} frames at stride {stride} "
                                 f"needs {span}")
            starts = np.linspace(0, length - span, clips_per_video).round().astype(int)
            self.clips += [(path, int(s), label) for s in starts]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, start, label = self.clips[i]
        wanted = range(start, start + (self.frames - 1) * self.stride + 1, self.stride)
        frames = [f for k, f in enumerate(decode(path, stop=wanted[-1] + 1, rgb=self.channels == 3)) if k in wanted]
        video = torch.from_numpy(np.stack(frames)).float().div(127.5).sub(1)  # (T, H, W) or (T, H, W, 3)
        video = video[..., None] if video.ndim == 3 else video
        return resize_crop(video.permute(3, 0, 1, 2), self.size), label  # (C, T, size, size)


def frame_count(path: Path) -> int:
    """Frames in the video's first stream (from the container's header when it says, else by decoding)."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            n = container.streams.video[0].frames
    except (av.error.FFmpegError, IndexError, OSError) as e:
        raise ValueError(f"cannot read {path} as a video: {e}") from None
    return n or sum(1 for _ in decode(path))


def decode(path: Path, stop: int | None = None, rgb: bool = False):
    """The frames of the first video stream as uint8 arrays (H, W) or (H, W, 3), up to frame `stop`."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if stop is not None and k >= stop:
                    return
                yield frame.to_ndarray(format="rgb24" if rgb else "gray")
    except av.error.FFmpegError as e:
        raise ValueError(f"cannot decode {path}: {e}") from None


def resize_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """(C, T, H, W) -> (C, T, size, size): shorter side to `size` (antialiased bilinear), then the centre square."""
    c, t, h, w = video.shape
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    frames = F.interpolate(video.permute(1, 0, 2, 3), size=(nh, nw), mode="bilinear", antialias=True,
                           align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
    return frames[..., top:top + size, left:left + size].permute(1, 0, 2, 3).clamp(-1, 1).contiguous()
