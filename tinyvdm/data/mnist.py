"""MNIST digits that ship with the course (LeCun & Cortes; CC BY-SA 3.0).

`data/mnist/{train,test}.npz` hold a class-balanced subset of the official training
and test sets as uint8 arrays: train digits come only from MNIST's training set and
test digits only from its test set, so no test video ever reuses a train digit.
If the full IDX files (`train-images-idx3-ubyte`, ...) are dropped into `data/mnist/`,
`load_digits` uses them instead. `data/mnist/build.py` rebuilt the shipped files.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
MNIST_DIR = DATA_DIR / "mnist"
SPLITS = ("train", "test")
_IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def load_digits(split: str = "train", root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Digits of one split as `(images (N, 28, 28) uint8, labels (N,) int64)`, full IDX files if present."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = _load(split, str(Path(root) if root is not None else MNIST_DIR))
    return images, labels


@lru_cache(maxsize=4)
def _load(split: str, root: str) -> tuple[np.ndarray, np.ndarray]:
    folder = Path(root)
    idx = [_find(folder / name) for name in _IDX[split]]
    if all(p is not None for p in idx):
        return read_idx(idx[0]), read_idx(idx[1]).astype(np.int64)
    shipped = folder / f"{split}.npz"
    if not shipped.exists():
        raise FileNotFoundError(f"no MNIST digits for split {split!r}: expected {shipped} or the IDX files "
                                f"{_IDX[split]} in {folder}")
    with np.load(shipped) as f:
        return f["images"], f["labels"].astype(np.int64)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format: magic, dims as big-endian int32, then uint8 data); .gz allowed."""
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 IDX file (expected magic 0x0000 08 nd)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape}, found {data.size} bytes of data")
    return data.reshape(shape)


def _find(path: Path) -> Path | None:
    for p in (path, path.with_name(path.name + ".gz")):
        if p.exists():
            return p
    return None
