"""Multi-process training of one map: ``torchrun --nproc_per_node=N -m w2gn fit ...``.

Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``) every
process builds the same networks from the same seed and runs the same identity pretraining; both
potentials are then wrapped together in one :class:`~torch.nn.parallel.DistributedDataParallel`
(NCCL on GPUs, gloo on CPUs), which starts every rank from rank 0's weights and averages the
gradients of each step. Each rank draws ``batch_size / world_size`` samples per step from its own
seed stream (:func:`rank_seed`), so N processes train on a global batch of ``batch_size`` samples:
the same optimisation as one process on the ranks' batches concatenated (all terms of the loss are
batch means), only spread out. Since every rank applies the same averaged gradient with the same
Adam state, the weights and the convexity projection stay identical on all ranks. Only rank 0
shows the progress bar, runs the callback (its stop decision is broadcast) and writes outputs.

Checkpoints and resume: rank 0 decides when a checkpoint is due (its decision travels with each
step's all-reduced statistics), every rank then takes part in capturing it -- the ranks' RNG states,
each rank's own sampling stream included, are gathered into it -- and rank 0 writes it. On
``--resume`` rank 0 reads the newest valid checkpoint and broadcasts it; every rank restores the same
weights, optimisers and counters, and its own RNG states, so a killed run continues bit for bit. A
checkpoint can only be resumed by as many processes as wrote it.

Without ``torchrun`` (or with ``WORLD_SIZE=1``) nothing here changes plain single-process training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .distributions import Sampler
from .errors import W2GNUserError
from .solvers.base import Callback
from .solvers.w2gn import W2GNConfig, W2GNSolver


@dataclasses.dataclass(frozen=True)
class DistContext:
    """Where this process stands in a multi-process run (``world_size == 1``: a plain run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, shows progress and writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_context() -> DistContext:
    """The rank/world size ``torchrun`` put in the environment (a plain 1-process context without it)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise W2GNUserError(f"malformed torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from exc
    return DistContext(rank=rank, world_size=world, local_rank=local)


def rank_seed(seed: int, rank: int) -> int:
    """Seed of rank ``rank``'s sampling stream: distinct per rank, reproducible from ``seed``."""
    return (int(seed) * 1_000_003 + 7_919 * (int(rank) + 1)) % (2**63 - 1)


@contextlib.contextmanager
def session(device: str = "cpu") -> Iterator[tuple[DistContext, str]]:
    """Join the ``torchrun`` process group if there is one; yield ``(context, this rank's device)``.

    ``device="cuda"`` becomes ``cuda:LOCAL_RANK`` with the NCCL backend; CPU runs use gloo. The
    process group is destroyed on exit. Without ``torchrun`` this yields a 1-process context and
    ``device`` unchanged.
    """
    ctx = env_context()
    if not ctx.enabled:
        yield ctx, device
        return
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise W2GNUserError("device 'cuda' requested but PyTorch sees no CUDA GPU; use --device cpu")
        torch.cuda.set_device(ctx.local_rank)
        device, backend = f"cuda:{ctx.local_rank}", "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    try:
        yield dataclasses.replace(ctx, backend=backend), device
        # rank 0 still saves the map when the others are done: tear down together, so that no rank's gloo
        # threads see a peer's connection close under them (seen once as an abort of rank 0 at exit)
        dist.barrier()
    finally:
        dist.destroy_process_group()


class _LossModule(nn.Module):
    """Both potentials as one module whose forward is the W2GN loss, for DDP to wrap."""

    def __init__(self, solver: DistributedW2GNSolver) -> None:
        super().__init__()
        self.theta = solver.theta
        self.omega = solver.omega
        self._solver = [solver]  # a list: not registered as a submodule

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        return W2GNSolver.loss(self._solver[0], x, y)


class DistributedW2GNSolver(W2GNSolver):
    """:class:`~w2gn.solvers.W2GNSolver` trained by ``context.world_size`` processes with DDP.

    ``batch_size`` is the global batch per step and must be divisible by the world size. Use it
    inside :func:`session`; :func:`make_solver` picks it under ``torchrun``.
    """

    #: each rank draws ``batch_size / world_size`` samples (the subclass splitting the objective does not)
    splits_batch = True

    def __init__(self, config: W2GNConfig | None = None, *, context: DistContext, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.context = context
        if self.config.compile:
            raise W2GNUserError("compile is not supported with several processes yet; drop it under torchrun")
        if self.splits_batch and self.config.batch_size % context.world_size:
            raise W2GNUserError(f"batch size {self.config.batch_size} is not divisible by the {context.world_size} "
                                "processes; each rank draws batch_size / nproc samples")
        # every rank knows whether rank 0 writes checkpoints: all of them take part in capturing one
        self.shared_checkpoint_dir = getattr(self.config, "checkpoint_dir", None)
        self._rank_rng: dict[str, Any] | None = None
        if not context.is_main:
            # rank 0 alone shows progress and writes checkpoints (the weights are the same on every rank)
            quiet = {"progress": False}
            if hasattr(self.config, "checkpoint_dir"):
                quiet["checkpoint_dir"] = None
            self.config = dataclasses.replace(self.config, **quiet)

    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, **kwargs: Any) -> None:
        super().setup(p, q, generator, **kwargs)
        # DDP broadcasts rank 0's weights: identical starts even if pretraining were not bit-identical
        dev = next(self.theta.parameters()).device
        ids = [dev.index] if dev.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(_LossModule(self), device_ids=ids)
        self.rank_generator = torch.Generator(device=dev).manual_seed(rank_seed(self.config.seed, self.context.rank))

    @property
    def sampling_streams(self) -> int:
        """How many sampling streams the run draws from (one per rank when the batch is split)."""
        return self.context.world_size if self.splits_batch else 1

    # ------------------------------------------------------------------------------- resume
    def _resume_state(self) -> tuple[Path, dict[str, Any]] | None:
        """Rank 0 reads the newest valid checkpoint and sends it to every rank, so all restore the same state
        (the other ranks need no access to the folder). A refusal on rank 0 stops every rank."""
        box: list[Any] = [None]
        if self.context.is_main:
            try:
                found = super()._resume_state()
                box = [("ok", None if found is None else (str(found[0]), found[1]))]
            except W2GNUserError as exc:
                box = [("error", str(exc))]
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise W2GNUserError(value if self.context.is_main else f"rank 0 cannot resume: {value}")
        return None if value is None else (Path(value[0]), value[1])

    def extra_state(self) -> dict[str, Any]:
        """Adds every rank's RNG states (its own sampling stream included), gathered from all ranks: a
        checkpoint or last-good snapshot is captured by every rank at the same iteration."""
        from . import checkpoint as ckpt

        state = super().extra_state()
        gen = getattr(self, "rank_generator", None)
        if gen is None:
            return state
        gathered: list[Any] = [None] * self.context.world_size
        dist.all_gather_object(gathered, ckpt.rng_state(gen))
        return {**state, "ranks": {"world_size": self.context.world_size, "rng": gathered}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        ranks = state.get("ranks")
        if ranks is None or getattr(self, "rank_generator", None) is None:
            return
        mine = ranks["rng"][self.context.rank]
        self.rank_generator.set_state(mine["generator"])
        # restore() puts rank 0's global RNG states on every rank after this; run() puts this rank's back
        self._rank_rng = mine

    def draw(self, p: Sampler, q: Sampler, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.config.batch_size // self.context.world_size
        return p.sample(n, self.rank_generator), q.sample(n, self.rank_generator)

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        # through DDP, so that the backward of this loss averages the gradients over the ranks
        return self.ddp(x, y)

    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        out = super().step(iteration, p, q, generator)
        # the statistics (loss included) averaged over ranks: all ranks see the same values, so a
        # divergence stops every rank at the same iteration instead of leaving peers waiting
        keys = list(out)
        # rank 0's "a checkpoint is due after this step" travels with the statistics (its clock decides
        # time-based checkpoints), so that every rank takes part in capturing it
        due = self._checkpoint_due(iteration + 1)
        flag = torch.tensor([due], dtype=torch.float64, device=out["loss"].device)
        stats = torch.cat([torch.stack([out[k].to(torch.float64) for k in keys]), flag])
        dist.all_reduce(stats)
        self._agree_checkpoint(iteration + 1, float(stats[-1]))
        stats = stats[:-1] / self.context.world_size
        return dict(zip(keys, stats))

    def _checkpoint_due(self, iteration: int) -> float:
        """1.0 if rank 0 will write a checkpoint after ``iteration`` (its clock decides), else 0.0: a flag that
        travels with the step's summed statistics, so that every rank takes part in capturing it."""
        shared = self._checkpoints if isinstance(self._checkpoints, _SharedCheckpoints) else None
        return 1.0 if shared is not None and shared.due_on_rank0(iteration) else 0.0

    def _agree_checkpoint(self, iteration: int, summed_flag: float) -> None:
        """Every rank learns rank 0's decision from the summed :meth:`_checkpoint_due` flags."""
        if isinstance(self._checkpoints, _SharedCheckpoints):
            self._checkpoints.due_at = iteration if summed_flag > 0 else None

    def run(self, p: Sampler, q: Sampler, gen: torch.Generator, callback: Callback | None = None) -> None:
        ctx = self.context

        def on_log(iteration, fitted, row) -> bool | str:
            answer = callback(iteration, fitted, row) if (callback is not None and ctx.is_main) else None
            # rank 0's horizon travels with its stop flag: a time budget (TimeBudget) re-aims the end of the
            # run and the learning-rate schedule on rank 0, and every rank must follow the same schedule
            budget = self.horizon_reason == "time budget"
            flag = torch.tensor([1.0 if answer else 0.0, float(self.horizon), 1.0 if budget else 0.0],
                                dtype=torch.float64, device=next(self.theta.parameters()).device)
            dist.broadcast(flag, src=0)
            if not ctx.is_main:
                self.set_horizon(int(flag[1]), "time budget" if flag[2] > 0 else "iterations")
            # rank 0 keeps its callback's answer (a stop reason); the others only learn that it stopped
            return (answer or True) if bool(flag[0]) else False

        from . import checkpoint as ckpt

        if self.shared_checkpoint_dir and not isinstance(self._checkpoints, _SharedCheckpoints):
            self._checkpoints = _SharedCheckpoints(self._checkpoints, int(self.config.checkpoint_every))
        if self._rank_rng is not None:  # resumed: this rank's own global RNG states (restore() set rank 0's)
            ckpt.set_rng_state(self._rank_rng, self.rank_generator)
            self._rank_rng = None
        super().run(p, q, gen, on_log)


#: ``"READ_FD,WRITE_FD"``: the pipe ends a rank started by ``w2gn fit --processes 2`` signals its peer with
#: (:class:`LocalExchange`); set by :func:`w2gn.cli.processes.launch`
EXCHANGE_FDS = "W2GN_EXCHANGE_FDS"


class LocalExchange:
    """Sum a tensor across the 2 ranks of one machine through shared memory, with a pipe to signal.

    gloo's all-reduce costs about 2 ms per call on loopback TCP whatever the size (measured on the
    2-core VM: 1.8 ms for 1,000 floats, 2.0 ms for 130,000), a tenth of a D = 16 step; this costs two
    1-byte pipe messages and two copies. Rank 0 creates the shared file and sends its path once over
    the process group, both map it (``torch.from_file(shared=True)``), and rank 0 unlinks it at once,
    so nothing is left behind, even after a crash. Slots alternate between steps (double
    buffering), so a rank never overwrites what its peer may still be reading. ``a + b == b + a`` in
    IEEE arithmetic, so both ranks get bit-identical sums. A peer that exits closes its pipe end:
    the next read sees end-of-file and raises instead of waiting forever.
    """

    def __init__(self, rank: int, read_fd: int, write_fd: int) -> None:
        self.rank, self.read_fd, self.write_fd = rank, read_fd, write_fd
        self.view: torch.Tensor | None = None
        self.count = 0

    @classmethod
    def from_env(cls, rank: int) -> LocalExchange | None:
        """The exchange of a rank started by ``w2gn fit --processes`` (``None`` under torchrun)."""
        fds = os.environ.get(EXCHANGE_FDS)
        if not fds:
            return None
        read_fd, write_fd = (int(v) for v in fds.split(","))
        return cls(rank, read_fd, write_fd)

    def _map(self, like: torch.Tensor) -> None:
        import tempfile

        n = 4 * like.numel()  # 2 ranks x 2 slots
        box: list[Any] = [None]
        if self.rank == 0:
            folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
            fd, path = tempfile.mkstemp(prefix="w2gn-exchange-", dir=folder)
            os.ftruncate(fd, n * like.element_size())
            os.close(fd)
            box = [path]
        try:
            dist.broadcast_object_list(box, src=0)
            self.view = torch.from_file(box[0], shared=True, size=n, dtype=like.dtype).view(2, 2, like.numel())
            dist.barrier()
        finally:
            if self.rank == 0:
                os.unlink(box[0])  # both ranks hold the mapping now (or the exchange failed: leave nothing)

    def sum(self, buf: torch.Tensor) -> torch.Tensor:
        """``buf`` of this rank plus ``buf`` of the other rank (1-D, same size and dtype on both)."""
        if self.view is None or self.view.shape[-1] != buf.numel() or self.view.dtype != buf.dtype:
            self._map(buf)
        slot = self.count % 2
        self.count += 1
        mine = self.view[self.rank, slot]
        mine.copy_(buf)
        os.write(self.write_fd, b"\0")
        if not os.read(self.read_fd, 1):
            raise W2GNUserError("the other process of this fit stopped; see its message above")
        return mine + self.view[1 - self.rank, slot]


class DirectionSplitW2GNSolver(DistributedW2GNSolver):
    """The two-sided objective (``correlation_on="both"``) trained by 2 processes, one direction each.

    The objective is eq. 12 for P -> Q plus eq. 12 for Q -> P (:meth:`W2GNSolver.direction_loss`).
    Both ranks draw the *same* full batch from the shared seed stream; rank 0 differentiates the
    forward half, rank 1 the mirrored half, and one all-reduce sums their gradients (and statistics)
    before the identical optimiser steps. So the 2-process run computes the same steps as one process
    (up to the summation order of the gradients), each rank doing about half of the work, whatever the
    batch size: unlike splitting the batch, which leaves each rank the per-step overhead of small
    batches. No DDP: the gradients are summed by hand, once per step, together with the statistics.
    """

    splits_batch = False

    def __init__(self, config: W2GNConfig | None = None, *, context: DistContext, **overrides: Any) -> None:
        super().__init__(config, context=context, **overrides)
        if context.world_size != 2:
            raise W2GNUserError(f"splitting the objective by direction needs exactly 2 processes, not {context.world_size}")
        if self.config.correlation_on != "both":
            raise W2GNUserError("splitting the objective by direction needs the two-sided objective "
                                f"(correlation_on='both'), not {self.config.correlation_on!r}")

    def setup(self, p: Sampler, q: Sampler, generator: torch.Generator, **kwargs: Any) -> None:
        W2GNSolver.setup(self, p, q, generator, **kwargs)
        # the same seed gives the same pretrained weights; rank 0's are sent anyway, so the start is identical
        for t in [*self.theta.parameters(), *self.omega.parameters(), *self.theta.buffers(), *self.omega.buffers()]:
            dist.broadcast(t.data, src=0)
        self.rank_generator = None  # both ranks draw from the shared stream (W2GNSolver.draw)
        self.exchange = LocalExchange.from_env(self.context.rank)

    def draw(self, p: Sampler, q: Sampler, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return W2GNSolver.draw(self, p, q, generator)

    def loss(self, x: torch.Tensor, y: torch.Tensor):
        refine = self.refine if self.config.refine_steps else None
        return self.direction_loss(x, y, refine, inverse=self.context.rank == 1, swap_value_terms=True)

    def step(self, iteration: int, p: Sampler, q: Sampler, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return W2GNSolver.step(self, iteration, p, q, generator)

    def after_backward(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        params = [t for net in (self.theta, self.omega) for t in net.parameters() if t.requires_grad]
        for t in params:
            if t.grad is None:  # e.g. psi_omega's output bias: no part in the forward half
                t.grad = torch.zeros_like(t)
        keys = list(stats)
        due = self._checkpoint_due(self.iteration + 1)
        grads = [t.grad.reshape(-1) for t in params]
        ref = grads[0]
        # one message per step: gradients, statistics and rank 0's "a checkpoint is due", summed
        extra = torch.stack([stats[k].to(ref.dtype) for k in keys] + [ref.new_tensor(due)])
        buf = torch.cat([*grads, extra])
        if self.exchange is not None:  # ranks started by 'w2gn fit --processes 2': shared memory
            buf = self.exchange.sum(buf)
        else:
            dist.all_reduce(buf)
        offset = 0
        for t, g in zip(params, grads):
            t.grad.copy_(buf[offset:offset + g.numel()].view_as(t.grad))
            offset += g.numel()
        self._agree_checkpoint(self.iteration + 1, float(buf[-1]))
        # the halves' statistics add up to the whole objective's (each half reports zeros for the other's)
        return {k: buf[offset + i].to(stats[k].dtype) for i, k in enumerate(keys)}


class _SharedCheckpoints:
    """Rank 0's :class:`~w2gn.checkpoint.CheckpointWriter` as every rank sees it: a checkpoint is due
    when rank 0 says so (:meth:`DistributedW2GNSolver.step` shares its decision), every rank then
    captures the state (which gathers the ranks' RNG states), and rank 0 alone writes it."""

    def __init__(self, writer: Any, every: int) -> None:
        self.writer = writer  # None on the other ranks
        self.every = writer.every if writer is not None else every
        self.due_at: int | None = None

    def due_on_rank0(self, iteration: int) -> bool:
        return self.writer is not None and self.writer.due(iteration)

    def due(self, iteration: int) -> bool:
        return self.due_at == iteration

    def write(self, state: dict[str, Any]) -> Path | None:
        return self.writer.write(state) if self.writer is not None else None

    def discard_from(self, iteration: int) -> list[Path]:
        return self.writer.discard_from(iteration) if self.writer is not None else []

    def __getattr__(self, name: str) -> Any:
        # last_path, last_iteration, resume_hint, ...: rank 0's; nothing on the other ranks
        if name == "writer":
            raise AttributeError(name)
        return getattr(self.writer, name) if self.writer is not None else None


#: how several processes share a step: ``"batch"`` (each rank a slice of the batch, DDP) or ``"directions"``
#: (2 ranks, one half of the two-sided objective each, :class:`DirectionSplitW2GNSolver`)
SPLITS = ("batch", "directions")


def make_solver(context: DistContext, split: str = "batch", **options: Any) -> W2GNSolver:
    """A W2GN solver for this process: distributed under ``torchrun`` (``split`` says how the ranks share
    a step, :data:`SPLITS`), plain otherwise."""
    if split not in SPLITS:
        raise W2GNUserError(f"split must be one of {SPLITS}, got {split!r}")
    if context.enabled:
        cls = DirectionSplitW2GNSolver if split == "directions" else DistributedW2GNSolver
        return cls(context=context, **options)
    return W2GNSolver(**options)


__all__ = ["SPLITS", "DirectionSplitW2GNSolver", "DistContext", "DistributedW2GNSolver", "LocalExchange",
           "env_context", "make_solver", "rank_seed", "session"]
