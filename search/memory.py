"""Does the search's data fit the node's memory? Checked before Ray starts, and the object store sized for it.

    needs = search_needs(n_images, space, concurrency=2)
    check_fits(needs, available_bytes(), n_images)                        # or a SearchError, one line
    ray.init(object_store_memory=object_store_bytes(data.images.nbytes), ...)

Where the decoded images live during a search (bench/scale.py measures it):
- the driver reads them from the decode cache's memory map: page cache, which the kernel can give
  back, so it is not counted;
- Ray's object store holds them once per node (`tune.with_parameters`); its pages are shared memory
  that cannot be given back: counted once. When every trial asks one colour and size (`shipped_form`:
  the quick space's 64 px RGB) the store holds them converted to it, 1/4 of the bytes at 64 px;
- a CPU trial at the array's own size and colour reads the object store's copy in place
  (trainable/gym.py to_device_images); a downsampled or gray CPU trial holds its smaller array:
  counted per concurrent trial; a GPU trial's copy is in GPU memory, not counted here;
- each trial process (torch, its model) and the driver with Ray's own processes: fixed amounts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from search.options import SearchError
from trainable.config import COLOR_MODES

SIDE, RGB = 128, 3
"""the decoded array's side and channels (trainable/data.py)"""
CHANNELS = {color: channels for color, (_, channels) in COLOR_MODES.items()}
TRIAL_PROCESS_BYTES = 1 * 2**30
"""a CPU trial's own process: torch, the model, its batches (measured: bench/scale.py, top_processes_at_peak)"""
DRIVER_AND_RAY_BYTES = 2 * 2**30
"""the driver, the raylet, GCS and Ray's helper processes, without the data"""
STORE_HEADROOM = 1.05, 512 * 2**20
"""the object store a local Ray gets: the data x 1.05 + 512 MiB for Ray's own objects (Tune's results)"""


@dataclass(frozen=True)
class Needs:
    """What a search needs of one node's memory, in bytes, by where it lives."""

    store: int
    """the decoded array, once, in the object store"""
    trial_copies: int
    """the downsampled or gray copies of the concurrent CPU trials"""
    processes: int
    """the trial processes and the driver with Ray's"""

    @property
    def total(self) -> int:
        return self.store + self.trial_copies + self.processes


def available_bytes() -> int:
    """MemAvailable (what the kernel can give without swapping); the physical memory where /proc has none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _values(space: dict, name: str, default) -> list | None:
    """The values a space's parameter may take (a constant or a list of choices); None for a range."""
    value = space.get(name, default)
    if isinstance(value, dict):
        return None
    return value if isinstance(value, list) else [value]


def image_sizes(space: dict) -> list[int]:
    """The image sizes a space's trials may ask for (a constant, a list of choices, or the default 128)."""
    return [int(v) for v in _values(space, "image_size", SIDE) or [] if isinstance(v, (int, float))] or [SIDE]


def shipped_form(space: dict) -> tuple[str, int] | None:
    """(color, size) when every trial of `space` asks that one colour and size, smaller than the decoded RGB at
    128 px: the search ships its images converted to it (trainable/trial_data.py). None: RGB at 128 px."""
    sizes, colors = _values(space, "image_size", SIDE), _values(space, "color", "rgb")
    if not sizes or not colors or len(set(sizes)) != 1 or len(set(colors)) != 1:
        return None
    form = (str(colors[0]), int(sizes[0]))
    return None if form == ("rgb", SIDE) else form


def search_needs(n_images: int, space: dict, concurrency: int, on_gpu: bool = False) -> Needs:
    """The memory a search of `concurrency` trials at once over `space` needs on one node (module docstring)."""
    processes = TRIAL_PROCESS_BYTES * concurrency + DRIVER_AND_RAY_BYTES
    form = shipped_form(space)
    if form is not None:  # shipped in the one form every trial asks: CPU trials read it in place
        color, size = form
        return Needs(store=n_images * CHANNELS[color] * size * size, trial_copies=0, processes=processes)
    colors = _values(space, "color", "rgb") or list(CHANNELS)
    copy = 0
    if not on_gpu:
        largest = max((s for s in image_sizes(space) if s < SIDE), default=0)
        copy = n_images * RGB * largest * largest
        if "gray" in colors:
            copy = max(copy, n_images * SIDE * SIDE)
    return Needs(store=n_images * RGB * SIDE * SIDE, trial_copies=copy * concurrency, processes=processes)


def check_fits(needs: Needs, available: int, n_images: int) -> None:
    """Refuse, in one line, a search whose data does not fit: how much it needs, how much the node has, what to do."""
    if needs.total <= available:
        return
    per_image = (needs.store + needs.trial_copies) / max(n_images, 1)
    fits = max(0, int((available - needs.processes) / per_image)) if per_image else 0
    raise SearchError(
        f"the search needs ~{needs.total / 2**30:.1f} GiB of memory ({needs.store / 2**30:.1f} GiB of decoded images "
        f"in Ray's object store, {needs.trial_copies / 2**30:.1f} GiB of downsampled copies in the concurrent CPU "
        f"trials, {needs.processes / 2**30:.1f} GiB of processes) and this node has {available / 2**30:.1f} GiB "
        f"available: use --limit {fits} or fewer images, fewer trials at once (--concurrency), or smaller images "
        f"in the space (image_size)")


def check_search(n_images: int, space: dict, address: str | None, concurrency: int, cpus_per_trial: float | None,
                 trials: int) -> None:
    """The check a search makes before decoding (a local Ray only: a cluster's nodes are checked once joined, by
    check_nodes): its images, decoded, and its concurrent trials must fit this node's available memory."""
    if address or os.environ.get("LABELTUNE_RAY_ADDRESS"):
        return
    import torch

    slots = max(1, int((os.cpu_count() or 1) // (cpus_per_trial or 1)))
    at_once = min(trials, concurrency or slots)
    needs = search_needs(n_images, space, at_once, on_gpu=torch.cuda.is_available())
    check_fits(needs, available_bytes(), n_images)


def object_store_bytes(data_bytes: int) -> int:
    """The object store a local Ray gets for `data_bytes` of decoded images (STORE_HEADROOM)."""
    factor, extra = STORE_HEADROOM
    return int(math.ceil(data_bytes * factor)) + extra


def check_nodes(data_bytes: int, nodes: list[dict]) -> None:
    """On a cluster: refuse when an alive node's object store cannot hold the data once (ray.nodes() entries)."""
    for node in nodes:
        store = (node.get("Resources") or {}).get("object_store_memory")
        if node.get("Alive") and store is not None and store < data_bytes:
            raise SearchError(
                f"node {node.get('NodeManagerAddress', '?')}: its object store holds {store / 2**30:.1f} GiB and the "
                f"search's decoded images need {data_bytes / 2**30:.1f} GiB; start the node with a larger "
                f"--object-store-memory, or use --limit")
