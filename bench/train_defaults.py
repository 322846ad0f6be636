"""Which `labeltune train` defaults give a good model? Quality of eleven training recipes, measured.

Each config is a dict of TrainConfig overrides on top of TrainConfig's own defaults plus the
run's image size and epochs (`CONFIGS`, letters A-K); A is `labeltune train`'s defaults as they
were on 2026-12-01 (cnn5, adamw 1e-3, no weight decay, no augmentation, pos_weight off, threshold
0.5, batch 64), written out in full so that A-K stay the same recipes when TrainConfig's defaults
change. For every (config, seed) the script trains one Gym in-process (no Ray, no MLflow) on
`synth_dataset(--images, seed)`, with split_seed = seed and seed = seed, device cpu, all cores,
and records:
  last      val and test figures (micro/macro F1, exact match, mAP, loss) after the last epoch;
  tuned     test again at per-label thresholds tuned on val (metrics.tune_thresholds, as promotion
            does): ranking quality apart from how well 0.5 suits the model's probabilities;
  best      the same at the epoch with the best val/micro_f1 (a copy of the weights is kept when
            val improves; test is then scored with those weights, as promotion would pick them);
  history   per-epoch train loss and val figures, from Gym.fit's history;
  labels    labels predicted per test image at the config's threshold, true labels per test image,
            and the share of test images the model predicts no label for ("predict nothing");
  baseline  trainable.baselines.for_splits on the same split: what a model that learned nothing scores.
The question is quality, not speed: wall seconds are recorded, but a loaded machine only slows the
run down, it does not change the figures (CPU training is deterministic per seed and thread count).

Before training, one epoch of each (model, batch size) in the chosen configs is timed on the
train split and gives a wall-time estimate; when it exceeds --max-minutes, only the first seed runs
(the log and `parameters.seeds_cut_for_time` say so); `--max-minutes 0` never cuts. The script sets
OMP_WAIT_POLICY=PASSIVE unless it is set: with spinning OpenMP threads, another process on the 2 cores
made the run (and its estimate) 6-30x slower; the figures do not depend on it.

    python bench/train_defaults.py                                  # A-K, seeds 0,1 (~16 min on 2 quiet cores)
    python bench/train_defaults.py --configs A,B,F --seeds 0 --images 300 --epochs 1   # smoke run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

# Idle OpenMP threads sleep instead of spinning. On the shared 2-core machine, with another process
# training, spinning threads made an efficientnet_lite0 epoch 6-30x slower (19 s passive, 118-332 s
# spinning, same load); the figures are identical either way (same threads, same work split).
# Set before torch is imported, which is when OpenMP reads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from common import REPO, load_decoded, log, results_variant, synth_dataset, table, write_results  # noqa: E402

FIGURES = ("micro_f1", "macro_f1", "exact_match", "map", "loss", "micro_precision", "micro_recall")
"""the whole-split figures kept per run (the per-label ones stay out of the JSON)"""

OLD_DEFAULTS = {"model": "cnn5", "pretrained": False, "loss": "bce", "optimizer": "adamw", "lr": 1e-3,
                "weight_decay": 0.0, "batch_size": 64, "augment": "none", "pos_weight": "off", "threshold": 0.5}
"""`labeltune train`'s defaults when this benchmark was written (2026-12-01), spelled out so that config A
stays the same recipe when TrainConfig's defaults change (changing them is what this script informs)"""
_EFFNET = {**OLD_DEFAULTS, "model": "efficientnet_lite0", "pretrained": True}
_MODERN = {**_EFFNET, "optimizer": "adamw", "lr": 1e-3, "batch_size": 32}
_COURSE = {**_EFFNET, "optimizer": "adadelta", "lr": 0.2, "batch_size": 32}
CONFIGS: dict[str, tuple[str, dict]] = {
    "A": ("old defaults (cnn5)", OLD_DEFAULTS),
    "B": ("cnn5 + pos_weight", {**OLD_DEFAULTS, "pos_weight": "auto"}),
    "C": ("cnn5 + pos_weight + flip", {**OLD_DEFAULTS, "pos_weight": "auto", "augment": "flip"}),
    "D": ("course recipe", _COURSE),
    "E": ("course + pos_weight", {**_COURSE, "pos_weight": "auto"}),
    "F": ("modern", _MODERN),
    "G": ("modern + pos_weight", {**_MODERN, "pos_weight": "auto"}),
    "H": ("modern + flip", {**_MODERN, "augment": "flip"}),
    "I": ("modern + wd 1e-2", {**_MODERN, "weight_decay": 1e-2}),
    "J": ("modern + wd 1e-4 + flip + pos_weight", {**_MODERN, "weight_decay": 1e-4, "augment": "flip",
                                                   "pos_weight": "auto"}),
    "K": ("modern, lr 3e-3", {**_MODERN, "lr": 3e-3}),
}
"""letter -> (name, TrainConfig overrides on top of the defaults + image_size + epochs); every config names
all of OLD_DEFAULTS' fields, so the TrainConfig defaults only reach the fields none of them sets"""


