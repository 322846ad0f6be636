"""Ensemble promotion: does averaging the top 3 trials beat promoting the single best one?

Per seed: a synthetic dataset (data seed = split_seed = search seed), the demo's search
(`quick` space, 6 trials x 3 epochs, 2 at a time, no MLflow), then `search.promote.promote`
twice without registering: the single best trial, and `ensemble=3` (the top 3 distinct
trials as promote ranks them, sigmoid outputs averaged, thresholds chosen on val for the
ensemble). Both are scored on the same held-out test split, next to the no-learning
baseline. The decision between them would be made on val: both val figures are recorded.

    python bench/ensemble.py                          # ~10 min on 2 quiet cores
    python bench/ensemble.py --seeds 0 --trials 3 --epochs 1 --images 300   # smoke run
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np

from common import bench_root, log, synth_dataset, table, use_bench_decode_cache, write_results
from search.options import SearchOptions  # after common, which puts the repository on sys.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--k", type=int, default=3, help="ensemble size")
    parser.add_argument("--space", default="quick")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    log(f"{len(seeds)} seeds x ({args.trials} trials x {args.epochs} epochs + 2 promotions) on {args.images} images: "
        f"about {2.5 * len(seeds) * args.images / 1200 * args.trials / 6 * args.epochs / 3:.0f} min on 2 quiet cores")
    use_bench_decode_cache()
    from search.promote import promote
    from search.run import run_search

    storage = bench_root() / "ensemble-searches"
    rows = []
    for seed in seeds:
        name = f"ensemble-seed{seed}"
        shutil.rmtree(storage / name, ignore_errors=True)
        t = time.time()
        run_search(SearchOptions(data=str(synth_dataset(args.images, seed)), space=args.space, trials=args.trials,
                                 epochs=args.epochs, concurrency=2, seed=seed, split_seed=seed, name=name,
                                 storage=str(storage), track=False, verbose=False))
        search_s = time.time() - t
        single = promote(name, storage=str(storage), register=False, allow_below_baseline=True)
        ensemble = promote(name, storage=str(storage), register=False, allow_below_baseline=True, ensemble=args.k)
        row = {"seed": seed, "search_s": round(search_s, 1),
               "baseline_test_micro_f1": single.baselines["baseline/test/micro_f1"],
               "baseline_test_macro_f1": single.baselines["baseline/test/macro_f1"],
               "members": [{"trial": m.trial_id, "model": m.config.get("model"), **m.scores} for m in ensemble.members]}
        for kind, p in (("single", single), ("ensemble", ensemble)):
            row[kind] = {"val_micro_f1": p.val["per-label"]["val/micro_f1"],
                         "test_micro_f1": p.test_per_label["test/micro_f1"],
                         "test_macro_f1": p.test_per_label["test/macro_f1"],
                         "test_micro_f1_global": p.test_global["test/micro_f1"]}
        rows.append(row)
        log(f"seed {seed}: single test micro-F1 {row['single']['test_micro_f1']:.4f}, "
            f"ensemble of {args.k} {row['ensemble']['test_micro_f1']:.4f} (baseline {row['baseline_test_micro_f1']:.4f})")

    def mean(kind: str, key: str) -> float:
        return float(np.mean([r[kind][key] for r in rows]))

    summary = {kind: {key: mean(kind, key) for key in rows[0][kind]} for kind in ("single", "ensemble")}
    summary["ensemble_minus_single_test_micro_f1"] = [r["ensemble"]["test_micro_f1"] - r["single"]["test_micro_f1"]
                                                      for r in rows]
    summary["ensemble_minus_single_test_macro_f1"] = [r["ensemble"]["test_macro_f1"] - r["single"]["test_macro_f1"]
                                                      for r in rows]
    path = write_results("ensemble", vars(args), {"seeds": rows, "summary": summary})
    print(table([{"seed": r["seed"], "base": r["baseline_test_micro_f1"], "s_mi": r["single"]["test_micro_f1"],
                  "e_mi": r["ensemble"]["test_micro_f1"], "s_ma": r["single"]["test_macro_f1"],
                  "e_ma": r["ensemble"]["test_macro_f1"], "s_v": r["single"]["val_micro_f1"],
                  "e_v": r["ensemble"]["val_micro_f1"]} for r in rows],
                [("seed", "seed", ""), ("base", "baseline test µF1", ".4f"), ("s_mi", "single test µF1", ".4f"),
                 ("e_mi", f"ens{args.k} test µF1", ".4f"), ("s_ma", "single test macro", ".4f"),
                 ("e_ma", f"ens{args.k} test macro", ".4f"), ("s_v", "single val µF1", ".4f"),
                 ("e_v", f"ens{args.k} val µF1", ".4f")], "ensemble vs single best (test split)"))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
