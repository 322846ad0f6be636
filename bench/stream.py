"""Streaming shards to a trial with Ray Data, against the one in-memory array a trial reads today (issue 27 item 4).

labeltune hands every trial the decoded array (N x 3 x 128 x 128 uint8) through Ray's object store and, on a GPU,
copies it to the device once. Beyond one node's memory that cannot work; the way out is to stream shards. This
measures what streaming delivers to ONE trial on this machine, with no training (so the CPU's slow training does
not hide the cost):

  shards     the decode cache (a memory-mapped .npy) written as shards of --shard-images images
             (shard-00000.npy, ...) beside a manifest.json (source cache, N, shape, shard sizes)
  in_memory  what a trial does today: one epoch of shuffled batches gathered from the array (a permutation, then
             array[idx] per batch), read from the memory map (page cache warm after the first pass)
  stream     a Ray Data pipeline (read_numpy over the shards in an order shuffled each epoch, a local shuffle
             buffer of --shuffle-buffer images) consumed in one Ray actor, the trial, with iter_batches: images per
             second over a whole epoch, and the seconds to its first batch

A GPU trial consumes ~19,000 images/s (shared/PERF.md); streaming is worth offering as `--data-mode stream` only if
it delivers at least that to one trial. The JSON says the figure and the verdict.

    .venv/bin/python bench/stream.py --cache ~/.labeltune/cache/<fingerprint>-rgb-v1.npy   # 200k: ~10 GB of shards
    .venv/bin/python bench/stream.py --synthetic 20000        # an array made here, for a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from common import bench_root, log, write_results

GPU_TRIAL_IMG_S = 19_000
"""what one GPU trial consumes (shared/PERF.md, H200, 128 px): the rate a stream must deliver"""
BATCH = 256


def write_shards(array: np.ndarray, folder: Path, per_shard: int, source: str) -> dict:
    """The array as .npy shards of `per_shard` images and a manifest; a folder already complete for this source
    and shape is kept."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    want = {"source": source, "n": int(len(array)), "shape": list(array.shape[1:]), "per_shard": per_shard}
    if manifest_path.exists():
        have = json.loads(manifest_path.read_text())
        if {k: have.get(k) for k in want} == want:
            return have
    shards = []
    for k, start in enumerate(range(0, len(array), per_shard)):
        path = folder / f"shard-{k:05d}.npy"
        np.save(path, np.ascontiguousarray(array[start:start + per_shard]))
        shards.append({"file": path.name, "images": int(min(per_shard, len(array) - start))})
    manifest = {**want, "shards": shards}
    manifest_path.write_text(json.dumps(manifest, indent=1))  # last: a killed write leaves no manifest
    return manifest


def in_memory_epoch(array: np.ndarray, seed: int = 0) -> dict:
    """One shuffled epoch of gathered batches from the array, as the Gym's loader reads it on the CPU."""
    order = np.random.default_rng(seed).permutation(len(array))
    started = time.perf_counter()
    checksum = 0
    for start in range(0, len(order), BATCH):
        batch = array[np.sort(order[start:start + BATCH])]
        checksum += int(batch[:, 0, 0, 0].sum())
    seconds = time.perf_counter() - started
    return {"images": len(order), "seconds": seconds, "img_s": len(order) / seconds, "checksum": checksum}


def stream_epoch(folder: Path, manifest: dict, shuffle_buffer: int, epochs: int) -> list[dict]:
    """`epochs` epochs of a Ray Data stream of the shards into one actor; per epoch its img/s and first batch."""
    import ray

    paths = [str(folder / s["file"]) for s in manifest["shards"]]

    @ray.remote(num_cpus=1)
    class Trial:
        def epoch(self, ds, shuffle_buffer: int) -> dict:
            started = time.perf_counter()
            first, images = None, 0
            for batch in ds.iter_batches(batch_size=BATCH, batch_format="numpy",
                                         local_shuffle_buffer_size=shuffle_buffer or None):
                if first is None:
                    first = time.perf_counter() - started
                images += len(batch["data"])
            seconds = time.perf_counter() - started
            return {"images": images, "seconds": seconds, "img_s": images / seconds, "first_batch_s": first}

    trial = Trial.remote()
    out = []
    for epoch in range(epochs):
        # the shard order shuffled here, not by randomize_block_order: that is an all-to-all operation, which
        # reads every shard before the first batch (44-54 s at 200k images: results/stream-n200000-blockorder_2026-12-07.json)
        order = [paths[i] for i in np.random.default_rng(epoch).permutation(len(paths))]
        ds = ray.data.read_numpy(order)
        out.append(ray.get(trial.epoch.remote(ds, shuffle_buffer)))
        log(f"stream epoch {epoch + 1}: {out[-1]['img_s']:,.0f} img/s, first batch {out[-1]['first_batch_s']:.2f} s")
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cache", type=Path, help="a decode cache .npy (labeltune's <fingerprint>-rgb-v1.npy)")
    src.add_argument("--synthetic", type=int, help="make an array of N random images here instead")
    p.add_argument("--shards", type=Path, default=None, help="the shard folder (default: under the bench folder)")
    p.add_argument("--shard-images", type=int, default=10_000)
    p.add_argument("--shuffle-buffer", type=int, default=10_000, help="Ray Data's local shuffle buffer, images")
    p.add_argument("--epochs", type=int, default=2, help="stream epochs (the first reads the shards cold)")
    p.add_argument("--keep-shards", action="store_true")
    p.add_argument("--results-dir", default=None)
    args = p.parse_args(argv)
    if args.cache is not None and not args.cache.is_file():
        p.error(f"--cache {args.cache}: no such file (a decode cache is <cache dir>/<fingerprint>-rgb-v1.npy)")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import ray

    from search.console import quiet_ray

    quiet_ray()
    started = time.time()
    if args.cache is not None:
        array, source = np.load(args.cache, mmap_mode="r"), str(args.cache)
    else:
        array = np.random.default_rng(0).integers(0, 256, (args.synthetic, 3, 128, 128), dtype=np.uint8)
        source = f"synthetic-{args.synthetic}"
    folder = args.shards or bench_root() / f"stream-shards-{len(array)}"
    t = time.perf_counter()
    manifest = write_shards(array, folder, args.shard_images, source)
    shards_s = time.perf_counter() - t
    log(f"{len(manifest['shards'])} shards in {folder} ({shards_s:.0f} s)")
    memory = [in_memory_epoch(array, seed) for seed in range(2)]
    log(f"in memory: {memory[-1]['img_s']:,.0f} img/s (gathered shuffled batches, second pass)")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        stream = stream_epoch(folder, manifest, args.shuffle_buffer, args.epochs)
    finally:
        ray.shutdown()
    best = max(e["img_s"] for e in stream)
    verdict = ("offer --data-mode stream" if best >= GPU_TRIAL_IMG_S else
               f"not offered: the stream delivers {best:,.0f} img/s to one trial, below a GPU trial's "
               f"{GPU_TRIAL_IMG_S:,} (on this machine's {os.cpu_count()} cores)")
    log(verdict)
    results = {"n_images": len(array), "decoded_bytes": int(array.nbytes), "shards": len(manifest["shards"]),
               "write_shards_s": shards_s, "in_memory": memory, "stream": stream, "stream_best_img_s": best,
               "gpu_trial_img_s": GPU_TRIAL_IMG_S, "verdict": verdict,
               "epoch_s_at_best": {"stream": len(array) / best, "in_memory": len(array) / memory[-1]["img_s"]}}
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    path = write_results("stream", params, results, args.results_dir, started, variant=f"n{len(array)}")
    if not args.keep_shards and args.shards is None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
