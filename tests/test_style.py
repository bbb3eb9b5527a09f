"""Style transfer (Section 5.3, C.8): crop sampler, training step, style-apply round trip, bad inputs."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from w2gn.applications.style import cycle_error, evaluate, style_potential, style_solver, train_style_transfer, translate
from w2gn.cli import main
from w2gn.distributions.images import ImageCropSampler, PrefetchSampler
from w2gn.errors import W2GNUserError
from w2gn.fitted_map import TransportMap
from w2gn.io.image_folders import list_images, read_images, to_unit
from w2gn.metrics.images import image_distances
from w2gn.networks import ConvICNN


def _write_images(folder, n, size=(20, 24), base=60, mode="RGB", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size[0], size[1], 3) if mode == "RGB" else size
        arr = (rng.random(shape) * 60 + base).astype(np.uint8)
        Image.fromarray(arr, mode).save(folder / f"im{i}.png")
    return folder


def _scaling_map(forward_scale: float, inverse_scale: float) -> TransportMap:
    """Exact ground truth: with the network's head zeroed, psi = beta/2 ||x||^2 and grad psi = beta x."""

    def pot(beta):
        net = ConvICNN(channels=3, features=2, strided_layers=2, dense=(2,), strong_convexity=beta, seed=0)
        with torch.no_grad():
            net.convex_dense[-1].weight.zero_()
        return net

    return TransportMap(pot(forward_scale), pot(inverse_scale), info={"style": {"load_size": None}})


# ---------------------------------------------------------------------------------- the sampler


def _find(crop, image):
    c = crop.shape[-1]
    for i in range(image.shape[1] - c + 1):
        for j in range(image.shape[2] - c + 1):
            if torch.allclose(image[:, i : i + c, j : j + c], crop, atol=1e-5):
                return True
    return False


def test_plain_crops_are_exact_image_parts_and_flips_mirror_them():
    img = torch.randint(0, 256, (3, 18, 22), dtype=torch.uint8)
    u = to_unit(img)
    plain = ImageCropSampler([img], crop=8, rotation=0, flip=False, noise=0)
    x = plain.sample(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 8, 8) and all(_find(c, u) for c in x)
    flipped = ImageCropSampler([img], crop=8, rotation=0, flip=True, noise=0).sample(12, torch.Generator().manual_seed(1))
    kinds = [(_find(c, u), _find(c.flip(-1), u)) for c in flipped]
    assert all(a or b for a, b in kinds) and any(b and not a for a, b in kinds)
    # augment=False ignores rotation, flips and noise
    aug = ImageCropSampler([img], crop=8)
    assert all(_find(c, u) for c in aug.sample(4, torch.Generator().manual_seed(2), augment=False))


def test_rotated_crops_stay_inside_each_image_and_noise_has_the_asked_scale():
    # a small constant image padded into a canvas shared with a larger one: no padding may leak in
    small = torch.full((3, 20, 20), 200, dtype=torch.uint8)
    large = torch.zeros((3, 64, 80), dtype=torch.uint8)
    s = ImageCropSampler([small, large], crop=16, rotation=math.pi / 18, flip=True, noise=0.0)
    g = torch.Generator().manual_seed(0)
    x = s.sample(200, g)
    bright = x.flatten(1).mean(1) > 0
    assert bright.any() and (~bright).any()
    assert torch.allclose(x[bright], torch.full_like(x[bright], 200 / 127.5 - 1), atol=1e-5)
    noisy = ImageCropSampler([small], crop=16, noise=0.01).sample(50, g)
    assert abs(float((noisy - (200 / 127.5 - 1)).std()) - 0.01) < 0.001
    # a rotated crop differs from every straight crop (the rotation is really applied)
    ramp = (torch.arange(40).repeat(40, 1) * 6).to(torch.uint8).expand(3, 40, 40).contiguous()
    rot = ImageCropSampler([ramp], crop=16, rotation=math.pi / 18, flip=False, noise=0).sample(8, g)
    vertical_change = (rot[:, :, 1:, :] - rot[:, :, :-1, :]).abs().amax(dim=(1, 2, 3))
    assert (vertical_change > 1e-3).any()


