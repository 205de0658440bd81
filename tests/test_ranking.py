"""AUROC and average precision: against their pairwise / per-positive definitions, hand-made cases, errors."""
import itertools

import pytest
import torch

from tinyvdm.metrics import auroc, average_precision, roc_curve


def pairwise_auroc(s, y) -> float:
    """P(s+ > s-) + 0.5 P(s+ = s-) over every (positive, negative) pair."""
    pairs = [(p, n) for p, n in itertools.product(s[y].tolist(), s[~y].tolist())]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def per_positive_ap(s, y) -> float:
    """Mean over positives i of |{positives j: s_j >= s_i}| / |{j: s_j >= s_i}|."""
    return sum(((s >= v) & y).sum().item() / (s >= v).sum().item() for v in s[y].tolist()) / y.sum().item()


@pytest.mark.parametrize("seed", range(5))
def test_match_the_brute_force_definitions_on_continuous_scores_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(60, generator=g).double()
    s[::3] = s[1::3][: len(s[::3])].round(decimals=0)  # many ties, across classes too
    y = torch.rand(60, generator=g) < 0.3
    assert auroc(s, y) == pytest.approx(pairwise_auroc(s, y), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(per_positive_ap(s, y), abs=1e-12)


def test_perfect_reversed_and_tied_rankings():
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    s = y.double() + 0.1 * torch.arange(6)
    assert auroc(s, y) == 1.0 and average_precision(s, y) == 1.0
    assert auroc(-s, y) == 0.0
    assert auroc(torch.zeros(6), y) == 0.5
    assert average_precision(torch.zeros(6), y) == 0.5  # one threshold: the precision of everything, 3 / 6


def test_average_precision_by_hand():
    """Ranked: + - + - - +, so precision at the positives is 1/1, 2/3, 3/6: AP = (1 + 2/3 + 1/2) / 3 = 13/18."""
    s = torch.tensor([6.0, 5, 4, 3, 2, 1])
    y = torch.tensor([True, False, True, False, False, True])
    assert average_precision(s, y) == pytest.approx(13 / 18, abs=1e-12)
    assert auroc(s, y) == pytest.approx(5 / 9, abs=1e-12)  # pairs won by the positives: 3 + 2 + 0 of 9


def test_a_tie_across_the_classes_counts_half():
    assert auroc([1.0, 1.0], [1, 0]) == 0.5
    assert auroc([2.0, 1.0, 1.0], [1, 1, 0]) == 0.75


def test_ranking_is_invariant_to_monotone_transforms():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randn(40, generator=g), torch.arange(40) % 3 == 0
    assert auroc(s.exp() * 5 + 2, y) == pytest.approx(auroc(s, y))
    assert average_precision(s.exp(), y) == pytest.approx(average_precision(s, y))


@pytest.mark.parametrize("seed", range(3))
def test_the_area_under_the_roc_corners_is_the_auroc_ties_included(seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(50, generator=g, dtype=torch.float64).round(decimals=1)  # ties across the classes
    y = torch.rand(50, generator=g) < 0.4
    fpr, tpr, thresholds = roc_curve(s, y)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
    assert torch.trapezoid(tpr, fpr).item() == pytest.approx(auroc(s, y), abs=1e-12)
    k = len(thresholds) // 2  # a corner is the rates of the prediction s >= its threshold
    predicted = s >= thresholds[k]
    assert tpr[k].item() == pytest.approx((predicted & y).sum().item() / y.sum().item())
    assert fpr[k].item() == pytest.approx((predicted & ~y).sum().item() / (~y).sum().item())


def test_thresholded_scores_have_the_auroc_of_one_corner():
    """0/1 predictions have a two-segment ROC through (FPR, TPR): AUROC = (TPR + 1 − FPR) / 2, the balanced accuracy."""
    s = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.6])
    y = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]).bool()
    predicted = s >= 0.65
    tpr, fpr = (predicted & y).sum() / y.sum(), (predicted & ~y).sum() / (~y).sum()
    assert auroc(predicted.float(), y) == pytest.approx(((tpr + 1 - fpr) / 2).item())
    assert auroc(predicted.float(), y) < auroc(s, y)


@pytest.mark.parametrize("scores, labels, message", [
    ([0.1, 0.2, 0.3], [0, 1], r"same shape, got \(3,\) and \(2,\)"),
    ([0.1, 0.2, 0.3], [0, 1, 2], r"binary labels .* \[0, 1, 2\]"),
    ([0.1, 0.2, 0.3], [1, 1, 1], r"both positive and negative labels, got 3 positive and 0 negative"),
    ([0.1, float("nan"), 0.3], [0, 1, 0], r"finite scores"),
])
def test_bad_input_is_named(scores, labels, message):
    for metric in (auroc, average_precision, roc_curve):
        with pytest.raises(ValueError, match=message):
            metric(torch.tensor(scores), torch.tensor(labels))