def make_config(overrides: dict, *, seed: int, image_size: int, epochs: int, threads: int):
    from trainable.config import TrainConfig

    return TrainConfig.from_dict({"image_size": image_size, "epochs": epochs, "device": "cpu", "threads": threads,
                                  "seed": seed, "split_seed": seed, **overrides})


# ---- one run -------------------------------------------------------------------------------


def scored(gym, split: str, threshold: np.ndarray | None = None) -> dict:
    """The FIGURES of one split, plus labels predicted / true per image and the empty-prediction share."""
    return summary(gym.evaluate_split(split, threshold))


def summary(collector) -> dict:
    """`scored`'s figures of one split's filled MetricsCollector (its prefix is the split)."""
    from trainable.metrics import predict

    figures = collector.compute()
    predicted = predict(collector.probs, collector.threshold).sum(axis=1)
    out = {name: figures[f"{collector.prefix}/{name}"] for name in FIGURES}
    out["pred_labels_per_image"] = float(predicted.mean())
    out["true_labels_per_image"] = float(collector.targets.sum(axis=1).mean())
    out["empty_pred_share"] = float((predicted == 0).mean())
    return out


def scored_epoch(gym) -> dict:
    """val and test at the config's threshold, and test at per-label thresholds tuned on val (as promotion does)."""
    from trainable.metrics import tune_thresholds

    val = gym.evaluate_split("val")
    out = {"epoch": gym.epoch, "val": summary(val)}
    thresholds = tune_thresholds(val.probs, val.targets, gym.cfg.threshold)
    out["test"] = scored(gym, "test")
    out["test_tuned"] = scored(gym, "test", thresholds)
    out["tuned_thresholds"] = [float(t) for t in thresholds]
    return out


def train_one(cfg, dataset, images: np.ndarray) -> dict:
    """Fit one Gym; score val and test after the last epoch and at the best val epoch."""
    import torch

    from trainable.baselines import for_splits
    from trainable.gym import Gym, TrialDiverged
    from trainable.metrics import PRIMARY_METRIC

    start = time.perf_counter()
    gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint)
    best = {"value": -1.0, "epoch": 0, "state": None}

    def keep_best(metrics: dict, _checkpoint_dir) -> None:
        if metrics[PRIMARY_METRIC] > best["value"]:  # strict: the earliest epoch wins a tie
            best.update(value=metrics[PRIMARY_METRIC], epoch=metrics["epoch"],
                        state={k: v.detach().clone() for k, v in gym.model.state_dict().items()})

    base, base_metrics = for_splits(dataset.targets, gym.splits, dataset.labels)
    record: dict = {"baseline": {k: v for k, v in base_metrics.items() if "/val/" in k or "/test/" in k
                                 or "/k/" in k}, "baseline_rule": base.describe(),
                    "split_sizes": {s: int(len(gym.splits[s])) for s in ("train", "val", "test")}}
    try:
        history = gym.fit(keep_best)
    except TrialDiverged as exc:
        record.update(diverged=str(exc), wall_s=time.perf_counter() - start)
        return record
    record["history"] = [{"epoch": h["epoch"], "train_loss": h["train/loss"], "img_per_s": h["img_per_s"],
                          **{f"val_{name}": h[f"val/{name}"] for name in FIGURES}} for h in history]
    record["last"] = scored_epoch(gym)
    if best["epoch"] == gym.epoch:
        record["best"] = record["last"]
    else:
        with torch.no_grad():
            gym.model.load_state_dict(best["state"])
        record["best"] = {**scored_epoch(gym), "epoch": best["epoch"]}
    record["wall_s"] = time.perf_counter() - start
    return record


# ---- the estimate ----------------------------------------------------------------------------


def calibrate(configs: list[str], dataset, images: np.ndarray, args) -> dict[tuple, dict]:
    """Seconds to build, warm up (2 batches), train one epoch and evaluate val, per (model, batch size) of the
    chosen configs. The warm-up is paid once per process and model, so the estimate leaves it out."""
    from trainable.gym import Gym

    timings: dict[tuple, dict] = {}
    for letter in configs:
        overrides = CONFIGS[letter][1]
        cfg = make_config(overrides, seed=0, image_size=args.image_size, epochs=1, threads=args.threads)
        key = (cfg.model, cfg.batch_size)
        if key in timings:
            continue
        t = time.perf_counter()
        gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint)
        build = time.perf_counter() - t
        train = gym.splits["train"]
        gym.splits["train"] = train[: 2 * cfg.batch_size]  # warm-up: the first batches build oneDNN's kernels
        t = time.perf_counter()
        gym.train_one_epoch(0)
        warmup = time.perf_counter() - t
        gym.splits["train"] = train
        t = time.perf_counter()
        gym.train_one_epoch(1)
        epoch = time.perf_counter() - t
        t = time.perf_counter()
        gym.evaluate("val")
        evaluate = time.perf_counter() - t
        timings[key] = {"model": cfg.model, "batch_size": cfg.batch_size, "train_images": len(gym.splits["train"]),
                        "build_s": build, "warmup_s": warmup, "epoch_s": epoch, "eval_s": evaluate}
        log(f"calibration {cfg.model} batch {cfg.batch_size}: build {build:.1f} s, warm-up {warmup:.1f} s, one epoch on "
            f"{len(gym.splits['train'])} images {epoch:.1f} s, val {evaluate:.1f} s")
    return timings