def test_sampler_is_repeatable_and_prefetch_serves_the_same_stream():
    imgs = [torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8) for _ in range(5)]
    s = ImageCropSampler(imgs, crop=12)
    a = s.sample(4, torch.Generator().manual_seed(5))
    assert torch.equal(a, s.sample(4, torch.Generator().manual_seed(5)))
    with PrefetchSampler(s, 4, depth=2, seed=9) as p1, PrefetchSampler(s, 4, depth=2, seed=9) as p2:
        assert torch.equal(p1.sample(4), p2.sample(4)) and torch.equal(p1.sample(4), p2.sample(4))
        assert p1.sample(3).shape == (3, 3, 12, 12)  # other sizes: served directly


def test_prefetch_stream_continues_after_a_saved_position():
    imgs = [torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8) for _ in range(5)]
    s = ImageCropSampler(imgs, crop=12)
    with PrefetchSampler(s, 4, depth=2, seed=9) as whole:
        stream = [whole.sample(4) for _ in range(5)]
        assert whole.state_dict() == {"batches": 5}
    assert not torch.equal(stream[0], stream[1])
    with PrefetchSampler(s, 4, depth=2, seed=9) as resumed:
        resumed.sample(4)  # batches cut ahead by the thread are dropped by load_state_dict
        resumed.load_state_dict({"batches": 3})
        assert torch.equal(resumed.sample(4), stream[3]) and torch.equal(resumed.sample(4), stream[4])


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(W2GNUserError, match="is not a folder"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(W2GNUserError, match="no image files.*empty"):
        list_images(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("not an image")
    with pytest.raises(W2GNUserError, match="no image files.*notes.txt"):
        list_images(tmp_path / "text")
    bad = _write_images(tmp_path / "bad", 2)
    (bad / "broken.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(W2GNUserError, match="broken.jpg: cannot be decoded"):
        ImageCropSampler.from_folder(bad, crop=8)
    small = _write_images(tmp_path / "small", 2, size=(6, 30))
    with pytest.raises(W2GNUserError, match="smaller than the 8-pixel crop"):
        ImageCropSampler.from_folder(small, crop=8)
    # files of other kinds beside the images are skipped
    ok = _write_images(tmp_path / "ok", 3)
    (ok / "SOURCE.md").write_text("about the data")
    assert len(ImageCropSampler.from_folder(ok, crop=8)) == 3


def test_grey_and_colour_decoding(tmp_path):
    grey = _write_images(tmp_path / "grey", 2, mode="L")
    assert {t.shape[0] for t in read_images(list_images(grey))} == {1}
    assert {t.shape[0] for t in read_images(list_images(grey), channels=3)} == {3}
    mixed = _write_images(tmp_path / "mixed", 2, mode="L")
    _write_images(tmp_path / "mixed2", 1)
    (tmp_path / "mixed2" / "im0.png").rename(mixed / "colour.png")
    assert {t.shape[0] for t in read_images(list_images(mixed))} == {3}


# ------------------------------------------------------------------------------ training and maps


def test_one_training_step_changes_both_networks_and_keeps_them_projected():
    g = torch.Generator().manual_seed(0)
    a = ImageCropSampler([torch.randint(0, 120, (3, 20, 20), dtype=torch.uint8, generator=g) for _ in range(3)], crop=12)
    b = ImageCropSampler([torch.randint(100, 256, (3, 20, 20), dtype=torch.uint8, generator=g) for _ in range(3)], crop=12)
    pot = style_potential(3, features=4, strided_layers=3, seed=0)
    before = {k: v.clone() for k, v in pot.state_dict().items()}
    # a large step, so that some constrained weights would turn negative without the projection
    solver = style_solver(iterations=1, pretrain_iterations=0, batch_size=4, lr=0.05, progress=False, log_every=1)
    fitted = solver.fit(a, b, potential=pot)
    for net in (fitted.forward_potential, fitted.inverse_potential):
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        assert len(changed) > len(before) // 2
        constrained = net.constrained_parameters()
        assert all((w >= 0).all() for w in constrained)
        assert any((w == 0).any() for w in constrained)  # clamped, not merely positive
    assert solver.config.cycle_x and solver.config.cycle_y and solver.config.lambda_cycle == 35000.0
    assert math.isfinite(solver.history[-1]["cycle_x"]) and solver.history[-1]["cycle_x"] > 0


def test_pretraining_fits_the_identity_and_copies_the_pretrained_network_to_the_conjugate():
    g = torch.Generator().manual_seed(0)
    a = ImageCropSampler([torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=g) for _ in range(2)], crop=12)
    pot = style_potential(3, features=4, strided_layers=3, seed=0, identity_init=None)  # random start
    init = {k: v.clone() for k, v in pot.state_dict().items()}
    x = a.sample(8, torch.Generator().manual_seed(1), augment=False)
    err0 = float((pot.gradient(x, create_graph=False) - x).square().mean())
    solver = style_solver(pretrain_iterations=30, pretrain_lr=3e-3, batch_size=8, progress=False)
    solver.setup(a, a, torch.Generator().manual_seed(0), potential=pot)
    theta, omega = solver.theta.state_dict(), solver.omega.state_dict()
    assert all(torch.equal(theta[k], omega[k]) for k in theta)  # psi_omega starts as the pretrained psi_theta
    assert any(not torch.equal(theta[k], init[k]) for k in theta)
    err = float((solver.theta.gradient(x, create_graph=False) - x).square().mean())
    assert err < 0.5 * err0


def test_resumed_style_training_equals_the_uninterrupted_run(tmp_path):
    g = torch.Generator().manual_seed(0)
    a = ImageCropSampler([torch.randint(0, 120, (3, 20, 20), dtype=torch.uint8, generator=g) for _ in range(3)], crop=12)
    b = ImageCropSampler([torch.randint(100, 256, (3, 20, 20), dtype=torch.uint8, generator=g) for _ in range(3)], crop=12)
    opts = dict(network={"features": 4, "strided_layers": 3}, prefetch=2, grid_size=2, pretrain_iterations=3, batch_size=2,
                lr=1e-2, log_every=1, progress=False, checkpoint_every=3)
    whole, _ = train_style_transfer(a, b, tmp_path / "whole", iterations=6, checkpoint_dir=tmp_path / "c1", **opts)
    train_style_transfer(a, b, tmp_path / "part", iterations=3, checkpoint_dir=tmp_path / "c2", **opts)
    resumed, solver = train_style_transfer(a, b, tmp_path / "part", iterations=6, checkpoint_dir=tmp_path / "c2",
                                           resume=True, **opts)
    assert solver.resumed_from is not None and solver.iteration == 6
    for net_w, net_r in ((whole.forward_potential, resumed.forward_potential),
                         (whole.inverse_potential, resumed.inverse_potential)):
        sw, sr = net_w.state_dict(), net_r.state_dict()
        assert all(torch.equal(sw[k], sr[k]) for k in sw)  # same batches, Adam states and steps
    history = json.loads((tmp_path / "part" / "history.json").read_text())
    assert [int(r["iteration"]) for r in history] == [1, 2, 3, 4, 5, 6]


def test_cycle_error_and_evaluation_against_exact_maps():
    x = torch.rand(6, 3, 10, 10) * 2 - 1
    exact = _scaling_map(0.5, 2.0)  # grad psi_omega undoes grad psi_theta
    assert cycle_error(exact, x) < 1e-10 and cycle_error(exact, x, inverse=True) < 1e-10
    half = _scaling_map(0.5, 1.0)  # the cycle returns x / 2: error = ||x / 2||^2 per pixel
    want = float((0.5 * x).square().sum(1).mean())
    assert cycle_error(half, x) == pytest.approx(want, rel=1e-5)
    m = evaluate(exact, x, 0.5 * x)
    assert m["a_to_b"]["translated"]["sw_pixels"] < 1e-6 < m["a_to_b"]["untranslated"]["sw_pixels"]
    assert m["b_to_a"]["translated"]["sw_small"] < 1e-6


def test_evaluation_adds_fid_from_a_feature_extractor():
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    seen = []

    def features(imgs):  # mean colour as a 3-d "feature": FID is then a colour-mean + covariance distance
        seen.append(imgs)
        return imgs.mean((2, 3)).double().numpy()

    m = evaluate(_scaling_map(0.5, 2.0), x, x.clone(), fid_features=features)
    assert len(seen) == 4 and all(float(s.min()) >= -0.5 and float(s.max()) <= 1.5 for s in seen)  # [0, 1] + map range
    assert m["a_to_b"]["untranslated"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert m["a_to_b"]["translated"]["fid"] > 1e-3 and m["b_to_a"]["translated"]["fid"] > 1e-3
    assert "fid" not in evaluate(_scaling_map(0.5, 2.0), x, x)["a_to_b"]["translated"]


def test_image_distances_measure_a_colour_shift():
    x = torch.rand(50, 3, 16, 16) * 2 - 1
    d0 = image_distances(x, x)
    assert d0["sw_pixels"] < 1e-9 and d0["sw_small"] < 1e-9
    d = image_distances(x, x + 0.3)
    assert d["sw_small"] == pytest.approx(0.3, rel=0.03)  # shift v = 0.3 * ones: SW2^2 = E<theta, v>^2 = ||v||^2 / D
    assert d["sw_colour"] == pytest.approx(0.3, abs=0.03)


def test_translate_handles_any_size_and_checks_channels():
    fitted = _scaling_map(0.5, 2.0)
    imgs = [torch.randint(0, 256, (3, 9, 13), dtype=torch.uint8), torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8)]
    out = translate(fitted, imgs)
    assert [o.shape for o in out] == [(3, 9, 13), (3, 20, 20)]
    assert torch.allclose(out[1], 0.5 * to_unit(imgs[1]), atol=1e-6)
    with pytest.raises(W2GNUserError, match="3-channel"):
        translate(fitted, [torch.zeros(1, 8, 8)])


# ---------------------------------------------------------------------------------------- the CLI


def test_style_apply_round_trip_is_exact_for_an_exact_map(tmp_path):
    src = _write_images(tmp_path / "A", 3, size=(17, 23))
    fitted = _scaling_map(0.5, 2.0)
    fitted.save(tmp_path / "map.pt")
    assert main(["style-apply", str(tmp_path / "map.pt"), str(src), "-o", str(tmp_path / "B"), "--quiet"]) == 0
    assert main(["style-apply", str(tmp_path / "map.pt"), str(tmp_path / "B"), "-o", str(tmp_path / "A2"),
                 "--inverse", "--quiet"]) == 0
    for i in range(3):
        orig = np.asarray(Image.open(src / f"im{i}.png"), dtype=float)
        there = np.asarray(Image.open(tmp_path / "B" / f"im{i}.png"), dtype=float)
        back = np.asarray(Image.open(tmp_path / "A2" / f"im{i}.png"), dtype=float)
        assert there.shape == orig.shape == back.shape
        assert np.abs(there - ((orig / 127.5 - 1) * 0.5 + 1) * 127.5).max() <= 0.51  # halfway to grey
        assert np.abs(back - orig).max() <= 2.0  # two 8-bit roundings


def test_style_transfer_command_trains_saves_and_applies(tmp_path, capsys):
    a = _write_images(tmp_path / "A", 4, base=40, seed=1)
    b = _write_images(tmp_path / "B", 4, base=160, seed=2)
    run = tmp_path / "run"
    args = ["style-transfer", str(a), str(b), "-o", str(run), "--crop", "12", "--load-size", "0", "--features", "3",
            "--strided-layers", "3", "--iterations", "2", "--pretrain-iterations", "2", "--log-every", "1",
            "--checkpoint-every", "1", "--eval-crops", "6", "--grid-size", "2", "--batch-size", "2", "--quiet"]
    assert main(args) == 0
    for name in ["map.pt", "history.json", "metrics.json", "metrics.md", "grid_000001.png", "grid_final.png"]:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"a_to_b", "b_to_a"} and metrics["a_to_b"]["cycle_error_per_pixel"] >= 0
    fitted = TransportMap.load(run / "map.pt")
    assert fitted.info["style"]["crop"] == 12 and fitted.info["iterations"] == 2
    # refuses to overwrite a run; applies to whole images of another size
    assert main(args) == 2 and "already holds a map.pt" in capsys.readouterr().err
    # continues from the training checkpoint to a longer run
    assert (run / "checkpoints").is_dir()
    assert main([*args[:args.index("--iterations")], "--iterations", "3", *args[args.index("--iterations") + 2:],
                 "--resume"]) == 0
    assert TransportMap.load(run / "map.pt").info["iterations"] == 3
    assert len(json.loads((run / "history.json").read_text())) == 3
    assert main(["style-apply", str(run / "map.pt"), str(a / "im0.png"), "-o", str(tmp_path / "out"), "--cycle", "--quiet"]) == 0
    assert Image.open(tmp_path / "out" / "im0.png").size == (24, 20)
    assert (tmp_path / "out" / "im0_cycle.png").is_file()


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys):
    a = _write_images(tmp_path / "A", 2)
    grey = _write_images(tmp_path / "G", 2, mode="L")
    (tmp_path / "E").mkdir()
    base = ["--crop", "8", "--load-size", "0", "--iterations", "1", "--quiet", "-o"]
    assert main(["style-transfer", str(a), str(tmp_path / "E"), *base, str(tmp_path / "r1")]) == 2
    assert "contains no image files" in capsys.readouterr().err
    assert main(["style-transfer", str(a), str(grey), *base, str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "3-channel" in err and "1-channel" in err and "--channels" in err
    _scaling_map(0.5, 2.0).save(tmp_path / "map.pt")
    assert main(["style-apply", str(tmp_path / "map.pt"), str(grey), "-o", str(tmp_path / "o")]) == 2
    assert "1 channel(s) but the map was trained on 3-channel" in capsys.readouterr().err
    (tmp_path / "fake.pt").write_bytes(b"garbage")
    assert main(["style-apply", str(tmp_path / "fake.pt"), str(a), "-o", str(tmp_path / "o")]) == 2
    assert "cannot be read as a w2gn map" in capsys.readouterr().err


@pytest.mark.slow  # about 15 s of CPU time with one free core; minutes on a busy machine
def test_training_moves_colours_towards_a_known_colour_cast():
    """Ground truth: B is A with a colour cast, so the fitted A -> B map must shift colours towards B."""
    g = torch.Generator().manual_seed(0)
    base = [torch.randint(40, 200, (3, 24, 24), dtype=torch.uint8, generator=g) for _ in range(6)]
    cast = torch.tensor([0.0, -35.0, 50.0]).view(3, 1, 1)
    a = ImageCropSampler(base, crop=12, rotation=0.1)
    b = ImageCropSampler([(im.float() + cast).clamp(0, 255).to(torch.uint8) for im in base[::-1]], crop=12, rotation=0.1)
    fitted, solver = train_style_transfer(a, b, None, network={"features": 4, "strided_layers": 3}, iterations=120,
                                          pretrain_iterations=50, lr=1e-3, log_every=120, progress=False, prefetch=0)
    e = torch.Generator().manual_seed(1)
    m = evaluate(fitted, a.sample(100, e, augment=False), b.sample(100, e, augment=False))
    for direction in ("a_to_b", "b_to_a"):
        assert m[direction]["translated"]["sw_colour"] < 0.6 * m[direction]["untranslated"]["sw_colour"]
        assert m[direction]["cycle_error_per_pixel"] < 1e-2
