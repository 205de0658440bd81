"""`python -m tinyvdm demo | train | sample | check NN | build-exercises`."""
from __future__ import annotations

import sys

USAGE = """usage: python -m tinyvdm COMMAND [options]

commands:
  demo               write a GIF of videos with their captions and print its path
  train              train a model from a preset: train --preset NAME [--key value ...]
  sample             sample videos from a checkpoint: sample --ckpt PATH --out x.gif
  check NN           check your exercise NN with nbval (add --solution for the answer key)
  build-exercises    regenerate exercises/ from solutions/ (instructors)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "demo":
        from .demo import demo_cli
        return demo_cli(rest)
    if command == "train":
        from .train import train_cli
        return train_cli(rest) or 0
    if command == "sample":
        from .train import sample_cli
        return sample_cli(rest) or 0
    if command in ("check", "build-exercises"):
        from . import course
        return course.main(argv if command == "check" else ["build"])
    print(USAGE, file=sys.stderr if command not in ("-h", "--help") else sys.stdout)
    return 0 if command in ("-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main())
