"""`python -m tinyvdm.metrics [--steps N] [--fresh]`: train the evaluator, save it, measure it, write its card."""
from .evaluator import main

main()
