"""The exact discrete OT matching (w2gn.metrics.discrete_ot_match) against its defining property: among all
permutations it minimises the total squared distance, found here by enumerating every permutation."""

from __future__ import annotations

import itertools

import pytest
import torch

from w2gn.metrics import discrete_ot_match


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_matching_is_the_cheapest_permutation(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = 2.0 * torch.randn(6, 3, generator=g, dtype=torch.float64) + 1.0
    matched = discrete_ot_match(x, y)
    cost = float((x - matched).square().sum())
    best = min(float((x - y[list(p)]).square().sum()) for p in itertools.permutations(range(6)))
    assert cost == pytest.approx(best, rel=1e-12)
    # a reordering of y, each row used once
    assert sorted(map(tuple, matched.tolist())) == sorted(map(tuple, y.tolist()))


def test_a_monotone_map_is_recovered():
    # y = 3 x + 1 in 1-D: the OT matching pairs the sorted points in order
    x = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = (3.0 * x + 1.0)[torch.randperm(50, generator=torch.Generator().manual_seed(1))]
    torch.testing.assert_close(discrete_ot_match(x, y), 3.0 * x + 1.0)
