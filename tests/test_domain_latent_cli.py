"""End-to-end runs of ``w2gn domain-adapt`` and ``w2gn latent`` on tiny generated data, and bad input."""

import json

import numpy as np
import pytest
import torch

from w2gn.cli import main
from w2gn.datasets import load_sklearn_digits


def _write_idx(folder, prefix, images_u8, labels):
    head = (0x803).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in images_u8.shape)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(head + images_u8.tobytes())
    lab = np.asarray(labels, np.uint8)
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes((0x801).to_bytes(4, "big") + len(lab).to_bytes(4, "big") + lab.tobytes())


@pytest.fixture(scope="module")
def tiny_domains(tmp_path_factory):
    """An IDX 'MNIST' (digits upscaled to 28x28) and an ESL-format 'USPS' (other digits at 16x16)."""
    root = tmp_path_factory.mktemp("domains")
    d28 = load_sklearn_digits(28)
    u8 = (d28.images[:, 0].numpy() * 255).round().astype(np.uint8)
    mnist = root / "mnist"
    mnist.mkdir()
    _write_idx(mnist, "train", u8[:300], d28.labels[:300])
    _write_idx(mnist, "t10k", u8[300:400], d28.labels[300:400])
    d16 = load_sklearn_digits(16)
    rows = [" ".join([str(int(y))] + [f"{2 * v - 1:.4f}" for v in img.ravel()])
            for img, y in zip(d16.images[400:560, 0].numpy(), d16.labels[400:560])]
    (root / "zip.train").write_text("\n".join(rows[:120]) + "\n")
    (root / "zip.test").write_text("\n".join(rows[120:]) + "\n")
    return root


