"""The CUDA path: the same fits, losses and files as on the CPU (run on a GPU machine; skipped without one).

CI has no GPU, so these only run where ``torch.cuda.is_available()``; the CPU suite covers the same
logic (the CUDA-only code is kept to device placement, synchronisation and bf16 autocast).
"""

import numpy as np
import pytest
import torch

from w2gn import GaussianPair, TransportMap, W2GNSolver
from w2gn.metrics import l2_uvp

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_on_cuda_beats_identity_and_round_trips_to_cpu(tmp_path, dtype):
    pair = GaussianPair.random(4, seed=0)
    # drawn before the fit: fit moves the samplers to the GPU (in place, Sampler.to)
    x = pair.source.sample(4000, torch.Generator().manual_seed(1))
    fitted = W2GNSolver(iterations=400, pretrain_iterations=200, batch_size=256, progress=False, device="cuda",
                        dtype=dtype, gradient_mode="analytic").fit(pair.source, pair.target)
    ident = l2_uvp(x, pair.forward_map(x), pair.target.variance)
    got = l2_uvp(torch.as_tensor(fitted.forward(x.numpy())), pair.forward_map(x), pair.target.variance)
    assert got < 0.2 * ident, (got, ident)
    fitted.save(tmp_path / "m.pt")
    back = TransportMap.load(tmp_path / "m.pt", map_location="cpu")
    np.testing.assert_allclose(back.forward(x.numpy()[:100]), fitted.forward(x.numpy()[:100]), rtol=1e-4, atol=1e-4)


def test_analytic_and_autograd_agree_on_cuda():
    dim = 5
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(128, dim, device="cuda", dtype=torch.float64, generator=gen)
    y = 1.3 * torch.randn(128, dim, device="cuda", dtype=torch.float64, generator=gen)
    grads = []
    for mode in ("autograd", "analytic"):
        s = W2GNSolver(iterations=1, pretrain_iterations=0, progress=False, device="cuda", dtype="float64",
                       hidden=[12, 10, 6], gradient_mode=mode, seed=3)
        pair = GaussianPair.random(dim, seed=3)
        s.setup(pair.source.to("cuda", torch.float64), pair.target.to("cuda", torch.float64),
                torch.Generator(device="cuda").manual_seed(0))
        loss, _ = s.loss(x, y)
        loss.backward()
        grads.append([p.grad.clone() for net in (s.theta, s.omega) for p in net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_bf16_autocast_step_trains_on_cuda():
    pair = GaussianPair.random(8, seed=1)
    x = pair.source.sample(2000, torch.Generator().manual_seed(2))
    s = W2GNSolver(iterations=200, pretrain_iterations=100, batch_size=256, progress=False, device="cuda",
                   gradient_mode="analytic", autocast_bf16=True, log_every=50)
    fitted = s.fit(pair.source, pair.target)
    assert all(np.isfinite(h["loss"]) for h in s.history)
    got = l2_uvp(torch.as_tensor(fitted.forward(x.numpy())), pair.forward_map(x), pair.target.variance)
    assert got < 0.5 * l2_uvp(x, pair.forward_map(x), pair.target.variance)


def test_conv_icnn_step_on_cuda_keeps_weights_projected():
    from w2gn.applications.style import style_solver

    solver = style_solver(iterations=2, pretrain_iterations=1, batch_size=2, device="cuda", progress=False)
    imgs = torch.rand(6, 3, 16, 16) * 2 - 1
    fitted = solver.fit(imgs, imgs.flip(1))
    for net in (fitted.forward_potential, fitted.inverse_potential):
        for p in net.constrained_parameters():
            assert p.device.type == "cuda" and float(p.detach().min()) >= 0.0


def test_gaussian_cli_on_cuda(tmp_path):
    from w2gn.cli import main

    assert main(["gaussian", "--dim", "3", "--iterations", "50", "--pretrain-iterations", "20", "--batch-size", "64",
                 "--device", "cuda", "--eval-samples", "500", "--quiet", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "gaussian_D3.json").exists()
