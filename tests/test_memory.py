"""Issue 27: a search's data must fit the node's memory, checked before decoding and before Ray starts."""

from __future__ import annotations

import pytest

from search import memory
from search.options import SearchError

GiB = 2**30
IMAGE = 3 * 128 * 128


def test_needs_count_the_store_once_and_only_the_copies_a_cpu_trial_holds():
    n = 100_000
    full = memory.search_needs(n * IMAGE, {"image_size": 128, "color": ["rgb"]}, concurrency=2)
    assert full.store == n * IMAGE and full.trial_copies == 0  # full-size CPU trials read the store in place
    assert full.processes == 2 * memory.TRIAL_PROCESS_BYTES + memory.DRIVER_AND_RAY_BYTES
    small = memory.search_needs(n * IMAGE, {"image_size": [32, 64, 128]}, concurrency=3)
    assert small.trial_copies == 3 * n * 3 * 64 * 64  # the largest downsampled size, per concurrent trial
    gray = memory.search_needs(n * IMAGE, {"image_size": 128, "color": ["rgb", "gray"]}, concurrency=1)
    assert gray.trial_copies == n * 128 * 128
    assert memory.search_needs(n * IMAGE, {"image_size": 32}, 4, on_gpu=True).trial_copies == 0  # GPU memory


def test_data_too_big_is_refused_in_one_line_with_what_fits():
    needs = memory.search_needs(200_000 * IMAGE, {"image_size": 32}, concurrency=2)
    memory.check_fits(needs, needs.total, 200_000)  # exactly enough: no error
    with pytest.raises(SearchError) as err:
        memory.check_fits(needs, 8 * GiB, 200_000)
    text = str(err.value)
    assert "\n" not in text and f"~{needs.total / GiB:.1f} GiB" in text and "8.0 GiB available" in text
    fits = int(text.split("--limit ")[1].split()[0])
    assert 0 < fits < 200_000
    assert memory.search_needs(fits * IMAGE, {"image_size": 32}, 2).total <= 8 * GiB  # the suggestion fits


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
