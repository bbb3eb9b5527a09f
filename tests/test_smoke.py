import numpy as np
import torch

import w2gn
from w2gn import GaussianPair, W2GNSolver
from w2gn.metrics import l2_uvp


def test_short_fit_beats_identity_d2():
    pair = GaussianPair.random(2, seed=1)
    fitted = W2GNSolver(iterations=400, pretrain_iterations=300, progress=False).fit(pair.source, pair.target)
    x = pair.source.sample(4000, torch.Generator().manual_seed(3))
    uvp = l2_uvp(torch.as_tensor(fitted.forward(x)), pair.forward_map(x), pair.target.variance)
    ident = l2_uvp(x, pair.forward_map(x), pair.target.variance)
    assert uvp < 0.1 * ident


def test_numpy_in_numpy_out():
    x = np.random.randn(200, 3)
    fitted = w2gn.fit(x, x + 1.0, iterations=20, pretrain_iterations=10, progress=False)
    out = fitted.forward(x)
    assert isinstance(out, np.ndarray) and out.shape == x.shape