def run_estimate_s(timing: dict, epochs: int) -> float:
    # build + epochs x (train + val) + val/test after the last epoch and again at the best epoch
    return timing["build_s"] + epochs * (timing["epoch_s"] + timing["eval_s"]) + 4 * timing["eval_s"]


# ---- the run ---------------------------------------------------------------------------------


def code_state() -> dict:
    """The commit and the uncommitted files under trainable/: the checkout is shared and edited while this runs."""
    def git(*words: str) -> str:
        out = subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True, timeout=30)
        return out.stdout.rstrip("\n") if out.returncode == 0 else ""  # porcelain lines start with a space

    dirty = [line[3:] for line in git("status", "--porcelain", "--", "trainable").splitlines()]
    return {"head": git("rev-parse", "HEAD").strip() or None, "uncommitted_trainable_files": dirty}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="", help=f"comma list of letters {','.join(CONFIGS)} (default: all)")
    p.add_argument("--seeds", default="0,1", help="comma list: dataset, split, initialisation and shuffling seed")
    p.add_argument("--images", type=int, default=1200, help="synthetic images (the demo's size)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=64, choices=(128, 64, 32))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = all cores)")
    p.add_argument("--max-minutes", type=float, default=25.0,
                   help="when the estimate exceeds it, run the first seed only (0 = never cut)")
    p.add_argument("--results-dir", default=None, help="where the JSON goes (default bench/results)")
    return p.parse_args(argv)


def mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(letter: str, runs: list[dict]) -> dict:
    """Means over the seeds of one config (diverged runs count in `diverged`, not in the means)."""
    ok = [r for r in runs if "last" in r]

    def over(path: tuple) -> float | None:
        out = []
        for r in ok:
            value = r
            for key in path:
                value = value[key]
            out.append(value)
        return mean(out)

    test_f1 = [r["last"]["test"]["micro_f1"] for r in ok]
    row = {"config": letter, "name": CONFIGS[letter][0], "seeds": len(runs), "diverged": len(runs) - len(ok),
           "val_micro_f1": over(("last", "val", "micro_f1")),
           "test_micro_f1": mean(test_f1),
           "test_micro_f1_min": min(test_f1) if test_f1 else None,
           "test_micro_f1_max": max(test_f1) if test_f1 else None,
           "test_macro_f1": over(("last", "test", "macro_f1")),
           "test_exact_match": over(("last", "test", "exact_match")),
           "test_map": over(("last", "test", "map")),
           "test_tuned_micro_f1": over(("last", "test_tuned", "micro_f1")),
           "test_tuned_macro_f1": over(("last", "test_tuned", "macro_f1")),
           "best_val_micro_f1": over(("best", "val", "micro_f1")),
           "best_test_micro_f1": over(("best", "test", "micro_f1")),
           "best_epoch": over(("best", "epoch")),
           "pred_labels_per_image": over(("last", "test", "pred_labels_per_image")),
           "true_labels_per_image": over(("last", "test", "true_labels_per_image")),
           "empty_pred_share": over(("last", "test", "empty_pred_share")),
           "wall_s": mean([r["wall_s"] for r in runs]),
           "baseline_val_micro_f1": mean([r["baseline"]["baseline/val/micro_f1"] for r in runs]),
           "baseline_test_micro_f1": mean([r["baseline"]["baseline/test/micro_f1"] for r in runs]),
           "baseline_test_macro_f1": mean([r["baseline"]["baseline/test/macro_f1"] for r in runs]),
           "baseline_test_map": mean([r["baseline"]["baseline/test/map"] for r in runs])}
    if row["test_micro_f1"] is not None:
        row["test_micro_f1_over_baseline"] = row["test_micro_f1"] - row["baseline_test_micro_f1"]
    return row


