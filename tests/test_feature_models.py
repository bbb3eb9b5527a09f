"""LeNet, the convolutional autoencoder and 1-NN: shapes, and training steps that reduce the loss."""

import numpy as np
import pytest
import torch

from w2gn.applications.autoencoder import ConvAutoencoder, decode, encode, train_autoencoder
from w2gn.applications.knn import one_nn_accuracy, one_nn_predict
from w2gn.applications.lenet import LeNet, accuracy, extract_features, train_lenet
from w2gn.errors import W2GNUserError


def _bars(n, seed=0):
    """Two classes of 28x28 images: a vertical or a horizontal bar at a random position, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.1 * torch.rand(n, 1, 28, 28, generator=g)
    pos = torch.randint(6, 22, (n,), generator=g)
    for i in range(n):
        if y[i]:
            x[i, 0, :, pos[i] - 1 : pos[i] + 2] = 1.0
        else:
            x[i, 0, pos[i] - 1 : pos[i] + 2, :] = 1.0
    return x, y


def test_lenet_shapes():
    net = LeNet(seed=0)
    x = torch.rand(5, 1, 28, 28)
    assert net(x).shape == (5, 10)
    f = extract_features(net, x)
    assert f.shape == (5, 84) and float(f.min()) >= 0  # ReLU features


def test_lenet_training_reduces_loss_and_learns():
    x, y = _bars(256)
    net, hist = train_lenet(x, y, epochs=3, batch_size=32, lr=3e-3, seed=0)
    assert hist[-1] < 0.5 * hist[0]
    xt, yt = _bars(64, seed=1)
    assert accuracy(net, xt, yt) > 0.9


def test_autoencoder_shapes_and_bad_size():
    ae = ConvAutoencoder(channels=3, image_size=16, latent_dim=6, width=4, seed=0)
    x = torch.rand(4, 3, 16, 16)
    z = encode(ae, x)
    assert z.shape == (4, 6)
    out = decode(ae, z)
    assert out.shape == (4, 3, 16, 16) and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(W2GNUserError, match="multiple of 8"):
        ConvAutoencoder(image_size=28)


def test_autoencoder_training_reduces_loss():
    g = torch.Generator().manual_seed(0)
    # smooth images (low-frequency): easy to compress into 8 numbers
    base = torch.rand(128, 1, 2, 2, generator=g)
    x = torch.nn.functional.interpolate(base, size=(16, 16), mode="bilinear", align_corners=False)
    ae, hist = train_autoencoder(x, latent_dim=8, epochs=6, batch_size=32, lr=3e-3, width=8, seed=0)
    assert hist[-1] < 0.5 * hist[0]
    rec = decode(ae, encode(ae, x))
    assert float(((rec - x) ** 2).mean()) < float(((x - x.mean()) ** 2).mean())  # beats the mean image


def test_one_nn_matches_bruteforce():
    rng = np.random.default_rng(0)
    ref, lab = rng.normal(size=(200, 5)), rng.integers(0, 4, 200)
    q = rng.normal(size=(50, 5))
    d = ((q[:, None] - ref[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(one_nn_predict(ref, lab, q, chunk=7).numpy(), lab[d.argmin(1)])
    assert one_nn_accuracy(ref, lab, ref, lab) == 1.0
