"""Threshold policy: when does a label deserve a threshold of its own, and when do they stay?

Promotion picks thresholds on the validation split and the user meets them on new images.
A threshold tuned for a label with a handful of validation positives fits noise (measured
on a 600-image search: per-label thresholds lowered test micro-F1 from 0.215 to 0.194).
The policy (`trainable.metrics.choose_thresholds`): re-choose the global threshold for
micro F1 on val, give a label its own threshold only when val holds at least
`min_positives` of its positives, keep the micro-F1 guard, and (the `cv` guards) keep the
per-label thresholds only when they beat the global one out of sample inside val.

The first run of this script (bench/results/thresholds_2026-12-01.json) chose
min_positives = 40 with the in-sample guard and failed its confirmation on seeds 5-9
(efficientnet_lite0, seeds 7 and 9: lower bounds -0.013 and -0.019). This run compares
guarded rules (`CANDIDATES`) without letting test choose:

  select   seeds 0-4: nested cross-validation inside the validation split. Outer 5 folds
           (seeded with OUTER_SEED + seed): each candidate rule and the re-chosen global
           threshold are chosen on 4/5 of val (a `cv` guard runs its own 5-fold CV inside
           those 4/5) and predict the held-out 1/5; the predictions are pooled over the folds.
           Per (seed, model): gain = micro-F1(rule) - micro-F1(global) of the pooled
           predictions, and its paired-bootstrap 95 % interval over val images (the same
           statistic the confirmation uses on test). Test splits are not read.
  choose   fixed before running (`choose`): the candidate whose lower bound is >= SELECT_MARGIN
           (-0.005, half the confirmation's margin: ten selection pairs cannot show a 1-in-10
           risk, so selection asks for a buffer) on the most selection pairs; among those, the
           highest mean gain; ties: the earlier in CANDIDATES (ordered from the most to the least
           conservative). "global" (gain 0) is a candidate, so a rule must pass every selection
           pair to replace it.
  confirm  seeds 10-14 (fresh: 5-9 were looked at by the first run and count only as "seen
           before", `--seen`): the chosen rule on the whole val split; test micro-F1 of the rule
           minus that of the re-chosen global threshold, paired bootstrap over test images
           (2,000 resamples). It passes when the lower 95 % bound is >= MARGIN on every seed.

Models: per seed a synthetic dataset of 6,000 images (data seed = split_seed = seed; val and
test hold 600 images each) and two trials of the `quick` kind at 32 px, trained with the Gym
in this process: a pretrained efficientnet_lite0 (adamw 1e-3, 2 epochs) and a small CNN from
scratch (cnn5 width 0.5, adamw 2e-3, pos_weight auto, 3 epochs), the strong and the weak end
of what a CPU search promotes. Each is scored at its last epoch. Their val and test outputs are
cached in .bench/thresholds/<seed>-<model>-<images>-<size>.npz (`-e<epochs>` when the epochs
differ from MODELS'), so re-evaluating rules needs no training.

    python bench/thresholds.py                       # ~35-60 min on 2 cores (a few minutes when cached)
    python bench/thresholds.py --select 0 --confirm 10 --images 1500 --epochs-scale 0.5   # smoke run
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common import REPO, load_decoded, log, synth_dataset, table, write_results
from trainable.metrics import choose_global_threshold, choose_thresholds  # after common (sys.path)

CANDIDATES: dict[str, dict | None] = {
    "global": None,                                                      # the re-chosen global threshold only
    "cv-40-m0.01": dict(min_positives=40, guard="cv", margin=0.01),
    "cv-40-m0.005": dict(min_positives=40, guard="cv", margin=0.005),
    "cvlabel-40": dict(min_positives=40, guard="cv-label"),
    "cv-40": dict(min_positives=40, guard="cv"),
    "cv-shrink0.5-40": dict(min_positives=40, guard="cv", shrink=0.5),
    "shrink0.5-40": dict(min_positives=40, guard="insample", shrink=0.5),
    "cvlabel-20": dict(min_positives=20, guard="cv-label"),
    "cv-20": dict(min_positives=20, guard="cv"),
    "insample-80": dict(min_positives=80, guard="insample"),
    "insample-40": dict(min_positives=40, guard="insample"),            # the rule of the first run
}
"""rule name -> choose_thresholds keyword arguments (None: global only), most conservative first"""
FOLDS = 5
"""outer folds of the selection's nested CV (the cv guards' inner folds: metrics.CV_FOLDS)"""
OUTER_SEED = 1000
BOOTSTRAP = 2000
MARGIN = -0.01
"""a confirming pair passes when the lower 95 % bound of (rule - global) test micro-F1 is at least this"""
SELECT_MARGIN = MARGIN / 2
"""a selection pair passes when the lower 95 % bound of (rule - global) nested-CV val micro-F1 is at least this"""
MODELS = {
    "efficientnet_lite0": dict(model="efficientnet_lite0", pretrained=True, optimizer="adamw", lr=1e-3,
                               batch_size=32, epochs=2),
    "cnn5": dict(model="cnn5", width=0.5, optimizer="adamw", lr=2e-3, batch_size=32, pos_weight="auto", epochs=3),
}
CACHE = REPO / ".bench" / "thresholds"


def micro_f1(targets: np.ndarray, pred: np.ndarray) -> float:
    tp = (pred & targets).sum()
    denominator = pred.sum() + targets.sum()
    return float(2 * tp / denominator) if denominator else 0.0


def paired_bootstrap(targets, pred_a, pred_b, seed: int) -> tuple[float, float, float]:
    """(point, low, high) of micro-F1(a) - micro-F1(b), 95 % interval over images resampled with replacement."""
    rng = np.random.default_rng(seed)
    stats = lambda p: np.stack([(p & targets).sum(1), p.sum(1), targets.sum(1)], axis=1)  # per image tp, pred, true
    sa, sb = stats(pred_a), stats(pred_b)
    idx = rng.integers(0, len(targets), (BOOTSTRAP, len(targets)))
    ta, tb = sa[idx].sum(1), sb[idx].sum(1)                                             # BOOTSTRAP x 3
    f1 = lambda t: 2 * t[:, 0] / np.maximum(t[:, 1] + t[:, 2], 1)
    diffs = f1(ta) - f1(tb)
    point = micro_f1(targets, pred_a) - micro_f1(targets, pred_b)
    return float(point), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


def rule_thresholds(rule: str, probs, targets, default: float) -> tuple[float, np.ndarray]:
    """(global threshold, the rule's per-label thresholds) chosen on (probs, targets)."""
    kwargs = CANDIDATES[rule]
    if kwargs is None:
        g = choose_global_threshold(probs, targets, default)
        return g, np.full(targets.shape[1], g)
    return choose_thresholds(probs, targets, default, **kwargs)


def nested_cv(rule: str, probs, targets, default: float, seed: int) -> dict:
    """Outer-CV pooled predictions inside val of the rule and of the global threshold, and their gap."""
    folds = np.random.default_rng(OUTER_SEED + seed).permutation(len(targets)) % FOLDS
    pred_rule, pred_global = np.zeros_like(targets), np.zeros_like(targets)
    own = []
    for k in range(FOLDS):
        tune, held = folds != k, folds == k
        g, t = rule_thresholds(rule, probs[tune], targets[tune], default)
        pred_global[held] = probs[held] >= g
        pred_rule[held] = probs[held] >= t[None, :]
        own.append(int((t != g).sum()))
    point, low, high = paired_bootstrap(targets, pred_rule, pred_global, seed)
    return {"cv_rule": micro_f1(targets, pred_rule), "cv_global": micro_f1(targets, pred_global),
            "gain": point, "low": low, "high": high, "passed": low >= SELECT_MARGIN, "own_per_fold": own}


def choose(scores: dict[str, list[dict]]) -> tuple[str, dict]:
    """The selection rule, fixed before any run: most pairs passing, then highest mean gain, then order."""
    summary = {rule: {"passed": sum(r["passed"] for r in rows), "pairs": len(rows),
                      "mean_gain": float(np.mean([r["gain"] for r in rows])),
                      "min_low": float(np.min([r["low"] for r in rows])),
                      "mean_cv_rule": float(np.mean([r["cv_rule"] for r in rows]))}
               for rule, rows in scores.items()}
    order = list(CANDIDATES)
    best = max(order, key=lambda rule: (summary[rule]["passed"], round(summary[rule]["mean_gain"], 12),
                                        -order.index(rule)))
    return best, summary


def cache_path(seed: int, name: str, n_images: int, image_size: int, epochs: int) -> Path:
    tail = "" if epochs == MODELS[name]["epochs"] else f"-e{epochs}"
    return CACHE / f"{seed}-{name}-{n_images}-{image_size}{tail}.npz"


def _save(path: Path, run: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, val_probs=run["val"][0], val_targets=run["val"][1], test_probs=run["test"][0],
                 test_targets=run["test"][1], labels=np.asarray(run["labels"]), threshold=run["threshold"],
                 epochs=run["epochs"], train_s=run["train_s"],
                 baseline_test_micro_f1=run["baseline_test_micro_f1"],
                 baseline_val_micro_f1=run["baseline_val_micro_f1"])
    os.replace(tmp, path)


def _load(path: Path, seed: int, name: str) -> dict:
    z = np.load(path)
    return {"seed": seed, "model": name, "epochs": int(z["epochs"]), "train_s": float(z["train_s"]),
            "val": (z["val_probs"], z["val_targets"].astype(bool)),
            "test": (z["test_probs"], z["test_targets"].astype(bool)),
            "labels": [str(l) for l in z["labels"]], "threshold": float(z["threshold"]),
            "baseline_test_micro_f1": float(z["baseline_test_micro_f1"]),
            "baseline_val_micro_f1": float(z["baseline_val_micro_f1"]), "cached": True}


def runs(seed: int, n_images: int, image_size: int, epochs_scale: float) -> list[dict]:
    """The two models of one seed (val and test outputs, baselines): from the cache, else trained and cached."""
    out, dataset, images = [], None, None
    for name, overrides in MODELS.items():
        epochs = max(1, round(overrides["epochs"] * epochs_scale))
        path = cache_path(seed, name, n_images, image_size, epochs)
        if path.exists():
            out.append(_load(path, seed, name))
            log(f"seed {seed} {name}: cached {path.name}")
            continue
        from trainable.baselines import for_splits
        from trainable.config import TrainConfig
        from trainable.gym import Gym

        if dataset is None:
            dataset, images = load_decoded(synth_dataset(n_images, seed))
        cfg = TrainConfig(**{**overrides, "epochs": epochs}, image_size=image_size, split_seed=seed, seed=seed,
                          device="cpu")
        start = time.time()
        gym = Gym(cfg, images, dataset.targets, dataset.labels, data_fingerprint=dataset.fingerprint)
        gym.fit()
        val_probs, val_targets, _ = gym.outputs("val")
        test_probs, test_targets, _ = gym.outputs("test")
        _, base = for_splits(dataset.targets, gym.splits, dataset.labels)
        run = {"seed": seed, "model": name, "epochs": epochs, "train_s": round(time.time() - start, 1),
               "val": (np.asarray(val_probs, np.float32), np.asarray(val_targets) > 0),
               "test": (np.asarray(test_probs, np.float32), np.asarray(test_targets) > 0),
               "labels": list(dataset.labels), "threshold": float(cfg.threshold),
               "baseline_test_micro_f1": float(base["baseline/test/micro_f1"]),
               "baseline_val_micro_f1": float(base["baseline/val/micro_f1"]), "cached": False}
        _save(path, run)
        out.append(run)
        log(f"seed {seed} {name}: {epochs} epochs in {run['train_s']} s, cached {path.name}")
    return out


def confirm_row(run: dict, chosen: str) -> dict:
    """The chosen rule on the whole val split against the re-chosen global threshold, on test."""
    (vp, vt), (tp, tt) = run["val"], run["test"]
    g, t = rule_thresholds(chosen, vp, vt, run["threshold"])
    pred_rule, pred_global = tp >= t[None, :], tp >= g
    diff, low, high = paired_bootstrap(tt, pred_rule, pred_global, run["seed"])
    others = {}  # information only: every candidate's test gain (these seeds were trained after the choice)
    for rule in CANDIDATES:
        rg, rt = (g, t) if rule == chosen else rule_thresholds(rule, vp, vt, run["threshold"])
        others[rule] = micro_f1(tt, tp >= rt[None, :]) - micro_f1(tt, tp >= rg)
    return {"seed": run["seed"], "model": run["model"], "epochs": run["epochs"], "train_s": run["train_s"],
            "from_cache": run["cached"], "baseline_test_micro_f1": run["baseline_test_micro_f1"],
            "val_positives": dict(zip(run["labels"], vt.sum(0).tolist())),
            "global_threshold": g, "thresholds": dict(zip(run["labels"], t.tolist())),
            "own_thresholds": int((t != g).sum()),
            "val_global": micro_f1(vt, vp >= g), "val_rule": micro_f1(vt, vp >= t[None, :]),
            "test_global": micro_f1(tt, pred_global), "test_rule": micro_f1(tt, pred_rule),
            "diff": diff, "low": low, "high": high, "passed": low >= MARGIN,
            "test_gain_by_candidate_info_only": others}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--select", default="0,1,2,3,4", help="seeds that choose the rule (val only)")
    parser.add_argument("--confirm", default="10,11,12,13,14", help="fresh seeds that confirm it on test")
    parser.add_argument("--seen", default="", help="seeds looked at before (5-9): reported, not in the verdict")
    parser.add_argument("--images", type=int, default=6000, help="synthetic images per seed")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every model's epochs (smoke runs)")
    args = parser.parse_args()
    seeds = lambda text: [int(s) for s in text.split(",") if s != ""]  # noqa: E731
    select, confirm, seen = seeds(args.select), seeds(args.confirm), seeds(args.seen)
    if set(select) & set(confirm) or set(seen) & set(confirm):
        parser.error("confirming seeds must differ from the selection seeds and from the seen ones")
    log(f"{len(select) + len(confirm) + len(seen)} seeds x {len(MODELS)} models on {args.images} images at "
        f"{args.image_size} px; {len(CANDIDATES)} candidate rules")

    scores: dict[str, list[dict]] = {rule: [] for rule in CANDIDATES}
    selection = []
    for seed in select:
        for run in runs(seed, args.images, args.image_size, args.epochs_scale):
            vp, vt = run["val"]
            row = {"seed": seed, "model": run["model"], "val_images": len(vt), "train_s": run["train_s"],
                   "from_cache": run["cached"]}
            t0 = time.time()
            for rule in CANDIDATES:
                row[rule] = nested_cv(rule, vp, vt, run["threshold"], seed)
                scores[rule].append(row[rule])
            selection.append(row)
            log(f"seed {seed} {run['model']}: nested CV of {len(CANDIDATES)} rules in {time.time() - t0:.0f} s; gains "
                + " ".join(f"{rule} {row[rule]['gain']:+.4f}/{row[rule]['low']:+.4f}" for rule in CANDIDATES))
    chosen, summary = choose(scores) if selection else (None, {})
    log("selection:", {rule: (s["passed"], round(s["mean_gain"], 4)) for rule, s in summary.items()}, "-> chosen", chosen)

    confirmation = [confirm_row(run, chosen) for seed in confirm
                    for run in runs(seed, args.images, args.image_size, args.epochs_scale)] if chosen else []
    seen_before = [confirm_row(run, chosen) for seed in seen
                   for run in runs(seed, args.images, args.image_size, args.epochs_scale)] if chosen else []
    passed = bool(confirmation) and all(r["passed"] for r in confirmation)
    results = {"candidates": CANDIDATES, "selection_rule": choose.__doc__, "selection_summary": summary,
               "chosen": chosen, "chosen_kwargs": CANDIDATES.get(chosen) if chosen else None,
               "selection": selection, "confirmation": confirmation, "confirmed": passed, "margin": MARGIN,
               "select_margin": SELECT_MARGIN,
               "seen_before_not_in_verdict": seen_before,
               "seen_before_passed": all(r["passed"] for r in seen_before) if seen_before else None}
    path = write_results("thresholds_guarded", vars(args) | {"models": MODELS, "folds": FOLDS,
                                                             "outer_seed": OUTER_SEED, "bootstrap": BOOTSTRAP},
                         results)
    print(table([{"rule": rule, **s} for rule, s in summary.items()],
                [("rule", "rule", ""), ("passed", "pairs passed", ""), ("mean_gain", "mean gain", "+.4f"),
                 ("min_low", "min low 95%", "+.4f"), ("mean_cv_rule", "mean CV micro-F1", ".4f")],
                "selection (nested CV inside val, seeds " + args.select + ")"))
    for title, rows in (("confirmation (test, seeds " + args.confirm + ")", confirmation),
                        ("seen before, not in the verdict (test, seeds " + args.seen + ")", seen_before)):
        if rows:
            print("\n" + table([{**r, "ok": "yes" if r["passed"] else "NO"} for r in rows],
                               [("seed", "seed", ""), ("model", "model", ""), ("baseline_test_micro_f1", "baseline", ".4f"),
                                ("global_threshold", "global t", ".2f"), ("test_global", "global", ".4f"),
                                ("test_rule", chosen, ".4f"), ("own_thresholds", "own thr.", ""),
                                ("diff", "diff", "+.4f"), ("low", "low 95%", "+.4f"), ("high", "high 95%", "+.4f"),
                                ("ok", "pass", "")], title))
    print(f"\nchosen: {chosen}; confirmed: {passed}; wrote {path}")


if __name__ == "__main__":
    main()
