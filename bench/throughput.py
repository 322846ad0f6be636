"""Training throughput of the Gym against a course-style pipeline, per model, in one run.

For every model of trainable.models.MODELS (or --models), on the same synthetic JPEGs:
  gym       labeltune's Gym.train_one_epoch: the decoded uint8 array resident on the device,
            normalised per batch on the device (bf16 autocast + channels_last on CUDA, fp32 on CPU);
            img/s as the Gym itself reports it, summed over time-bounded epochs after a warm-up epoch;
  baseline  the course project's pipeline: a torch DataLoader over the JPEG files, PIL decode +
            torchvision ToTensor + Normalize per image, fp32, batch 32, `--workers` DataLoader workers;
both with the same model, image size, loss (BCE with logits) and optimizer (adadelta, lr 0.2, the
course recipe), so the ratio gym/baseline is the pipeline alone. With --ceiling-json (the JSON that
shared/bench/gpu_ceiling.py writes) each figure is also divided by the GPU ceiling of its model:
meaningful only for a --gpu run on the GPU that measured that ceiling.

CPU defaults (2 cores): image size 128 and batch 32 for BOTH pipelines, 0 DataLoader workers,
2,000 images, ~20 s of timed training per model and pipeline (about 6 minutes for all 7 models).
--gpu: batch 256 for the Gym (the ceiling's batch), 32 for the baseline, 4 workers, 20,000 images.

    python bench/throughput.py                                   # all models, CPU
    python bench/throughput.py --models cnn5,resnet18 --seconds 5
    python bench/throughput.py --gpu --ceiling-json .bench/out/anchor.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import (CEILING_MODEL, load_decoded, log, ratio, read_ceiling, synth_dataset, table,
                    results_variant, write_results)

MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as the Gym and the course used
STD = (0.229, 0.224, 0.225)


# ---- the Gym ------------------------------------------------------------------------


def _images_trained(n: int, batch: int) -> int:
    """Images one Gym epoch over n indices trains on (it drops a last batch of one image)."""
    return n - 1 if n > batch and n % batch == 1 else n


def gym_rate(gym, seconds: float, warm_batches: int = 2) -> dict:
    """Training img/s of `gym`: one warm-up epoch on a few batches, then epochs over slices of the
    train split sized to fill `seconds`; the rate is what train_one_epoch reports, summed over them.

    The train split is restored afterwards. Epoch timing is the Gym's own (it syncs the device once
    per epoch), so on CUDA the figure includes whatever per-batch host work the Gym does.
    """
    train = gym.splits["train"]
    batch = gym.cfg.batch_size
    try:
        gym.splits["train"] = train[: max(2, min(len(train), warm_batches * batch))]
        warm = gym.train_one_epoch(0)["img_per_s"]  # cudnn autotune, allocator, first-touch: excluded
        images, elapsed, epochs, estimate = 0, 0.0, 0, warm
        while elapsed < seconds:
            # whole batches only: a ragged last batch is a new shape (cudnn autotunes it inside the timing)
            want = int(min(len(train), max(2 * batch, estimate * (seconds - elapsed)))) // batch * batch
            want = max(want, min(len(train), 2 * batch))
            gym.splits["train"] = train[:want]
            rate = gym.train_one_epoch(epochs + 1)["img_per_s"]
            n = _images_trained(want, batch)
            images += n
            elapsed += n / rate
            epochs += 1
            estimate = images / elapsed
        return {"img_s": images / elapsed, "warmup_img_s": warm, "images": images, "seconds": elapsed,
                "epochs": epochs}
    finally:
        gym.splits["train"] = train


def make_gym(model: str, images: np.ndarray, dataset, *, image_size: int, batch: int, device: str,
             optimizer: str, lr: float, threads: int = 0, width: float = 1.0):
    from trainable.config import TrainConfig
    from trainable.gym import Gym

    cfg = TrainConfig(model=model, image_size=image_size, batch_size=batch, device=device, optimizer=optimizer,
                      lr=lr, threads=threads, width=width, epochs=1, loss="bce")
    return Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint)


# ---- the course-style baseline --------------------------------------------------------


class JpegDataset:
    """(image, target) read from the JPEG file per item: PIL decode, RGB, [resize], ToTensor, Normalize.

    A plain map-style dataset at module level, so DataLoader workers can unpickle it under any start method.
    """

    def __init__(self, paths: list[str], targets: np.ndarray, image_size: int) -> None:
        self.paths, self.targets, self.image_size = paths, targets.astype(np.float32), image_size
        self.transform = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch
        from PIL import Image
        from torchvision import transforms

        if self.transform is None:
            steps = [transforms.Resize(self.image_size)] if self.image_size != 128 else []
            self.transform = transforms.Compose(steps + [transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
        with Image.open(self.paths[i]) as img:
            x = self.transform(img.convert("RGB"))
        return x, torch.from_numpy(self.targets[i])


def baseline_rate(model_name: str, dataset, *, image_size: int, batch: int, workers: int, seconds: float,
                  device: str, optimizer: str, lr: float, warm_batches: int = 5) -> dict:
    """Training img/s of the course-style pipeline: DataLoader over JPEGs, fp32, NCHW, model on `device`."""
    import torch

    from trainable.losses import get_loss
    from trainable.optimizers import get_optimizer
    from trainable.models import build_model

    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_model(model_name, len(dataset.labels), in_channels=3).to(dev)
    opt = get_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=0.0, momentum=0.9)
    lossf = get_loss("bce")
    loader = torch.utils.data.DataLoader(
        JpegDataset([str(p) for p in dataset.paths], dataset.targets, image_size), batch_size=batch, shuffle=True,
        num_workers=workers, persistent_workers=workers > 0, drop_last=True)

    def batches():
        while True:
            yield from loader

    def step(x, y):
        x, y = x.to(dev), y.to(dev)
        loss = lossf(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    it = batches()
    for _ in range(warm_batches):  # worker start-up and first batches excluded, as for the Gym
        step(*next(it))
    sync()
    start, images = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        x, y = next(it)
        step(x, y)
        images += len(x)
    sync()
    elapsed = time.perf_counter() - start
    it.close()  # the loader and its persistent workers go when this function returns
    return {"img_s": images / elapsed, "images": images, "seconds": elapsed}


# ---- the run -------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma list of MODELS names (default: all)")
    p.add_argument("--gpu", action="store_true", help="GPU defaults: device cuda, gym batch 256, 4 workers, 20k images")
    p.add_argument("--seconds", type=float, default=None, help="timed training per model and pipeline (20 CPU, 8 GPU)")
    p.add_argument("--n-images", type=int, default=None, help="synthetic images (2000 CPU, 20000 GPU)")
    p.add_argument("--image-size", type=int, default=128, choices=(128, 64, 32), help="both pipelines")
    p.add_argument("--gym-batch", type=int, default=None, help="Gym batch size (32 CPU, 256 GPU)")
    p.add_argument("--baseline-batch", type=int, default=32, help="course-style batch size")
    p.add_argument("--workers", type=int, default=None, help="course-style DataLoader workers (0 CPU, 4 GPU)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads for both (0 = all cores)")
    p.add_argument("--optimizer", default="adadelta", help="both pipelines (default: the course's adadelta)")
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--warmup-batches", type=int, default=None, help="untimed batches before timing (2 CPU, 5 GPU)")
    p.add_argument("--no-baseline", action="store_true", help="measure the Gym only")
    p.add_argument("--ceiling-json", default=None, help="anchor JSON written by shared/bench/gpu_ceiling.py")
    p.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    p.add_argument("--results-dir", default=None, help="where the JSON goes (default bench/results)")
    args = p.parse_args(argv)
    args.device = "cuda" if args.gpu else "cpu"
    for name, cpu, gpu in (("seconds", 20.0, 8.0), ("n_images", 2000, 20000), ("gym_batch", 32, 256), ("workers", 0, 4),
                           ("warmup_batches", 2, 5)):
        if getattr(args, name) is None:
            setattr(args, name, gpu if args.gpu else cpu)
    return args


def measure(args, models: list[str], dataset, images: np.ndarray, ceiling: dict | None) -> list[dict]:
    import torch

    rows = []
    for name in models:
        row: dict = {"model": name}
        log(f"{name}: gym (batch {args.gym_batch}, {args.image_size}px, {args.device})")
        gym = make_gym(name, images, dataset, image_size=args.image_size, batch=args.gym_batch, device=args.device,
                       optimizer=args.optimizer, lr=args.lr, threads=args.threads)
        row["gym"] = gym_rate(gym, args.seconds, args.warmup_batches)
        del gym
        if args.device == "cuda":
            torch.cuda.empty_cache()
        if not args.no_baseline:
            log(f"{name}: course-style baseline (batch {args.baseline_batch}, {args.workers} workers)")
            row["baseline"] = baseline_rate(
                name, dataset, image_size=args.image_size, batch=args.baseline_batch, workers=args.workers,
                seconds=args.seconds, device=args.device, optimizer=args.optimizer, lr=args.lr,
                warm_batches=args.warmup_batches)
        row["gym_img_s"] = row["gym"]["img_s"]
        row["baseline_img_s"] = row.get("baseline", {}).get("img_s")
        row["gym_over_baseline"] = ratio(row["gym_img_s"], row["baseline_img_s"])
        key = CEILING_MODEL.get(name)
        if ceiling is not None and key:
            row["ceiling_model"] = key
            row["ceiling_tuned_img_s"] = ceiling["tuned"].get(key)
            row["ceiling_seed_img_s"] = ceiling["seed"].get(key)
            row["gym_over_ceiling"] = ratio(row["gym_img_s"], row["ceiling_tuned_img_s"])
            row["baseline_over_ceiling_seed"] = ratio(row["baseline_img_s"], row["ceiling_seed_img_s"])
        rows.append(row)
        log(f"{name}: gym {row['gym_img_s']:.0f} img/s, baseline {row['baseline_img_s'] or 0:.0f} img/s")
    return rows


COLUMNS = [("model", "model", ""), ("gym_img_s", "gym img/s", ",.0f"), ("baseline_img_s", "course img/s", ",.0f"),
           ("gym_over_baseline", "gym/course", ".2f")]
CEILING_COLUMNS = [("ceiling_tuned_img_s", "ceiling img/s", ",.0f"), ("gym_over_ceiling", "gym/ceiling", ".2f"),
                   ("ceiling_seed_img_s", "ceil. course", ",.0f"), ("baseline_over_ceiling_seed", "course/ceil.", ".2f")]


def main(argv=None) -> dict:
    args = parse_args(argv)
    from trainable.models import MODELS

    models = [m.strip() for m in args.models.split(",") if m.strip()] or list(MODELS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; valid: {', '.join(MODELS)}")
    ceiling = read_ceiling(args.ceiling_json) if args.ceiling_json else None
    pipelines = 1 if args.no_baseline else 2
    log(f"{len(models)} models x {pipelines} pipelines x {args.seconds:.0f} s timed (+ warm-up, model build): "
        f"expect ~{len(models) * pipelines * (args.seconds + 5) / 60:.1f} min after the data is ready")
    started = time.time()
    root = synth_dataset(args.n_images, args.seed)
    dataset, images = load_decoded(root)
    rows = measure(args, models, dataset, images, ceiling)

    cols = COLUMNS + (CEILING_COLUMNS if ceiling else [])
    print(table(rows, cols, title=f"training img/s, {args.image_size}px, gym batch {args.gym_batch} "
                                  f"({args.device}), course-style batch {args.baseline_batch} with {args.workers} "
                                  f"DataLoader workers, {args.n_images} images"))
    if ceiling:
        print(f"ceiling: {ceiling['source']} ({ceiling.get('gpu')}); cnn5 is compared with the course's 5-conv CNN")
    params = {k: v for k, v in vars(args).items()}
    params["models"] = models
    variant = results_variant(args, parse_args, ignore=("ceiling_json",))  # other options: a file of their own
    path = write_results("throughput", params, {"rows": rows, "ceiling": ceiling}, args.results_dir, started,
                         variant=variant)
    print(f"wrote {path}")
    return {"rows": rows, "path": str(path)}


if __name__ == "__main__":
    main()
