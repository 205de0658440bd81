"""How well continuous scores rank positives above negatives: AUROC and average precision, ties included.

AUROC is the Mann–Whitney statistic (Hanley & McNeil 1982): the chance that a random positive outscores a
random negative, a tie counting half,

    AUROC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) = (Σ_{i ∈ pos} rank_i − n⁺ (n⁺ + 1) / 2) / (n⁺ n⁻),

with rank_i the 1-based rank of s_i among all scores and tied scores sharing their mean rank. Average
precision is the mean, over the positives, of the precision at that positive's score (tied scores enter a
threshold together), the area under the step-wise precision–recall curve, as scikit-learn computes it:

    AP = (1 / n⁺) Σ_{i ∈ pos} |{j ∈ pos : s_j ≥ s_i}| / |{j : s_j ≥ s_i}|.

Both read the scores themselves: thresholding them first (AUROC of 0/1 predictions) throws the ranking away.
"""
from __future__ import annotations

import torch


def auroc(scores, labels) -> float:
    """Area under the ROC curve = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻), from mean ranks (ties share theirs)."""
    s, y = _check(scores, labels)
    values, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)  # values ascending
    mean_rank = counts.cumsum(0).double() - (counts - 1) / 2  # 1-based mean rank of each distinct value
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = mean_rank[inverse][y].sum() - n_pos * (n_pos + 1) / 2  # Mann–Whitney U of the positives
    return (u / (n_pos * n_neg)).item()


def average_precision(scores, labels) -> float:
    """AP = mean over positives of the precision at their score: Σ_k (R_k − R_{k−1}) P_k over distinct thresholds."""
    s, y = _check(scores, labels)
    values, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    positives = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, y.double())
    at_least = counts.flip(0).cumsum(0).flip(0)  # |{j : s_j ≥ value}| for each distinct value
    positives_at_least = positives.flip(0).cumsum(0).flip(0)
    return ((positives * positives_at_least / at_least).sum() / y.sum()).item()


def roc_curve(scores, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fpr, tpr, thresholds): the ROC curve's corners, one per distinct score from the highest down, after (0, 0).

    Predicting "anomalous" for s ≥ threshold gives the point (fpr, tpr); tied scores move both at once, so the
    trapezoidal area under the corners is `auroc` exactly (a tie's diagonal segment counts it half).
    """
    s, y = _check(scores, labels)
    values, inverse = torch.unique(s, return_inverse=True)
    positives = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, y.double())
    negatives = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, (~y).double())
    tpr = torch.cat([torch.zeros(1, dtype=torch.float64), positives.flip(0).cumsum(0) / y.sum()])
    fpr = torch.cat([torch.zeros(1, dtype=torch.float64), negatives.flip(0).cumsum(0) / (~y).sum()])
    thresholds = torch.cat([torch.full((1,), float("inf"), dtype=torch.float64), values.flip(0)])
    return fpr, tpr, thresholds


def _check(scores, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat float64 scores and bool labels, or an error naming what is wrong."""
    s, y = torch.as_tensor(scores), torch.as_tensor(labels)
    if s.shape != y.shape:
        raise ValueError(f"expected scores and labels of the same shape, got {tuple(s.shape)} and {tuple(y.shape)}")
    s, y = s.reshape(-1).double().cpu(), y.reshape(-1).cpu()
    if not torch.isfinite(s).all():
        raise ValueError(f"expected finite scores, got {int((~torch.isfinite(s)).sum())} NaN or infinite")
    if y.dtype != torch.bool:
        if not ((y == 0) | (y == 1)).all():
            raise ValueError(f"expected binary labels (bool or 0/1), got values {torch.unique(y).tolist()[:10]}")
        y = y == 1
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y):
        raise ValueError(f"expected both positive and negative labels, got {n_pos} positive and "
                         f"{len(y) - n_pos} negative: AUROC and AP rank one class against the other")
    return s, y
