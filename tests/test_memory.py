"""Issue 27: a search's data must fit the node's memory, checked before decoding and before Ray starts."""

from __future__ import annotations

import pytest

from search import memory
from search.options import SearchError

GiB = 2**30
IMAGE = 3 * 128 * 128


def test_needs_count_the_store_once_and_only_the_copies_a_cpu_trial_holds():
    n = 100_000
    full = memory.search_needs(n, {"image_size": 128, "color": ["rgb"]}, concurrency=2)
    assert full.store == n * IMAGE and full.trial_copies == 0  # full-size CPU trials read the store in place
    assert full.processes == 2 * memory.TRIAL_PROCESS_BYTES + memory.DRIVER_AND_RAY_BYTES
    small = memory.search_needs(n, {"image_size": [32, 64, 128]}, concurrency=3)
    assert small.trial_copies == 3 * n * 3 * 64 * 64  # the largest downsampled size, per concurrent trial
    gray = memory.search_needs(n, {"image_size": 128, "color": ["rgb", "gray"]}, concurrency=1)
    assert gray.trial_copies == n * 128 * 128
    assert memory.search_needs(n, {"image_size": [32, 64]}, 4, on_gpu=True).trial_copies == 0  # GPU memory
    shipped = memory.search_needs(n, {"image_size": 32, "color": ["rgb"]}, concurrency=2)
    assert shipped.store == n * 3 * 32 * 32 and shipped.trial_copies == 0  # shipped at the one size trials ask


@pytest.mark.parametrize("space, form", [
    ({"image_size": 32, "color": ["rgb"]}, ("rgb", 32)),
    ({"image_size": [64], "color": "gray"}, ("gray", 64)),
    ({"image_size": 128, "color": ["gray"]}, ("gray", 128)),
    ({"color": ["rgb"]}, None),  # the default 128 px RGB is the decoded array itself
    ({"image_size": [32, 64], "color": ["rgb"]}, None),
    ({"image_size": 32, "color": ["rgb", "gray"]}, None),
    ({"image_size": {"low": 32, "high": 64}}, None),
])
def test_a_space_whose_every_trial_asks_one_colour_and_size_ships_its_images_in_it(space, form):
    assert memory.shipped_form(space) == form


def test_the_presets_ship_what_their_trials_ask():
    from search.space import load_space

    assert memory.shipped_form(load_space("quick")) == ("rgb", 64)
    assert memory.shipped_form(load_space("default")) is None  # rgb and gray trials share the 128-px RGB array


def test_data_too_big_is_refused_in_one_line_with_what_fits():
    needs = memory.search_needs(200_000, {"image_size": [32, 64]}, concurrency=2)
    memory.check_fits(needs, needs.total, 200_000)  # exactly enough: no error
    with pytest.raises(SearchError) as err:
        memory.check_fits(needs, 8 * GiB, 200_000)
    text = str(err.value)
    assert "\n" not in text and f"~{needs.total / GiB:.1f} GiB" in text and "8.0 GiB available" in text
    fits = int(text.split("--limit ")[1].split()[0])
    assert 0 < fits < 200_000
    assert memory.search_needs(fits, {"image_size": [32, 64]}, 2).total <= 8 * GiB  # the suggestion fits


def test_a_cluster_node_whose_object_store_cannot_hold_the_data_is_named():
    nodes = [{"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"object_store_memory": 20 * GiB}},
             {"Alive": False, "NodeManagerAddress": "10.0.0.3", "Resources": {"object_store_memory": 1 * GiB}},
             {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"object_store_memory": 4 * GiB}}]
    memory.check_nodes(3 * GiB, nodes)
    with pytest.raises(SearchError, match=r"node 10\.0\.0\.2: its object store holds 4\.0 GiB .* need 9\.2 GiB"):
        memory.check_nodes(200_000 * IMAGE, nodes)


def test_a_local_search_too_big_for_memory_is_refused_before_decoding_and_ray(synth_dir, labeltune_home, monkeypatch):
    from click.testing import CliRunner

    from search import run as run_module
    from search.cli import main
    from trainable import data as data_mod

    monkeypatch.delenv("LABELTUNE_RAY_ADDRESS", raising=False)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 * GiB)
    monkeypatch.setattr(data_mod, "decode", lambda *a, **k: pytest.fail("decoded before the refusal"))
    monkeypatch.setattr(run_module, "init_ray", lambda *a, **k: pytest.fail("Ray started before the refusal"))
    result = CliRunner().invoke(main, ["search", "--data", str(synth_dir), "--no-track", "--trials", "2"])
    assert result.exit_code == 1, result.output
    assert "the search needs ~" in result.output and "1.0 GiB available" in result.output
    assert "Traceback" not in result.output


