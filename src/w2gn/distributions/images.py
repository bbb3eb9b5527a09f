"""Random, augmented crops of a collection of images (paper, Appendix C.8).

The decoded images stay in memory as one zero-padded ``uint8`` tensor on the sampler's device.
A batch is drawn without any per-image Python: one gather of a small window around every crop, one
``affine_grid``/``grid_sample`` call that rotates, flips and crops all of them at once, and one
noise draw. :class:`PrefetchSampler` can further move the drawing to a background thread.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..errors import W2GNUserError
from .base import Sampler


class ImageCropSampler(Sampler):
    """Random ``crop x crop`` parts of a set of images, with the augmentations of C.8.

    Parameters
    ----------
    images:
        ``uint8`` tensors ``(C, H, W)`` (sizes may differ; channels may not), e.g. from
        :func:`w2gn.io.image_folders.read_images`; every image must be at least ``crop`` pixels on each side.
    crop:
        Side of the square crops in pixels (the paper: 128).
    rotation:
        Maximal rotation angle in radians; each crop is rotated by a uniform angle in
        ``[-rotation, rotation]`` (the paper: ``pi / 18``). The rotated square is taken entirely
        inside the image, so no border is filled in; an image too small for the drawn angle gets
        an unrotated crop.
    flip:
        Mirror half of the crops left-right.
    noise:
        Standard deviation of the Gaussian noise added to the pixels, in units of the ``[-1, 1]``
        pixel range (the paper: 0.01).
    name:
        Shown in error messages and :meth:`describe`.

    Samples are ``(n, C, crop, crop)`` floats in ``[-1, 1]`` (plus noise) on :attr:`device`.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        crop: int = 128,
        rotation: float = math.pi / 18,
        flip: bool = True,
        noise: float = 0.01,
        name: str = "images",
    ) -> None:
        if len(images) == 0:
            raise W2GNUserError(f"{name}: no images to sample from")
        if crop <= 0:
            raise W2GNUserError(f"crop must be a positive number of pixels, got {crop}")
        if rotation < 0 or noise < 0:
            raise W2GNUserError("rotation and noise must be >= 0")
        channels = {int(im.shape[0]) for im in images}
        if len(channels) != 1:
            raise W2GNUserError(f"{name}: images have different numbers of channels {sorted(channels)}; decode them alike")
        small = [i for i, im in enumerate(images) if min(im.shape[1], im.shape[2]) < crop]
        if small:
            im = images[small[0]]
            raise W2GNUserError(
                f"{name}: {len(small)} image(s) are smaller than the {crop}-pixel crop (e.g. #{small[0]}: "
                f"{im.shape[2]}x{im.shape[1]}); lower the crop size or raise the load size"
            )
        self.name = name
        self.crop = int(crop)
        self.rotation = float(rotation)
        self.flip = bool(flip)
        self.noise = float(noise)
        self.channels = channels.pop()
        self.event_shape = (self.channels, self.crop, self.crop)
        hmax = max(int(im.shape[1]) for im in images)
        wmax = max(int(im.shape[2]) for im in images)
        canvas = torch.zeros((len(images), self.channels, hmax, wmax), dtype=torch.uint8)
        h = hashlib.sha256()
        for i, im in enumerate(images):
            canvas[i, :, : im.shape[1], : im.shape[2]] = im
            h.update(im.numpy().tobytes() if im.device.type == "cpu" else im.cpu().numpy().tobytes())
        self._hash = h.hexdigest()[:16]
        self._canvas = canvas
        self._sizes = torch.tensor([[im.shape[1], im.shape[2]] for im in images], dtype=torch.float64)
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        #: short side the images were resized to when loaded (``None``: original size)
        self.load_size: int | None = None

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        crop: int = 128,
        channels: int | None = None,
        load_size: int | None = None,
        workers: int = 4,
        max_images: int | None = None,
        progress: bool = False,
        **augment,
    ) -> ImageCropSampler:
        """Decode the images of ``folder`` (see :func:`w2gn.io.image_folders.read_images`) and sample crops.

        ``load_size`` resizes every image so its shorter side has that many pixels first (``None``:
        original size); ``max_images`` keeps only the first images by name. ``augment``:
        ``rotation``, ``flip``, ``noise`` as in the constructor.
        """
        from ..io.image_folders import list_images, read_images

        paths = list_images(folder)
        if max_images:
            paths = paths[: int(max_images)]
        images = read_images(paths, channels, load_size, workers, progress, desc=f"reading {folder}")
        sampler = cls(images, crop=crop, name=str(folder), **augment)
        sampler.paths = paths
        sampler.load_size = load_size
        return sampler

    def __len__(self) -> int:
        return int(self._canvas.shape[0])

    def _moved(self) -> None:
        self._canvas = self._canvas.to(self.device)
        self._sizes = self._sizes.to(self.device)

    def images(self, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
        """The stored images (``uint8``, original size after loading), all or ``indices``."""
        idx = range(len(self)) if indices is None else indices
        out = []
        for i in idx:
            h, w = (int(v) for v in self._sizes[i].tolist())
            out.append(self._canvas[i, :, :h, :w])
        return out

    def sample(self, n: int, generator: torch.Generator | None = None, augment: bool = True) -> torch.Tensor:
        """``n`` random crops ``(n, C, crop, crop)``; ``augment=False`` gives plain crops (no rotation,
        flip or noise), e.g. for evaluation."""
        dev, c = self.device, self.crop
        f64 = dict(device=dev, dtype=torch.float64)
        idx = torch.randint(len(self), (n,), generator=generator, device=dev)
        u = torch.rand((n, 4), generator=generator, **f64)
        rot = self.rotation if augment else 0.0
        angle = (2.0 * u[:, 0] - 1.0) * rot
        flipped = (u[:, 1] < 0.5) if (augment and self.flip) else torch.zeros(n, dtype=torch.bool, device=dev)
        sign = 1.0 - 2.0 * flipped.to(torch.float64)
        hw = self._sizes[idx]  # (n, 2): height, width of each chosen image
        # half side of the axis-aligned box holding the rotated square; too big -> no rotation
        half = 0.5 * c * (angle.cos().abs() + angle.sin().abs())
        too_big = 2.0 * half > hw.min(dim=1).values
        angle = torch.where(too_big, torch.zeros_like(angle), angle)
        half = torch.where(too_big, torch.full_like(half, 0.5 * c), half)
        cy = half + u[:, 2] * (hw[:, 0] - 2.0 * half)  # continuous pixel coordinates of the centre
        cx = half + u[:, 3] * (hw[:, 1] - 2.0 * half)
        # unrotated crops start on whole pixels: exact copies of the stored pixels, no interpolation blur
        straight = angle == 0
        cy = torch.where(straight, (cy - 0.5 * c).round() + 0.5 * c, cy)
        cx = torch.where(straight, (cx - 0.5 * c).round() + 0.5 * c, cx)
        # gather a small window around every crop instead of converting whole images to floats
        hmax, wmax = self._canvas.shape[2], self._canvas.shape[3]
        win = math.ceil(c * (math.cos(rot) + math.sin(rot))) + 2 if rot else c + 2
        win_h, win_w = min(win, hmax), min(win, wmax)
        oy = (cy - 0.5 * win_h).floor().clamp(0, hmax - win_h).long()
        ox = (cx - 0.5 * win_w).floor().clamp(0, wmax - win_w).long()
        rows = oy[:, None] + torch.arange(win_h, device=dev)
        cols = ox[:, None] + torch.arange(win_w, device=dev)
        window = self._canvas[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, C)
        window = window.permute(0, 3, 1, 2).to(self.dtype)
        # output pixel (u, v) in [-1, 1]^2 -> window pixel coordinates: centre + R(angle) diag(sign, 1) (c/2) (u, v)
        cos, sin = angle.cos(), angle.sin()
        kx, ky = c / win_w, c / win_h
        theta = torch.stack(
            [
                torch.stack([kx * sign * cos, -kx * sin, 2.0 * (cx - ox) / win_w - 1.0], dim=1),
                torch.stack([ky * sign * sin, ky * cos, 2.0 * (cy - oy) / win_h - 1.0], dim=1),
            ],
            dim=1,
        ).to(self.dtype)
        grid = F.affine_grid(theta, [n, self.channels, c, c], align_corners=False)
        out = F.grid_sample(window, grid, mode="bilinear", padding_mode="border", align_corners=False)
        out = out / 127.5 - 1.0
        if augment and self.noise:
            out = out + self.noise * torch.randn(out.shape, generator=generator, device=dev, dtype=self.dtype)
        return out

    def describe(self) -> dict:
        return {**super().describe(), "name": self.name, "images": len(self), "sha256": self._hash,
                "crop": self.crop, "rotation": self.rotation, "flip": self.flip, "noise": self.noise}


def _batch_seed(seed: int, index: int) -> int:
    """Seed of batch ``index`` of a :class:`PrefetchSampler` stream seeded with ``seed``."""
    # distinct for every (seed, index) with index < 2**32, and inside the 64-bit seed range
    return (int(seed) % 2**31) * 2**32 + int(index) % 2**32


class PrefetchSampler(Sampler):
    """Draws batches of ``batch_size`` from ``sampler`` in a background thread, ``depth`` ahead.

    PyTorch releases the GIL inside its kernels, so the next batches are cut while the training
    step runs. Batch ``k`` of the stream is drawn with a generator seeded from ``(seed, k)``, so
    the stream is repeatable and can restart at any batch: :meth:`state_dict` records how many
    batches were served and :meth:`load_state_dict` continues after them (a resumed training run
    then sees the batches the uninterrupted run would have seen). Requests of another size are
    served directly with the caller's generator and do not count. Call :meth:`close` (or use it as
    a context manager) to stop the thread.
    """

    def __init__(self, sampler: Sampler, batch_size: int, depth: int = 2, seed: int = 0) -> None:
        self.base = sampler
        self.batch_size = int(batch_size)
        self.depth = max(1, int(depth))
        self.seed = int(seed)
        self.event_shape = tuple(sampler.event_shape)
        self.device, self.dtype = sampler.device, sampler.dtype
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        #: batches of ``batch_size`` handed out so far (the position in the stream)
        self.served = 0

    def _moved(self) -> None:
        self.close()
        self.base.to(self.device, self.dtype)

    def state_dict(self) -> dict[str, int]:
        """The position in the batch stream (saved in training checkpoints)."""
        return {"batches": int(self.served)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue the stream after ``state["batches"]`` batches (drops the batches cut ahead)."""
        self.close()
        self.served = int(state.get("batches", 0))

    def _start(self) -> None:
        self._stop.clear()
        self._queue = queue.Queue(maxsize=self.depth)
        gen = torch.Generator(device=self.device)
        first = self.served

        def work(q: queue.Queue, stop: threading.Event) -> None:
            try:
                index = first
                while not stop.is_set():
                    gen.manual_seed(_batch_seed(self.seed, index))
                    batch = self.base.sample(self.batch_size, gen)
                    index += 1
                    while not stop.is_set():
                        try:
                            q.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as exc:  # re-raised in the consumer
                self._error = exc
                q.put(None)

        self._thread = threading.Thread(target=work, args=(self._queue, self._stop), daemon=True, name="w2gn-prefetch")
        self._thread.start()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        if n != self.batch_size:
            return self.base.sample(n, generator)
        if self._thread is None:
            self._start()
        assert self._queue is not None
        batch = self._queue.get()
        if batch is None:
            raise self._error  # type: ignore[misc]
        self.served += 1
        return batch

    def close(self) -> None:
        """Stop the background thread (it is restarted on the next :meth:`sample`)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None
            self._queue = None

    def __enter__(self) -> PrefetchSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        return {**self.base.describe(), "prefetch": self.depth}
