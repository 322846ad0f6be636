"""Ray Tune's own cost per trial, with the Tuner shaped the way labeltune builds it.

N trivial trials (a function trainable that reports once; no torch, no data), through
`tune.Tuner` with labeltune's TuneConfig shape: OptunaSearch over a define-by-run space with
TPESampler(multivariate, group, scaled start-up), ASHA on training_iteration, reuse_actors=True,
short trial folders, metric/mode in TuneConfig and in the searcher, verbose 0. Prints

  wall / N                         seconds of search wall time per trial;
  overhead per trial slot          wall x slots / N - mean trial run time: the time a CPU slot spends
                                   on a trial beyond the trial's own work (Ray's definition below);
  steady overhead per trial slot   the same after the first wave of trials (worker start-up excluded);

next to Ray's release test `tune_scalability_bookkeeping_overhead` (workload
test_bookkeeping_overhead.py: 10,000 trials of 1 s on one 16-CPU node; Ray's docs record 715.27 s
against a 625 s minimum, i.e. 715.27 x 16 / 10,000 - 1 = 0.144 s per trial per slot).

    python bench/tune_overhead.py                    # 200 trials on 2 CPUs (~1-2 min)
    python bench/tune_overhead.py --trials 1000 --cpus 16 --trial-seconds 1   # Ray's shape, scaled down
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
import time

from common import bench_root, log, results_variant, table, write_results

RAY_RELEASE = {"test": "tune_scalability_bookkeeping_overhead", "trials": 10_000, "cpus": 16, "trial_s": 1.0,
               "observed_s": 715.27, "minimum_s": 625.0,
               "source": "docs.ray.io tune/tutorials/tune-scalability (Scalability and Overhead Benchmarks)"}
RAY_RELEASE["overhead_per_trial_slot_s"] = round(
    RAY_RELEASE["observed_s"] * RAY_RELEASE["cpus"] / RAY_RELEASE["trials"] - RAY_RELEASE["trial_s"], 3)


def trivial_trial(config: dict) -> None:
    """Reports once: its own run time (and optionally a tiny checkpoint, as every labeltune epoch does)."""
    from ray import tune

    start = time.perf_counter()
    if config["sleep"]:
        time.sleep(config["sleep"])
    metrics = {"score": config["x"], "run_s": time.perf_counter() - start}
    if config["checkpoint"]:
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "checkpoint.pt"), "wb") as f:
                f.write(b"\0" * 1024)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
    else:
        tune.report(metrics)


def define_by_run(trial, sleep: float, checkpoint: bool) -> dict:
    trial.suggest_float("x", 0.0, 1.0)
    return {"sleep": sleep, "checkpoint": checkpoint}


def short_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"  # as search.tuner.trial_dirname (not imported: that pulls in torch)


def build(args, storage: str, callbacks: list):
    from optuna.samplers import TPESampler
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    space = functools.partial(define_by_run, sleep=args.trial_seconds, checkpoint=args.checkpoint)
    if args.searcher == "optuna":
        startup = max(2, min(10, args.trials // 4))  # as search.tuner.build_tuner
        search_alg = OptunaSearch(space=space, metric="score", mode="max",
                                  sampler=TPESampler(seed=0, n_startup_trials=startup, multivariate=True, group=True))
        param_space = None
    else:  # Tune's own random generator: separates the searcher's cost from Tune's
        search_alg = None
        param_space = {"x": tune.uniform(0.0, 1.0), "sleep": args.trial_seconds, "checkpoint": args.checkpoint}
    return tune.Tuner(
        tune.with_resources(trivial_trial, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="score", mode="max", search_alg=search_alg,
            scheduler=ASHAScheduler(time_attr="training_iteration", max_t=1, grace_period=1, reduction_factor=3),
            num_samples=args.trials, reuse_actors=True, trial_dirname_creator=short_dirname),
        run_config=tune.RunConfig(name="tune-overhead", storage_path=storage, callbacks=callbacks, verbose=0),
    )


def make_clock():
    from ray.tune import Callback

    class ResultClock(Callback):
        """Driver-side time of every result, to split the first wave (worker start-up) from steady state."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.times.append(time.time())

    return ResultClock()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray (1 per trial)")
    p.add_argument("--trial-seconds", type=float, default=0.0, help="each trial sleeps this long (Ray's test: 1)")
    p.add_argument("--searcher", choices=("optuna", "random"), default="optuna",
                   help="optuna: labeltune's TPE searcher; random: Tune's BasicVariantGenerator")
    p.add_argument("--checkpoint", action="store_true", help="each trial reports a 1 KB checkpoint, as labeltune's do")
    p.add_argument("--results-dir", default=None)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import ray

    slots = min(args.cpus, args.trials)
    log(f"{args.trials} trials on {args.cpus} CPUs: expect ~{(10 + args.trials * (0.4 + args.trial_seconds) / slots) / 60:.1f} min "
        f"(ray.init ~10 s + ~0.4 s per trial per slot on 2 cores)")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # as labeltune
    started = time.time()
    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=200 * 2**20)
    init_s = time.perf_counter() - t
    storage = tempfile.mkdtemp(prefix="tune-overhead-", dir=bench_root())
    clock = make_clock()
    try:
        tuner = build(args, storage, [clock])
        t = time.time()
        grid = tuner.fit()
        wall = time.time() - t
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)

    frame = grid.get_dataframe()
    run_s = [float(v) for v in frame.get("run_s", []) if v == v]
    done, errors = len(run_s), sum(1 for r in grid if r.error)
    mean_run = sum(run_s) / max(1, done)
    times = sorted(clock.times)
    steady = None
    if len(times) > slots:  # results after the first wave: one trial per slot finished per interval
        steady = (times[-1] - times[slots - 1]) * slots / (len(times) - slots) - mean_run
    results = {
        "ray_init_s": init_s, "wall_s": wall, "trials": args.trials, "trials_reported": done, "errors": errors,
        "slots": slots, "mean_trial_run_s": mean_run,
        "first_result_s": times[0] - t if times else None,
        "wall_per_trial_s": wall / args.trials,
        "wall_minus_run_per_trial_s": (wall - sum(run_s) / slots) / args.trials,
        "overhead_per_trial_slot_s": wall * slots / args.trials - mean_run,
        "steady_overhead_per_trial_slot_s": steady,
        "ray_release_test": RAY_RELEASE,
    }
    rows = [
        {"what": "labeltune-shaped Tuner (this run)", "trials": args.trials, "slots": slots,
         "per_trial": results["wall_per_trial_s"], "per_slot": results["overhead_per_trial_slot_s"],
         "steady": steady},
        {"what": f"Ray release test {RAY_RELEASE['test']}", "trials": RAY_RELEASE["trials"],
         "slots": RAY_RELEASE["cpus"], "per_trial": RAY_RELEASE["observed_s"] / RAY_RELEASE["trials"],
         "per_slot": RAY_RELEASE["overhead_per_trial_slot_s"], "steady": None},
    ]
    print(table(rows, [("what", "", ""), ("trials", "trials", ","), ("slots", "CPU slots", ""),
                       ("per_trial", "wall/N s", ".3f"), ("per_slot", "overhead/trial/slot s", ".3f"),
                       ("steady", "same, steady s", ".3f")],
                title=f"Tune overhead: {args.searcher} searcher + ASHA, reuse_actors=True, trials of "
                      f"{args.trial_seconds:g} s{' + 1 KB checkpoint' if args.checkpoint else ''}"))
    print(f"ray.init {init_s:.1f} s (not in wall); wall {wall:.1f} s; {done}/{args.trials} trials reported, "
          f"{errors} errors; first result after {results['first_result_s'] or 0:.1f} s")
    variant = results_variant(args, parse_args)  # other options: a file of their own
    path = write_results("tune_overhead", vars(args), results, args.results_dir, started, variant=variant)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