COLUMNS = [("config", "cfg", ""), ("name", "recipe", ""), ("val_micro_f1", "val µF1", ".3f"),
           ("test_micro_f1", "test µF1", ".3f"), ("test_micro_f1_min", "min", ".3f"), ("test_micro_f1_max", "max", ".3f"),
           ("test_macro_f1", "test maF1", ".3f"), ("test_exact_match", "exact", ".3f"), ("test_map", "mAP", ".3f"),
           ("test_tuned_micro_f1", "tuned µF1", ".3f"), ("test_tuned_macro_f1", "tuned maF1", ".3f"),
           ("best_test_micro_f1", "best-ep µF1", ".3f"), ("pred_labels_per_image", "pred/img", ".2f"),
           ("true_labels_per_image", "true/img", ".2f"), ("empty_pred_share", "empty", ".2f"),
           ("wall_s", "wall s", ".0f"), ("baseline_test_micro_f1", "base µF1", ".3f"),
           ("baseline_test_map", "base mAP", ".3f")]


def main(argv=None) -> dict:
    args = parse_args(argv)
    configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()] or list(CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config(s) {', '.join(unknown)}; valid: {', '.join(CONFIGS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    # from the options asked for, before any seed cut; --max-minutes changes what runs only through
    # that cut, which parameters.seeds_run records
    variant = results_variant(args, parse_args, ignore=("max_minutes",))
    started = time.time()
    code = code_state()  # at the start: others commit while this runs

    data = {}
    for seed in seeds:
        data[seed] = load_decoded(synth_dataset(args.images, seed))
    timings = calibrate(configs, *data[seeds[0]], args)
    per_seed = sum(run_estimate_s(timings[(c.model, c.batch_size)], args.epochs)
                   for c in (make_config(CONFIGS[x][1], seed=0, image_size=args.image_size, epochs=args.epochs,
                                         threads=args.threads) for x in configs))
    estimate_min = per_seed * len(seeds) / 60
    log(f"{len(configs)} configs x {len(seeds)} seeds x {args.epochs} epochs on {args.images} images at "
        f"{args.image_size}px: expect ~{estimate_min:.1f} min on this machine now")
    cut = bool(args.max_minutes and len(seeds) > 1 and estimate_min > args.max_minutes)
    if cut:
        log(f"estimate {estimate_min:.1f} min > --max-minutes {args.max_minutes:g}: seed {seeds[0]} only "
            f"(~{per_seed / 60:.1f} min)")
        seeds = seeds[:1]

    runs = []
    for seed in seeds:
        dataset, images = data[seed]
        for letter in configs:
            name, overrides = CONFIGS[letter]
            cfg = make_config(overrides, seed=seed, image_size=args.image_size, epochs=args.epochs, threads=args.threads)
            log(f"{letter} ({name}) seed {seed}: {cfg.model}{' pretrained' if cfg.pretrained else ''} "
                f"{cfg.optimizer} lr {cfg.lr:g} wd {cfg.weight_decay:g} batch {cfg.batch_size} "
                f"augment {cfg.augment} pos_weight {cfg.pos_weight}")
            record = {"config": letter, "name": name, "overrides": overrides, "seed": seed,
                      "train_config": cfg.to_dict(), **train_one(cfg, dataset, images)}
            runs.append(record)
            if "last" in record:
                last, best = record["last"], record["best"]
                log(f"{letter} seed {seed}: val µF1 {last['val']['micro_f1']:.3f}, test µF1 "
                    f"{last['test']['micro_f1']:.3f} (baseline {record['baseline']['baseline/test/micro_f1']:.3f}), "
                    f"best epoch {best['epoch']} test µF1 {best['test']['micro_f1']:.3f}, "
                    f"{last['test']['pred_labels_per_image']:.2f} labels/img predicted "
                    f"(true {last['test']['true_labels_per_image']:.2f}), {record['wall_s']:.0f} s")
            else:
                log(f"{letter} seed {seed}: diverged ({record['diverged']})")

    rows = [summarise(letter, [r for r in runs if r["config"] == letter]) for letter in configs]
    print(table(rows, COLUMNS, title=f"means over seeds {','.join(map(str, seeds))}: {args.images} synthetic images, "
                                     f"{args.image_size}px, {args.epochs} epochs, threshold 0.5, cpu; test = last epoch; "
                                     f"tuned = test at per-label thresholds tuned on val; best-ep = test at the best val "
                                     f"epoch; base = the no-learning baseline of the same split"))
    params = {**vars(args), "configs": configs, "seeds_run": seeds, "seeds_cut_for_time": cut,
              "estimate_min": estimate_min, "config_overrides": {c: CONFIGS[c][1] for c in configs},
              "config_names": {c: CONFIGS[c][0] for c in configs}, "code": code,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    results = {"summary": rows, "runs": runs, "calibration": list(timings.values())}
    path = write_results("train_defaults", params, results, args.results_dir, started, variant=variant)
    print(f"wrote {path}")
    return {"summary": rows, "path": str(path)}


if __name__ == "__main__":
    main()
