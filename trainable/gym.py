"""The Gym: one trial's training loop (fit / evaluate / predict).

The Gym knows nothing of Ray or MLflow. It is given the decoded uint8 images, the
targets and a `report(metrics, checkpoint_dir)` callable, and calls it once per
epoch; trial.py passes one that calls `tune.report`, the CLI one that prints and
logs, tests one that appends to a list.

Fast by design (see PERF.md): the whole uint8 array goes to the device once (on
CUDA all of it: 20k images are under 1 GB), images are downsampled, normalised and
augmented on the device per batch, bf16 autocast + channels_last on CUDA, fp32 on
CPU. No DataLoader workers and no JPEG decoding per epoch. A per-process cache keeps
the device copy of the data alive between trials that reuse the same worker. Each
reported row also says where the epoch's time went (trainable/timing.py: `time/` keys,
the first row with the Gym's start-up).

What an epoch's folder holds: with `fit(rungs=...)` (a trial of a search) its record
(checkpoint.RECORD_FILE) always, its weights and optimizer state only when
`checkpoint.needs_weights` says so (the trial's best so far, an ASHA rung, the last epoch), the
optimizer state only at a rung and the last epoch (`needs_optimizer`); without (labeltune train)
the record, the weights and the optimizer state every epoch. After a resume `fit(reported=N)`
trains the epochs from its checkpoint up to N again without reporting them (they were reported).

    gym = Gym(cfg, images, targets, labels, data_fingerprint=fp)
    gym.fit(lambda metrics, ckpt_dir: print(metrics["val/micro_f1"]))
    gym.fit(report, rungs=[1, 3], reported=4, best=0.31)   # a resumed trial of a search
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from trainable import checkpoint as ckpt_io
from trainable import timing
from trainable.checkpoint import CHECKPOINT_FILE  # noqa: F401  (re-exported: search/ imports it from here)
from trainable.config import COLOR_MODES, PRIMARY_METRIC, WORST_SCORE, ConfigError, TrainConfig, better
from trainable.data import split as split_indices
from trainable.errors import LabeltuneError
from trainable.losses import get_loss, pos_weight_from_targets
from trainable.optimizers import get_optimizer
from trainable.metrics import MetricsCollector
from trainable.models import build_model, model_spec

log = logging.getLogger(__name__)

Report = Callable[[dict, "Path | None"], None]

EVAL_BATCH = 512
"""images per forward pass when scoring or predicting (no gradients: bounded by activations only)"""

# One device copy of the images per worker process, reused by the next trial on the
# same data (Tune's reuse_actors keeps the process): key -> uint8 tensor on device.
_DEVICE_DATA: dict[tuple, torch.Tensor] = {}


class TrialDiverged(LabeltuneError, RuntimeError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(name)


def to_device_images(
    images: np.ndarray, image_size: int, device: torch.device, color: str = "", key: tuple | None = None
) -> torch.Tensor:
    """uint8 N x C x 128 x 128 -> uint8 N x C' x S x S on `device`, cached per process by `key`.

    RGB input becomes 1-channel luma when `color` is 'gray' (PIL's L = 0.299 R + 0.587 G + 0.114 B),
    so a search decodes and ships one RGB array whatever colour its trials ask for. On the CPU at the
    array's own size and colour the result is the array itself, no copy: a trial reads Ray's object store
    (or the decode cache's memory map) in place, batches are gathered copies (`images[idx]`), and nothing
    writes to it. Downsampled or gray trials hold only their smaller array.
    """
    if key is not None and key in _DEVICE_DATA:
        return _DEVICE_DATA[key]
    with _quiet_readonly():
        host = torch.from_numpy(np.asarray(images))
    channels = COLOR_MODES[color][1] if color else host.shape[1]
    if image_size > host.shape[-1] or channels > host.shape[1]:
        raise ValueError(f"the images are {host.shape[1]} x {host.shape[-1]} px: a trial cannot ask "
                         f"{color or 'their colour'} at {image_size} px of them")
    if device.type == "cpu" and channels == host.shape[1] and image_size == host.shape[-1]:
        out = host  # in place: no copy to make
    else:
        out = _converted(host, image_size, device, channels)
    if key is not None:
        _DEVICE_DATA.clear()  # keep one dataset per process: device memory is the limit
        _DEVICE_DATA[key] = out
    return out


def _converted(host: torch.Tensor, image_size: int, device: torch.device, channels: int,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """`host` as uint8 N x channels x image_size x image_size on `device`, in chunks (luma, then average pooling),
    written into `out` when given (trainable/trial_data.py converts into a cache file once per search)."""
    if out is None:
        out = torch.empty((host.shape[0], channels, image_size, image_size), dtype=torch.uint8, device=device)
    luma = torch.tensor([0.299, 0.587, 0.114], device=device).view(1, 3, 1, 1)
    for start in range(0, host.shape[0], 2048):  # chunks bound the float temporaries
        chunk = host[start : start + 2048].to(device, non_blocking=True)
        if channels == 1 and chunk.shape[1] == 3:
            chunk = (chunk.float() * luma).sum(1, keepdim=True).round().to(torch.uint8)
        if image_size != chunk.shape[-1]:
            factor = chunk.shape[-1] // image_size
            chunk = F.avg_pool2d(chunk.float(), factor).round().to(torch.uint8)
        out[start : start + chunk.shape[0]] = chunk
    return out


def convert_into(images: np.ndarray, out: np.ndarray, progress: Callable[[int], None] | None = None) -> None:
    """uint8 N x 3 x 128 x 128 `images` into the uint8 N x C x S x S array `out` (C 1: luma), on the CPU and bit
    for bit as a trial's to_device_images converts them; `progress(n)` after each n images. A search whose
    every trial asks one size and colour ships `out` instead of `images` (trainable/trial_data.py)."""
    with _quiet_readonly():
        host = torch.from_numpy(np.asarray(images))
    target = torch.from_numpy(out)
    step = 8192
    for start in range(0, host.shape[0], step):
        _converted(host[start : start + step], out.shape[-1], torch.device("cpu"), out.shape[1],
                   out=target[start : start + step])
        if progress is not None:
            progress(min(step, host.shape[0] - start))


@contextlib.contextmanager
def _quiet_readonly():
    """Arrays from Ray's object store are read-only; torch only reads them here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-writable.*")
        yield


class Gym:
    """Trains, evaluates and predicts with one model on one decoded dataset."""

    rungs: Collection[int] | None = None
    """ASHA's rung epochs, as `fit(rungs=...)` set them: an epoch writes weights only as needs_weights says; None:
    every epoch writes weights"""
    best: float = WORST_SCORE
    """the best PRIMARY_METRIC of the epochs reported so far (from fit's `best` on)"""

    def __init__(
        self,
        cfg: TrainConfig,
        images: np.ndarray,
        targets: np.ndarray,
        labels: list[str],
        *,
        data_fingerprint: str = "",
        checkpoint: dict | None = None,
    ) -> None:
        self.cfg = cfg
        self.labels = list(labels)
        self.data_fingerprint = data_fingerprint
        self.device = resolve_device(cfg.device)
        self.cuda = self.device.type == "cuda"
        if not self.cuda:
            torch.set_num_threads(cfg.threads or len(os.sched_getaffinity(0)))
        else:
            torch.backends.cudnn.benchmark = True
        watch = timing.Stopwatch()
        if self.cuda:
            init_cuda(self.device)
            watch.lap(timing.CUDA_INIT)

        n = len(targets) if not cfg.limit else min(cfg.limit, len(targets))
        self.targets = torch.as_tensor(np.asarray(targets[:n]), dtype=torch.float32, device=self.device)
        key = (data_fingerprint, cfg.color, cfg.image_size, str(self.device), n) if data_fingerprint else None
        self.data_cached = key in _DEVICE_DATA  # an earlier trial of this worker process left the device copy
        self.images = to_device_images(images[:n], cfg.image_size, self.device, cfg.color, key)
        self.splits = dict(zip(("train", "val", "test"), split_indices(n, cfg.split_fractions, cfg.split_seed)))
        self.splits["all"] = np.arange(n)
        self.split_index = {name: torch.as_tensor(idx, device=self.device) for name, idx in self.splits.items()}
        if self.cuda:
            torch.cuda.synchronize(self.device)  # the uploads run asynchronously: ready means on the device
        self.data_ready = watch.lap(timing.DATA_TO_DEVICE)  # trial.py reports the data set-up time from it
        self.mean, self.std = normalisation(cfg.model, cfg.color, self.device)

        torch.manual_seed(cfg.seed)
        self.model = build_trial_model(cfg, self.labels, self.device)
        pos_weight = None
        if cfg.pos_weight == "auto" and cfg.loss == "bce":  # the only loss with positive weights
            train_targets = np.asarray(targets[:n])[self.splits["train"]]
            pos_weight = pos_weight_from_targets(train_targets).to(self.device)
        self.loss_fn = get_loss(
            cfg.loss, pos_weight=pos_weight,
            gamma_neg=cfg.asl_gamma_neg, gamma_pos=cfg.asl_gamma_pos, clip=cfg.asl_clip,
        )
        self.optimizer = get_optimizer(
            cfg.optimizer, self.model.parameters(), lr=cfg.lr,
            weight_decay=cfg.weight_decay, momentum=cfg.momentum,
        )
        self.epoch = 0
        if checkpoint is not None:
            self._restore(checkpoint)
        watch.lap(timing.MODEL_BUILD)  # no sync: copies from pageable host memory return when done
        self.startup = {timing.CUDA_INIT: 0.0, **watch.laps}  # 0 on the CPU: no context to create
        """timing.STARTUP key -> seconds of this Gym's start, reported in the first row `fit` reports; a caller adds
        what it measured before the Gym (trial.py: timing.IMPORT)"""

    def _restore(self, checkpoint: dict) -> None:
        """Continue from a checkpoint of this data's labels: weights, optimizer state, epoch count."""
        ckpt_io.require_single(checkpoint, "training or evaluating in the Gym")
        ckpt_io.check_labels(checkpoint, self.labels, "the data")
        ckpt_io.load_model_state(self.model, checkpoint)
        if checkpoint.get("optimizer_state"):
            self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.epoch = int(checkpoint["epoch"])

    # ---- batches -------------------------------------------------------------

    def _prepare(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 batch on device -> normalised float batch, augmented when a generator is given."""
        x = batch.float().div_(255.0)
        if generator is not None and self.cfg.augment != "none":
            x = augment(x, self.cfg.augment, generator)
        return normalise(x, self.mean, self.std, self.cuda)

    # ---- the loop ------------------------------------------------------------

    def train_one_epoch(self, epoch: int, on_batch: Callable[[int, torch.Tensor], None] | None = None) -> dict:
        """One pass over the train split: fetch batch, forward, loss, backward, step.

        `on_batch(n_images, loss)` lets a CLI draw a progress bar; reading the loss syncs the device.
        """
        self.model.train()
        # Seeded per epoch (shuffle, augmentation, dropout): a resumed run repeats an uninterrupted one.
        seed = self.cfg.seed * 100_003 + epoch
        torch.manual_seed(seed)
        shuffle = torch.randperm(len(self.splits["train"]), generator=torch.Generator().manual_seed(seed))
        # The epoch's order goes to the device once: a host->device copy per batch would wait for the GPU.
        order = self.split_index["train"][shuffle.to(self.device)]
        generator = torch.Generator(device=self.device).manual_seed(seed)  # augmentation draws on the device
        batches = [order[i : i + self.cfg.batch_size] for i in range(0, len(order), self.cfg.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches.pop()  # batch norm cannot train on a single image
        loss_sum = torch.zeros((), device=self.device)
        seen = 0
        start = time.perf_counter()
        for idx in batches:
            x = self._prepare(self.images[idx], generator)
            y = self.targets[idx]
            with autocast(self.device):
                logits = self.model(x)
            loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(idx)
            seen += len(idx)
            if on_batch is not None:
                on_batch(len(idx), loss.detach())
        train_loss = float(loss_sum) / max(seen, 1)  # one device sync per epoch
        elapsed = time.perf_counter() - start
        if not math.isfinite(train_loss):
            raise TrialDiverged(f"training loss became {train_loss} in epoch {epoch}")
        return {"train/loss": train_loss, "img_per_s": seen / max(elapsed, 1e-9)}

    @torch.no_grad()
    def outputs(self, split: str = "val") -> tuple[np.ndarray, np.ndarray, float]:
        """(probabilities N x L, 0/1 targets N x L, mean loss) of one split, for scoring or threshold tuning."""
        indices = self.split_index[split]
        if len(indices) == 0:
            raise ConfigError(f"the {split} split of {len(self.splits['all'])} images is empty: nothing to score")
        probs, loss_sum = [], torch.zeros((), device=self.device)
        for idx, logits in batched_logits(self.model, self.images, self.mean, self.std, indices):
            probs.append(torch.sigmoid(logits))  # stays on the device: one copy to the CPU at the end
            loss_sum += self.loss_fn(logits, self.targets[idx]) * len(idx)
        probs_np = torch.cat(probs).float().cpu().numpy()
        targets_np = self.targets[indices].to(torch.uint8).cpu().numpy()
        return probs_np, targets_np, float(loss_sum) / len(indices)

    def evaluate_split(self, split: str = "val", threshold: float | np.ndarray | None = None) -> MetricsCollector:
        """A MetricsCollector over one split, filled with the model's outputs (as trainable.ensemble.evaluate_split).

        `collector.compute()` gives the metrics dict, `collector.probs` and `collector.targets` the
        outputs for threshold tuning, `collector.threshold` the per-label thresholds it scored with
        (`threshold`, default cfg.threshold).
        """
        threshold = self.cfg.threshold if threshold is None else threshold
        collector = MetricsCollector(self.labels, threshold=threshold, prefix=split)
        collector.update(*self.outputs(split))
        return collector

    def evaluate(self, split: str = "val", threshold: float | np.ndarray | None = None) -> dict:
        """Metrics of one split ('train', 'val', 'test' or 'all'), keys prefixed by the split."""
        return self.evaluate_split(split, threshold).compute()

    def fit(self, report: Report | None = None, on_batch: Callable[[int, torch.Tensor], None] | None = None, *,
            rungs: Collection[int] | None = None, reported: int = 0, best: float = WORST_SCORE) -> list[dict]:
        """Train until cfg.epochs, validating and reporting once per epoch; returns the rows it reported.

        A row is the epoch's metrics (what its record holds) and where its time went (timing.EPOCH_PHASES,
        timing.EPOCH; the first row also self.startup and timing.FIRST_BATCHES). `report(row, folder)` gets the
        epoch's folder (module docstring: the record, the weights when `rungs` is None or needs_weights says so),
        which is deleted after it returns: it copies what it keeps. `reported`: the epochs up to it were reported
        before a resume; those after this Gym's checkpoint are trained again unreported (their time is in the first
        row's timing.EPOCH). `best`: the best PRIMARY_METRIC of those reported epochs.
        """
        self._check_splits()
        self.rungs, self.best = (None if rungs is None else frozenset(rungs)), best
        history, startup, report_s = [], dict(self.startup), 0.0
        with tempfile.TemporaryDirectory(prefix="labeltune-ckpt-") as tmp:
            since = time.perf_counter()  # the previous report's call: each row's time/epoch_s starts there
            self._train_again(min(reported, self.cfg.epochs), on_batch)
            for epoch in range(self.epoch + 1, self.cfg.epochs + 1):
                folder = Path(tmp) / f"epoch_{epoch:06d}"
                metrics, phases = self._run_epoch(epoch, folder, on_batch, first=not history)
                now = time.perf_counter()
                row = {**metrics, **phases, timing.REPORT: report_s, timing.EPOCH: now - since, **startup}
                history.append(row)
                startup, since = {}, now
                if report is not None:
                    report(row, folder)
                shutil.rmtree(folder)
                report_s = time.perf_counter() - now  # a row cannot hold its own report: the next one does
                log.info("epoch %d: train/loss %.4f val/micro_f1 %.4f", epoch, metrics["train/loss"], metrics["val/micro_f1"])
        return history

    def _train_again(self, until: int, on_batch: Callable[[int, torch.Tensor], None] | None) -> None:
        """Train the epochs after this Gym's checkpoint up to `until` without validating, saving or reporting: a
        resumed trial reported them before, from a later record than its latest weights (each epoch is seeded, so
        this repeats them)."""
        if until > self.epoch:
            log.info("training epochs %d..%d again: reported before, after the latest weights", self.epoch + 1, until)
        for epoch in range(self.epoch + 1, until + 1):
            self.train_one_epoch(epoch, on_batch)
            self.epoch = epoch

    def _check_splits(self) -> None:
        for split in ("train", "val"):
            if self.epoch < self.cfg.epochs and len(self.splits[split]) == 0:
                sizes = ", ".join(f"{name} {len(self.splits[name])}" for name in ("train", "val", "test"))
                raise ConfigError(f"the {split} split is empty ({len(self.splits['all'])} images split into {sizes} "
                                 f"by split_fractions {list(self.cfg.split_fractions)}): nothing to train or validate on")

    def _run_epoch(self, epoch: int, folder: Path, on_batch: Callable[[int, torch.Tensor], None] | None,
                   first: bool) -> tuple[dict, dict]:
        """Train, validate, score and checkpoint one epoch into `folder`: (its metrics, timing key -> seconds).

        Each phase ends where the Gym waits for the device anyway (the loss read, the outputs' copy to the
        host, the state dicts' copy), so the timing adds no device sync; `first` times the first batches apart.
        """
        watch = timing.Stopwatch()
        first_batches = FirstBatches(self.device, on_batch) if first else None
        train = self.train_one_epoch(epoch, first_batches or on_batch)
        train_end = watch.lap(timing.TRAIN)
        collector = self.evaluate_split("val")
        watch.lap(timing.VAL_FORWARD)
        metrics = {"epoch": epoch, **train, **collector.compute()}
        watch.lap(timing.METRICS)
        self.epoch = epoch
        self.write_epoch(folder, metrics)
        watch.lap(timing.CHECKPOINT)
        if first_batches is not None:
            watch.laps[timing.FIRST_BATCHES] = first_batches.seconds(until=train_end)
        return metrics, watch.laps

    def predict(self, images: np.ndarray, threshold: float | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N x C x 128 x 128 images -> (probabilities, 0/1 predictions)."""
        on_device = to_device_images(images, self.cfg.image_size, self.device, self.cfg.color)
        probs = probabilities(self.model, on_device, self.mean, self.std)
        threshold = self.cfg.threshold if threshold is None else np.asarray(threshold)
        return probs, (probs >= threshold).astype(np.uint8)

    def write_epoch(self, folder: Path, metrics: dict) -> bool:
        """The epoch's record into `folder`, and its weights (CHECKPOINT_FILE, with the optimizer state or without)
        when it needs them (both every epoch without rungs); returns whether it wrote weights."""
        score, epoch, last = metrics[PRIMARY_METRIC], self.epoch, self.cfg.epochs
        weights = self.rungs is None or ckpt_io.needs_weights(epoch, score, self.best, self.rungs, last)
        optimizer = weights and (self.rungs is None or ckpt_io.needs_optimizer(epoch, self.rungs, last))
        if better(score, self.best):
            self.best = score
        if weights:
            self.save(folder / CHECKPOINT_FILE, metrics, optimizer=optimizer)
        ckpt_io.save_record(folder, ckpt_io.EpochRecord(epoch, metrics, weights, optimizer))
        return weights

    def save(self, path: Path, metrics: dict, thresholds: list[float] | None = None, optimizer: bool = True) -> Path:
        return ckpt_io.save(
            path,
            model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict() if optimizer else {},
            epoch=self.epoch,
            config=self.cfg.to_dict(),
            labels=self.labels,
            thresholds=thresholds or [self.cfg.threshold] * len(self.labels),
            metrics=metrics,
            data_fingerprint=self.data_fingerprint,
        )


class FirstBatches:
    """The on_batch hook of a Gym's first epoch: times its first timing.FIRST_BATCH_COUNT batches, passes every
    batch on to `inner`. On CUDA it synchronises once, after the last of them (the cuDNN autotuning is in there)."""

    def __init__(self, device: torch.device, inner: Callable[[int, torch.Tensor], None] | None = None) -> None:
        self.device, self.inner = device, inner
        self.count, self.ended = 0, None
        self.start = time.perf_counter()

    def __call__(self, n_images: int, loss: torch.Tensor) -> None:
        self.count += 1
        if self.count == timing.FIRST_BATCH_COUNT:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.ended = time.perf_counter()
        if self.inner is not None:
            self.inner(n_images, loss)

    def seconds(self, until: float) -> float:
        """The seconds of the first batches; `until` (the end of the epoch's loop) when the epoch had fewer."""
        return (self.ended if self.ended is not None else until) - self.start


def init_cuda(device: torch.device) -> None:
    """Create the CUDA context now, timed apart (torch creates it lazily, at the first allocation on the device)."""
    torch.cuda.init()
    torch.empty(1, device=device)
    torch.cuda.synchronize(device)


def augment(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips, plus (flipcrop) random crops after reflect padding, per image, on the device."""
    b, _, h, w = x.shape
    flip = (torch.rand(b, generator=generator, device=x.device) < 0.5).view(b, 1, 1, 1)
    x = torch.where(flip, x.flip(3), x)
    if kind == "flipcrop":
        pad = max(1, h // 16)
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(b, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    return x


def normalisation(model: str, color: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's per-channel input mean and std for `color` (its ModelSpec) as 1 x C x 1 x 1 tensors on `device`."""
    mean, std = model_spec(model).normalisation(color)
    return torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1)


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = (x - mean) / std
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def autocast(device: torch.device):
    # bf16 autocast: 2-3x on Hopper, fp32 master weights; CPU stays fp32.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---- inference: the one path of the Gym and the Predictor ----------------------


def build_trial_model(cfg: TrainConfig, labels: Sequence[str], device: torch.device) -> torch.nn.Module:
    """The model `cfg` names (model, color, width, pretrained, weights) with one output per label, on `device`.

    channels_last on CUDA: with bf16 autocast, the layout cuDNN's fastest convolutions want.
    """
    model = build_model(cfg.model, len(labels), in_channels=COLOR_MODES[cfg.color][1], width=cfg.width,
                        pretrained=cfg.pretrained, weights=cfg.weights).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def batched_logits(model: torch.nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   indices: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(positions, fp32 logits) of uint8 images on the model's device, EVAL_BATCH at a time, in order.

    `indices` (on the same device) picks the images, default all of them; the positions of each
    batch index `images`. Eval mode, no gradients, [0, 1] scaling and normalisation by (mean, std),
    channels_last and bf16 autocast on CUDA: what scoring (Gym.outputs) and prediction share.
    """
    model.eval()
    device = images.device
    order = torch.arange(len(images), device=device) if indices is None else indices
    for start in range(0, len(order), EVAL_BATCH):
        idx = order[start : start + EVAL_BATCH]
        x = normalise(images[idx].float().div_(255.0), mean, std, device.type == "cuda")
        with torch.no_grad(), autocast(device):  # entered per batch: the caller's code runs outside both
            logits = model(x)
        yield idx, logits.float().detach()  # detached: a model may return a view of its parameters (dummy)


def probabilities(model: torch.nn.Module, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    """Sigmoid probabilities N x L for uint8 images already on the model's device (batched_logits)."""
    probs = [torch.sigmoid(logits) for _, logits in batched_logits(model, images, mean, std)]
    return torch.cat(probs).cpu().numpy()  # one copy to the CPU at the end


class Predictor:
    """A trained model loaded from a checkpoint dict: probabilities and 0/1 predictions."""

    def __init__(self, checkpoint: dict, device: str = "auto") -> None:
        self.cfg = TrainConfig.from_dict({**checkpoint["config"], "device": device, "pretrained": False})
        self.labels = list(checkpoint["labels"])
        self.thresholds = np.asarray(checkpoint["thresholds"], dtype=np.float32)
        self.device = resolve_device(device)
        self.model = build_trial_model(self.cfg, self.labels, self.device)
        ckpt_io.load_model_state(self.model, checkpoint)
        self.mean, self.std = normalisation(self.cfg.model, self.cfg.color, self.device)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x C x 128 x 128 -> N x L probabilities."""
        if len(images) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        on_device = to_device_images(images, self.cfg.image_size, self.device, self.cfg.color)
        return probabilities(self.model, on_device, self.mean, self.std)

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, 0/1 predictions with the checkpoint's per-label thresholds)."""
        probs = self.probabilities(images)
        return probs, (probs >= self.thresholds).astype(np.uint8)
