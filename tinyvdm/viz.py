"""Seeing videos: frames, animations, grids, space-time slices and GIFs.

The only place that converts the model's tensors to pixels. Accepted inputs: a video
`(C, T, H, W)` or `(T, H, W)` in [-1, 1], or a batch `(B, C, T, H, W)` / list of videos.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation


def to_frames(video) -> np.ndarray:
    """One video in [-1, 1] -> uint8 frames `(T, H, W)` (grey) or `(T, H, W, 3)` (RGB)."""
    v = torch.as_tensor(video).detach().float().cpu()
    if v.dim() == 3:
        v = v[None]
    if v.dim() != 4 or v.shape[0] not in (1, 3):
        raise ValueError(f"expected a video (C, T, H, W) with C in (1, 3) or (T, H, W), got {tuple(v.shape)}")
    v = ((v.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v[0].numpy() if v.shape[0] == 1 else v.permute(1, 2, 3, 0).numpy()


def as_list(videos) -> list:
    """A batch `(B, C, T, H, W)`, a single video or a list of videos -> list of videos."""
    if isinstance(videos, (list, tuple)):
        return list(videos)
    v = torch.as_tensor(videos)
    return list(v) if v.dim() == 5 else [v]


def plot_frames(videos, titles=None, max_frames: int | None = None, size: float = 1.2):
    """A static figure: one row per video, one column per frame."""
    frames = [to_frames(v) for v in as_list(videos)]
    T = max(len(f) for f in frames) if max_frames is None else max_frames
    fig, axes = plt.subplots(len(frames), T, figsize=(size * T, size * len(frames) + 0.3 * (titles is not None)),
                             squeeze=False)
    for r, f in enumerate(frames):
        for c in range(T):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(f):
                ax.imshow(f[c], cmap="gray", vmin=0, vmax=255)
            if r == len(frames) - 1:
                ax.set_xlabel(f"t={c}", fontsize=8)
        if titles is not None:
            axes[r, 0].set_title(titles[r], fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def video_grid(videos, titles=None, ncols: int | None = None, fps: float = 4, size: float = 1.6):
    """An inline animation (jshtml) of several videos side by side, with titles."""
    from IPython.display import HTML

    frames = [to_frames(v) for v in as_list(videos)]
    n = len(frames)
    ncols = ncols or min(n, 8)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.35 * (titles is not None)) * nrows),
                             squeeze=False)
    images = []
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            images.append(ax.imshow(frames[k][0], cmap="gray", vmin=0, vmax=255))
            if titles is not None:
                ax.set_title("\n".join(textwrap.wrap(str(titles[k]), 22)), fontsize=7)
    fig.tight_layout()
    T = max(len(f) for f in frames)

    def draw(t):
        for im, f in zip(images, frames):
            im.set_data(f[min(t, len(f) - 1)])
        return images

    anim = animation.FuncAnimation(fig, draw, frames=T, interval=1000 / fps, blit=True)
    html = HTML(anim.to_jshtml(default_mode="loop"))
    plt.close(fig)
    return html


def show_video(video, fps: float = 4, title: str | None = None, size: float = 2.5):
    """An inline animation (jshtml) of one video."""
    return video_grid([video], titles=None if title is None else [title], fps=fps, size=size)


def space_time_slices(video, row: int | None = None, col: int | None = None):
    """The x–t and y–t slices of a video: a moving digit draws a line whose slope is its speed."""
    f = to_frames(video).astype(np.float32)  # (T, H, W)
    if f.ndim != 3:
        raise ValueError("space-time slices need a grey video (1, T, H, W) or (T, H, W)")
    T, H, W = f.shape
    row = H // 2 if row is None else row
    col = W // 2 if col is None else col
    fig, axes = plt.subplots(1, 3, figsize=(9, 3))
    axes[0].imshow(f.max(0), cmap="gray")
    axes[0].axhline(row, color="tab:orange"), axes[0].axvline(col, color="tab:blue")
    axes[0].set_title("all frames (max) and the slice lines")
    axes[1].imshow(f.max(1), cmap="gray", aspect="auto")  # (T, W): each row of pixels collapsed
    axes[1].set_title("x–t slice (max over y)"), axes[1].set_xlabel("x"), axes[1].set_ylabel("t")
    axes[2].imshow(f.max(2), cmap="gray", aspect="auto")
    axes[2].set_title("y–t slice (max over x)"), axes[2].set_xlabel("y"), axes[2].set_ylabel("t")
    fig.tight_layout()
    return fig


def tile(videos, titles=None, ncols: int | None = None, scale: int = 4, pad: int = 4) -> list:
    """Videos -> a list of PIL frames, the videos tiled on a grid with wrapped titles above them."""
    from PIL import Image, ImageDraw, ImageFont

    frames = [to_frames(v) for v in as_list(videos)]
    n = len(frames)
    ncols = ncols or min(n, 8)
    nrows = -(-n // ncols)
    H, W = frames[0].shape[1] * scale, frames[0].shape[2] * scale
    font = ImageFont.load_default()
    chars = max(8, W // 6)
    lines = [textwrap.wrap(str(t), chars) for t in titles] if titles is not None else [[] for _ in frames]
    head = 11 * max(len(ls) for ls in lines) + (pad if titles is not None else 0)
    T = max(len(f) for f in frames)
    out = []
    for t in range(T):
        canvas = Image.new("RGB", (ncols * (W + pad) + pad, nrows * (H + head + pad) + pad), "white")
        draw = ImageDraw.Draw(canvas)
        for k, f in enumerate(frames):
            r, c = divmod(k, ncols)
            x0, y0 = pad + c * (W + pad), pad + r * (H + head + pad)
            for j, line in enumerate(lines[k]):
                draw.text((x0, y0 + 11 * j), line, fill="black", font=font)
            img = Image.fromarray(f[min(t, len(f) - 1)]).resize((W, H), Image.NEAREST)
            canvas.paste(img.convert("RGB"), (x0, y0 + head))
        out.append(canvas)
    return out


def save_gif(videos, path, titles=None, fps: float = 4, ncols: int | None = None, scale: int = 4) -> Path:
    """Write videos as one looping GIF grid (Pillow; no ffmpeg needed). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = tile(videos, titles, ncols, scale)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0)
    return path


def explore(video, title: str | None = None):
    """An ipywidgets slider over the frames of one video."""
    import ipywidgets as widgets

    f = to_frames(video)

    def show(t=0):
        plt.figure(figsize=(3, 3))
        plt.imshow(f[t], cmap="gray", vmin=0, vmax=255)
        plt.title(f"{title + ' — ' if title else ''}frame {t}"), plt.axis("off")
        plt.show()

    return widgets.interact(show, t=widgets.IntSlider(0, 0, len(f) - 1, 1, description="frame"))