def test_shipped_images_are_the_trials_own_conversion_bit_for_bit_and_converted_once(
        synth_dir, tmp_path, monkeypatch):
    import numpy as np
    import torch

    from trainable import gym
    from trainable.trial_data import load_trial_data

    monkeypatch.setenv("LABELTUNE_CACHE", str(tmp_path / "cache"))
    _, full = load_trial_data(str(synth_dir), 0, False)
    for color, size in [("rgb", 32), ("gray", 64)]:
        _, shipped = load_trial_data(str(synth_dir), 0, False, form=(color, size))
        expected = gym.to_device_images(full.images, size, torch.device("cpu"), color).numpy()
        assert shipped.images.shape == expected.shape and np.array_equal(shipped.images, expected)
        assert np.array_equal(shipped.targets, full.targets)
    monkeypatch.setattr(gym, "convert_into", lambda *a, **k: pytest.fail("converted again on a cache hit"))
    _, cut = load_trial_data(str(synth_dir), 50, False, form=("rgb", 32))
    expected = gym.to_device_images(full.images[:50], 32, torch.device("cpu"), "rgb").numpy()
    assert np.array_equal(cut.images, expected) and np.array_equal(cut.targets, full.targets[:50])


@pytest.mark.parametrize("form", ["rgb", "rgb-32"])
def test_a_truncated_image_cache_is_made_again_with_a_warning(synth_dir, tmp_path, monkeypatch, caplog, form):
    import numpy as np

    from trainable import data as data_mod
    from trainable.trial_data import load_trial_data

    monkeypatch.setenv("LABELTUNE_CACHE", str(tmp_path / "cache"))
    dataset, data = load_trial_data(str(synth_dir), 0, False, form=("rgb", 32))
    good = np.array(data.images)  # out of the memory map, whose file is replaced next
    path = data_mod.cache_path(dataset.fingerprint, form)
    cut = path.read_bytes()[: path.stat().st_size // 2]
    path.unlink()
    path.write_bytes(cut)  # a copy cut short
    with caplog.at_level("WARNING", logger="trainable.data"):
        _, again = load_trial_data(str(synth_dir), 0, False, form=("rgb", 32))
    assert [r for r in caplog.records if str(path) in r.getMessage() and "making it again" in r.getMessage()]
    assert np.array_equal(again.images, good)
    assert np.load(path).shape == (len(dataset), 3, *(good.shape[-2:] if form == "rgb-32" else (128, 128)))


def test_a_cpu_trial_reads_a_shipped_array_in_place_and_cannot_ask_more_of_it():
    import numpy as np
    import torch

    from trainable.gym import to_device_images

    shipped = np.zeros((4, 3, 32, 32), dtype=np.uint8)
    shipped.flags.writeable = False  # as Ray's object store hands it over
    assert to_device_images(shipped, 32, torch.device("cpu"), "rgb").data_ptr() == shipped.ctypes.data
    with pytest.raises(ValueError, match="3 x 32 px: a trial cannot ask rgb at 64 px"):
        to_device_images(shipped, 64, torch.device("cpu"), "rgb")
    gray = np.zeros((4, 1, 32, 32), dtype=np.uint8)
    assert to_device_images(gray, 32, torch.device("cpu"), "gray").shape == (4, 1, 32, 32)
    with pytest.raises(ValueError, match="1 x 32 px: a trial cannot ask rgb at 32 px"):
        to_device_images(gray, 32, torch.device("cpu"), "rgb")  # a gray array cannot serve an RGB trial


def test_a_search_whose_trials_all_ask_32_px_puts_only_those_in_the_object_store(
        synth_dir, labeltune_home, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from search import run as run_module
    from search.cli import main

    stored = []

    def init_ray(address, data_bytes=0):
        stored.append(data_bytes)
        raise SearchError("stopped before Ray: the test has what it needs")

    monkeypatch.setattr(run_module, "init_ray", init_ray)
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"preset": "quick", "image_size": 32}))
    result = CliRunner().invoke(main, ["search", "--data", str(synth_dir), "--no-track", "--space", str(space)])
    assert result.exit_code == 1 and "stopped before Ray" in result.output, result.output
    assert stored == [160 * 3 * 32 * 32]  # not 160 x 3 x 128 x 128