def test_domain_adapt_end_to_end(tiny_domains, tmp_path):
    """The protocol on tiny generated domains (other scikit-learn digits as 'USPS', digits upscaled as
    'MNIST'): the 1-NN reference finds the right labels from the features (raw and the linear map well
    above the 10 % of chance in every repeat; measured 0.68-0.80), each repeat trains its own LeNet
    and a W2GN map for exactly --iterations steps, the report records the options given, and the table
    shows the summary. Shown to fail with the source test labels shuffled in run_repeat (all ~0.1)."""
    out = tmp_path / "da"
    args = ["domain-adapt", "--mnist", str(tiny_domains / "mnist"), "--usps", str(tiny_domains), "--source", "usps",
            "--repeats", "2", "--lenet-epochs", "1", "--iterations", "10", "--pretrain-iterations", "5",
            "--hidden", "16,16", "--rank", "2", "--emd-samples", "60", "--quiet", "--out-dir", str(out)]
    assert main(args) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["source_domain"].startswith("USPS") and rep["source_test"] == 40
    assert set(rep["summary"]) == {"raw", "w2gn", "discrete_ot", "sinkhorn", "linear_bures"}
    for m, s in rep["summary"].items():
        assert len(s["values"]) == 2 and all(0.0 <= v <= 1.0 for v in s["values"]), m
        assert s["std"] == pytest.approx(float(np.std(s["values"])))
    for m in ("raw", "linear_bures"):
        assert min(rep["summary"][m]["values"]) >= 0.4, (m, rep["summary"][m])
    rows = rep["repeats"]
    assert [r["seed"] for r in rows] == [0, 1] and rows[0]["lenet_loss"] != rows[1]["lenet_loss"]
    assert all(r["w2gn_last"]["iteration"] == 10 and np.isfinite(r["w2gn_last"]["loss"]) for r in rows)
    conf = rep["config"]
    assert (conf["iterations"], conf["pretrain_iterations"], conf["hidden"], conf["rank"]) == (10, 5, [16, 16], 2)
    assert all(r["lenet_epochs"] == 1 and len(r["per_class_accuracy"]["w2gn"]) == 10 for r in rows)
    assert (out / "per_class_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "table.md").read_text()
    assert "1-NN accuracy" in table and f"{100 * rep['summary']['raw']['mean']:.1f}" in table
    assert main(args) == 2  # the folder holds a run: refuse without --overwrite


def test_domain_adapt_bad_input(tmp_path, capsys):
    assert main(["domain-adapt", "--usps", str(tmp_path / "missing.h5"), "--source", "usps", "--quiet",
                 "-o", str(tmp_path / "o")]) == 2
    assert "missing.h5" in capsys.readouterr().err


def test_latent_end_to_end(tmp_path):
    from PIL import Image

    imgs = tmp_path / "faces"
    imgs.mkdir()
    g = np.random.default_rng(0)
    for i in range(40):
        a = np.zeros((20, 16, 3), np.uint8)
        a[..., i % 3] = 60 + 4 * i
        a[4:16] += g.integers(0, 40, size=(12, 16, 3), dtype=np.uint8)
        Image.fromarray(a).save(imgs / f"{i:06d}.png")
    out = tmp_path / "lat"
    args = ["latent", "--dataset", "folder", "--path", str(imgs), "--image-size", "8", "--holdout", "10",
            "--latent-dim", "3", "--ae-epochs", "2", "--ae-width", "4", "--iterations", "10", "--pretrain-iterations", "5",
            "--hidden", "8,8", "--rank", "1", "--fid-images", "3", "--density-samples", "5", "--quiet",
            "--out-dir", str(out)]
    assert main(args + ["--no-fid"]) == 0  # FID wiring: test_latent_fid_wiring (Inception is slow on a CPU)
    rep = json.loads((out / "report.json").read_text())
    assert rep["train_images"] == 30 and rep["heldout_images"] == 10
    for name in ("samples.png", "latent_pca.png", "latent_map.pt", "autoencoder.pt"):
        assert (out / name).stat().st_size > 0, name
    assert np.isfinite(rep["mean_log_density"]["heldout_latents"])
    from w2gn.applications.latent import load_autoencoder
    from w2gn.fitted_map import TransportMap

    ae = load_autoencoder(out / "autoencoder.pt")
    fitted = TransportMap.load(out / "latent_map.pt")
    z = torch.randn(4, 3)
    assert ae.decode(torch.as_tensor(fitted.forward(z))).shape == (4, 3, 8, 8)


def test_latent_bad_input(tmp_path, capsys):
    assert main(["latent", "--dataset", "folder", "--quiet", "-o", str(tmp_path / "x")]) == 2
    assert "--path" in capsys.readouterr().err
    assert main(["latent", "--dataset", "folder", "--path", str(tmp_path), "--quiet", "-o", str(tmp_path / "y")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["latent", "--image-size", "12", "--quiet", "-o", str(tmp_path / "z")]) == 2


def test_latent_fid_wiring(tmp_path, monkeypatch):
    """The FID step of the pipeline, with a stand-in feature network whose last feature says whether an
    image is made of 8-bit levels (the real PNGs are, decoded images are not): the held-out real images
    must be the reference and score (about) 0 against themselves, lower than every decoded set, which
    must each be scored against that reference under its own name.

    Shown to fail with ``ref = net(images["raw decoding Dec(Z)"])`` in run_latent (a decoded set as
    the reference), and with the real images passed as one of the scored sets."""
    from PIL import Image

    import w2gn.metrics.fid as fid_mod
    from w2gn.applications.latent import LatentConfig, run_latent
    from w2gn.metrics.fid import fid_from_features

    seen = []

    class FakeInception:
        def __init__(self, *a, **k):
            pass

        def __call__(self, images, batch_size=32, progress=False):
            levels = images * 255.0
            eight_bit = (levels - levels.round()).abs().flatten(1).max(1).values < 1e-3
            feats = torch.cat([images.mean((2, 3)), eight_bit[:, None].float()], 1).double().numpy()
            seen.append(feats)
            return feats

    monkeypatch.setattr(fid_mod, "InceptionFeatures", FakeInception)
    g = np.random.default_rng(1)
    for i in range(36):
        Image.fromarray(g.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i:03d}.png")
    cfg = LatentConfig(dataset="folder", path=str(tmp_path), image_size=8, holdout=12, latent_dim=2, ae_epochs=1, ae_width=4,
                       iterations=5, pretrain_iterations=0, hidden=[4], rank=1, fid_images=12, density_samples=0,
                       progress=False)
    rep = run_latent(cfg)
    names = ["reconstruction Dec(Enc(X))", "raw decoding Dec(Z)", "mapped Dec(grad psi(Z))", "linear map Dec(A Z + b)"]
    assert list(rep["fid"]) == names and rep["fid_images"] == 12
    ref, *scored = seen
    assert len(scored) == 4 and (ref[:, -1] == 1).all()  # the reference: the held-out real (8-bit) images
    assert all((s[:, -1] == 0).all() for s in scored)  # every scored set: decoded images
    self_fid = fid_from_features(ref, ref)
    for name, feats in zip(names, scored):
        assert rep["fid"][name] == pytest.approx(fid_from_features(ref, feats))
        assert self_fid < 1e-6 < 0.9 < rep["fid"][name], name  # the real images score lowest, as claimed


def test_linear_latent_map_matches_the_codes_mean_and_covariance():
    """The linear baseline row of the latent table: N(0, I) pushed to the Gaussian fit of the codes."""
    from w2gn.applications.latent import linear_latent_map

    g = torch.Generator().manual_seed(0)
    codes = torch.randn(4000, 3, generator=g) @ torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, -1.0, 3.0]]) + 5.0
    z = torch.randn(200_000, 3, generator=g)
    lz = linear_latent_map(codes)(z)
    torch.testing.assert_close(lz.mean(0), codes.mean(0), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(lz.T), torch.cov(codes.T), atol=0.1, rtol=0.02)
    # the Bures map is the gradient of a convex quadratic: its matrix is symmetric positive definite
    a = linear_latent_map(codes)(torch.eye(3)) - linear_latent_map(codes)(torch.zeros(1, 3))
    torch.testing.assert_close(a, a.T)
    assert torch.linalg.eigvalsh(a).min() > 0
