"""The steps of `search.promote.promote` one by one (issue 23 item 4), fast: no Ray, no real search.

promote() reads as rank -> load -> score the members -> choose thresholds -> score the policies
-> save -> register; each step is tested here on synthetic arrays, hand-made Tune results or a
"search" of three one-epoch cnn4 trials on 80 synthetic images (a few seconds on 2 cores), with
the figures recomputed independently (scikit-learn, trainable.gym.Predictor). The model card's
sections and the registry's steps are tested on a Promotion built by hand; one test registers
into a fresh sqlite MLflow store. tests/test_promote.py runs the whole thing on a real search.
"""

from __future__ import annotations

import json
import logging
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from trainable.metrics import CV_METRIC, PRIMARY_METRIC

SEARCH = "tiny"
TRIAL_SCORES = {"t_b": 0.7, "t_a": 0.6, "t_c": 0.5}
"""trial id -> the val/micro_f1 its best checkpoint is ranked by (t_b is best)"""
TRIAL_THRESHOLDS = {"t_b": 0.4, "t_a": 0.5, "t_c": 0.5}


# ---- fakes of what Tune gives back -----------------------------------------------------------------


@dataclass
class FakeResult:
    """The part of a Tune Result that promotion reads: id, folder, config and (checkpoint, metrics) pairs."""

    path: str
    metrics: dict
    config: dict = field(default_factory=dict)
    best_checkpoints: list = field(default_factory=list)

    def get_best_checkpoint(self, metric: str, mode: str):
        """As Tune's: the best checkpoint among those that reported `metric` (None if none did)."""
        valid = [(c, m) for c, m in self.best_checkpoints if m.get(metric) is not None]
        if not valid:
            return None
        pick = max if mode == "max" else min
        return pick(valid, key=lambda row: row[1][metric])[0]


def fake_result(trial_id: str | None, scores: list, folder: Path, config: dict | None = None, weights=None):
    """A result whose checkpoints checkpoint_00000<i> reported scores[i] (None: not reported); those in `weights`
    (default: all) get a checkpoint file (an empty one unless one is there), the others only their record."""
    path = folder / f"trial_{trial_id or 'noid'}"
    for i in range(len(scores)) if weights is None else weights:
        (path / f"checkpoint_{i:06d}").mkdir(parents=True, exist_ok=True)
        (path / f"checkpoint_{i:06d}" / "checkpoint.pt").touch()
    checkpoints = [(types.SimpleNamespace(path=str(path / f"checkpoint_{i:06d}")),
                    {} if s is None else {PRIMARY_METRIC: s, "epoch": i + 1}) for i, s in enumerate(scores)]
    return FakeResult(str(path), {"trial_id": trial_id} if trial_id else {}, config or {}, checkpoints)


# ---- a tiny finished search, without Ray ------------------------------------------------------------


@dataclass
class TinySearch:
    root: Path
    """the storage folder: root/tiny is the search"""
    data_dir: Path
    dataset: object
    data: object
    """trainable.trial_data.TrialData of every image"""
    results: list
    """FakeResults of the three trials, each pointing at its real checkpoint"""

    @property
    def path(self) -> Path:
        return self.root / SEARCH


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinySearch:
    """Three one-epoch cnn4 trials (32 px) on 80 synthetic images, checkpoints in Tune's layout, a search record."""
    from search.record import SearchRecord
    from trainable import synth
    from trainable.config import TrainConfig
    from trainable.gym import Gym
    from trainable.trial_data import load_trial_data

    base = tmp_path_factory.mktemp("tiny-search")
    with pytest.MonkeyPatch.context() as mp:  # as conftest's per-test fixture, which module fixtures run before
        mp.setenv("LABELTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        synth.write_dataset(base / "data", n=80, test=0, seed=0, progress=False)
        dataset, data = load_trial_data(str(base / "data"), 0, False)
    root = base / "runs"
    results = []
    for seed, (trial_id, score) in enumerate(TRIAL_SCORES.items(), start=1):
        cfg = TrainConfig(epochs=1, device="cpu", threads=1, model="cnn4", image_size=32, width=0.25, seed=seed,
                          threshold=TRIAL_THRESHOLDS[trial_id])
        gym = Gym(cfg, data.images, data.targets, data.labels, data_fingerprint=data.fingerprint)
        gym.fit()
        trial_dir = root / SEARCH / f"trial_{trial_id}"
        gym.save(trial_dir / "checkpoint_000000" / "checkpoint.pt", {PRIMARY_METRIC: score, "epoch": 1})
        (trial_dir / "result.json").write_text(json.dumps({PRIMARY_METRIC: score, "training_iteration": 1}) + "\n")
        results.append(fake_result(trial_id, [score], root / SEARCH,
                                   {"model": "cnn4", "threshold": TRIAL_THRESHOLDS[trial_id], "seed": seed}))
    SearchRecord(name=SEARCH, storage=str(root), data=str(base / "data"), data_fingerprint=dataset.fingerprint,
                 labels=list(dataset.labels), n_images=80, space_source="test", space={"seed": [1, 2, 3]},
                 options={"trials": 3, "epochs": 1}, wall_s=12.0).write()
    return TinySearch(root, base / "data", dataset, data, results)


def split_indices(n: int) -> dict[str, np.ndarray]:
    from trainable.data import split

    return dict(zip(("train", "val", "test"), split(n, (0.8, 0.1, 0.1), 0)))  # TrainConfig's defaults


def checkpoint_probs(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities of a saved checkpoint (single or ensemble) through the prediction path, not the Gym's."""
    from trainable import checkpoint as ckpt_io
    from trainable.ensemble import load_predictor

    return load_predictor(ckpt_io.load(path), "cpu").probabilities(images)


# ---- step 1: rank ------------------------------------------------------------------------------------


def test_rank_results_takes_each_trials_best_checkpoint_skips_nan_and_breaks_ties_by_trial_id(tmp_path):
    from search.promote import rank_results

    results = [
        fake_result("c", [0.3, 0.6, 0.4], tmp_path),          # best at its 2nd checkpoint, not its last
        fake_result("a", [0.6], tmp_path),                    # ties with c: the smaller trial id first
        fake_result("d", [float("nan")], tmp_path),           # NaN never ranks
        fake_result("e", [None], tmp_path),                   # never reported the metric
        fake_result("f", [], tmp_path),                       # kept no checkpoint
        fake_result("b", [0.9, 0.1], tmp_path),
        fake_result(None, [0.2], tmp_path),                   # no trial_id: its folder names it
        fake_result("g", [0.95, 0.05], tmp_path, weights=[]),  # only records: nothing to promote
    ]
    ranked = rank_results(results, PRIMARY_METRIC, "max")
    assert [(Path(r.path).name, folder.name, m[PRIMARY_METRIC]) for r, folder, m in ranked] == [
        ("trial_b", "checkpoint_000000", 0.9), ("trial_a", "checkpoint_000000", 0.6),
        ("trial_c", "checkpoint_000001", 0.6), ("trial_noid", "checkpoint_000000", 0.2)]
    lowest = rank_results(results, PRIMARY_METRIC, "min")
    assert [(Path(r.path).name, m[PRIMARY_METRIC]) for r, _, m in lowest] == [
        ("trial_b", 0.1), ("trial_noid", 0.2), ("trial_c", 0.3), ("trial_a", 0.6)]


def test_rank_trials_keeps_the_top_k_and_refuses_a_search_with_fewer(tmp_path, monkeypatch):
    import search.promote as promote_mod
    from search.promote import rank_trials
    from search.promotion import PromotionError

    results = [fake_result("x", [0.2], tmp_path), fake_result("y", [0.5], tmp_path), fake_result("z", [0.4], tmp_path)]
    monkeypatch.setattr(promote_mod, "read_results", lambda path, metric, mode: results)
    assert [r.metrics["trial_id"] for r, _, _ in rank_trials(Path("/s"), "s", PRIMARY_METRIC, 2)] == ["y", "z"]
    with pytest.raises(PromotionError, match="--ensemble 4: search s has only 3 trials with a checkpoint"):
        rank_trials(Path("/s"), "s", PRIMARY_METRIC, 4)
    monkeypatch.setattr(promote_mod, "read_results", lambda path, metric, mode: [fake_result("n", [None], tmp_path)])
    with pytest.raises(PromotionError, match="no trial kept a checkpoint with val/micro_f1"):
        rank_trials(Path("/s"), "s", PRIMARY_METRIC, 1)


# ---- step 2: load ------------------------------------------------------------------------------------


def test_load_search_data_takes_the_records_limit_and_refuses_changed_data(tiny):
    from search.promote import load_search_data
    from search.promotion import PromotionError
    from search.record import SearchRecord
    from trainable.data import load

    record = SearchRecord.read(tiny.path)
    record.options = {"limit": 50, "skip_bad_images": False}
    dataset, data = load_search_data(record, SEARCH)
    assert data.images.shape[0] == 50 and dataset.fingerprint == record.data_fingerprint
    np.testing.assert_array_equal(data.targets, load(tiny.data_dir).targets[:50])
    assert data.labels == list(tiny.dataset.labels)

    record.data_fingerprint = "an-older-fingerprint"
    with pytest.raises(PromotionError, match=f"the data in {record.data} changed since search {SEARCH} ran"):
        load_search_data(record, SEARCH)


def test_load_search_data_reads_the_array_the_trials_were_shipped(tiny):
    """A search whose every trial asked 32 px RGB shipped that array; promotion scores on the very same one."""
    import torch

    from search.promote import load_search_data
    from search.record import SearchRecord
    from trainable.gym import to_device_images
    from trainable.trial_data import load_trial_data

    record = SearchRecord.read(tiny.path)
    record.options, record.space = {"limit": 0}, {**record.space, "image_size": 32, "color": ["rgb"]}
    _, data = load_search_data(record, SEARCH)
    _, full = load_trial_data(record.data, 0, False)
    assert data.images.shape == (len(full.targets), 3, 32, 32)
    np.testing.assert_array_equal(data.images, to_device_images(full.images, 32, torch.device("cpu"), "rgb").numpy())


def test_load_members_reads_each_checkpoint_with_the_score_it_was_ranked_by(tiny):
    from search.promote import load_members

    ranked = [(r, Path(r.best_checkpoints[0][0].path), r.best_checkpoints[0][1]) for r in tiny.results]
    members, checkpoints = load_members(ranked, PRIMARY_METRIC)
    assert [m.trial_id for m in members] == list(TRIAL_SCORES)
    assert [m.val_score for m in members] == list(TRIAL_SCORES.values())
    assert [m.epoch for m in members] == [1, 1, 1]
    assert [m.config for m in members] == [r.config for r in tiny.results]
    assert [m.checkpoint for m in members] == [tiny.path / f"trial_{t}" / "checkpoint_000000" / "checkpoint.pt"
                                               for t in TRIAL_SCORES]
    assert [c["config"]["threshold"] for c in checkpoints] == list(TRIAL_THRESHOLDS.values())
    assert all(m.scores == {} for m in members)  # scored in step 3


# ---- step 3: score the members -----------------------------------------------------------------------


def test_score_members_scores_each_at_its_own_threshold_and_averages_their_outputs(tiny):
    from search.promote import load_members, score_members

    ranked = [(r, Path(r.best_checkpoints[0][0].path), r.best_checkpoints[0][1]) for r in tiny.results[:2]]
    members, checkpoints = load_members(ranked, PRIMARY_METRIC)
    probs, splits = score_members(members, checkpoints, tiny.data)

    expected_splits = split_indices(len(tiny.data.targets))
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(splits[split], expected_splits[split])
    per_member = {}
    for split in ("val", "test"):
        images, targets = tiny.data.images[splits[split]], tiny.data.targets[splits[split]]
        per_member[split] = [checkpoint_probs(m.checkpoint, images) for m in members]
        for member, member_probs in zip(members, per_member[split]):
            predictions = member_probs >= TRIAL_THRESHOLDS[member.trial_id]
            for average in ("micro", "macro"):
                assert member.scores[f"{split}/{average}_f1"] == pytest.approx(
                    f1_score(targets, predictions, average=average, zero_division=0)), (member.trial_id, split)
        np.testing.assert_allclose(probs[split], np.mean(per_member[split], axis=0), atol=1e-6)
    assert not np.allclose(per_member["val"][0], per_member["val"][1]), "two members with the same outputs"


# ---- step 4: choose thresholds -----------------------------------------------------------------------


def synthetic_outputs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of 3 labels: a frequent one best cut low, a frequent one best cut high, a rare one."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, 3)) < [0.5, 0.4, 0.05]).astype(np.uint8)
    noise = rng.random((n, 3))
    probs = np.where(targets == 1, 0.15 + 0.35 * noise, 0.35 * noise)  # label 0: positives in 0.15..0.5
    probs[:, 1] = np.where(targets[:, 1] == 1, 0.7 + 0.3 * noise[:, 1], 0.75 * noise[:, 1])
    return probs.astype(np.float32), targets


def test_choose_policy_thresholds_gives_each_policy_its_thresholds_and_the_cross_validated_figure():
    from search.promote import choose_policy_thresholds, trial_threshold
    from trainable.metrics import MIN_LABEL_POSITIVES, THRESHOLD_GRID, cv_predictions

    probs, targets = synthetic_outputs()
    trial_t = trial_threshold({"config": {"threshold": 0.5}})
    assert trial_t == 0.5 and trial_threshold({"config": {}}) == 0.5
    policies, val_cv = choose_policy_thresholds(probs, targets, trial_t)

    assert list(policies) == ["trial", "global", "per-label"] and policies["trial"] == 0.5
    micro = {t: f1_score(targets, probs >= t, average="micro") for t in [0.5, *THRESHOLD_GRID]}
    assert micro[policies["global"]] == pytest.approx(max(micro.values())), "the global threshold is not the best"
    per_label = np.asarray(policies["per-label"])
    rare = targets.sum(axis=0) < MIN_LABEL_POSITIVES
    assert rare.tolist() == [False, False, True]
    assert (per_label[rare] == policies["global"]).all(), "a rare label got a threshold of its own"
    assert per_label[0] < per_label[1], "the two frequent labels want thresholds of their own here"
    assert f1_score(targets, probs >= per_label, average="micro") > micro[policies["global"]]
    # the figure that decides: the per-label rule's out-of-fold micro F1 inside val
    _, own_pred = cv_predictions(probs, targets, default=0.5)
    assert val_cv == pytest.approx(f1_score(targets, own_pred, average="micro", zero_division=0))


# ---- step 5: score the policies ----------------------------------------------------------------------


def test_score_policies_scores_val_and_test_at_each_policys_thresholds():
    from search.promote import score_policies

    val_probs, val_targets = synthetic_outputs(seed=1)
    test_probs, test_targets = synthetic_outputs(n=120, seed=2)
    policies = {"trial": 0.5, "global": 0.3, "per-label": np.array([0.25, 0.7, 0.3])}
    scored = score_policies(["a", "b", "c"], {"val": val_probs, "test": test_probs},
                            {"val": val_targets, "test": test_targets}, policies)

    assert list(scored) == ["val", "test"] and all(list(scored[s]) == list(policies) for s in scored)
    for split, probs, targets in (("val", val_probs, val_targets), ("test", test_probs, test_targets)):
        for policy, thresholds in policies.items():
            predictions, figures = probs >= thresholds, scored[split][policy]
            assert figures[f"{split}/micro_f1"] == pytest.approx(f1_score(targets, predictions, average="micro"))
            assert figures[f"{split}/macro_f1"] == pytest.approx(f1_score(targets, predictions, average="macro",
                                                                          zero_division=0))
            assert figures[f"{split}/micro_precision"] == pytest.approx(
                precision_score(targets, predictions, average="micro", zero_division=0))
            assert figures[f"{split}/f1/b"] == pytest.approx(f1_score(targets[:, 1], predictions[:, 1]))
            assert figures[f"{split}/tp/a"] == int((predictions[:, 0] & (targets[:, 0] == 1)).sum())


# ---- step 6: save --------------------------------------------------------------------------------------


def test_save_promoted_writes_the_one_members_model_with_the_new_thresholds_and_metrics(tiny, tmp_path):
    import torch

    from search.promote import promoted_metrics, save_promoted
    from trainable import checkpoint as ckpt_io

    source = ckpt_io.load(Path(tiny.results[0].best_checkpoints[0][0].path) / "checkpoint.pt")
    scored = {"val": {"per-label": {"val/micro_f1": 0.61}}, "test": {"per-label": {"test/micro_f1": 0.52}}}
    metrics = promoted_metrics(scored, {"baseline/val/micro_f1": 0.3}, 0.55)
    assert metrics == {"test/micro_f1": 0.52, "val/micro_f1": 0.61, "baseline/val/micro_f1": 0.3, CV_METRIC: 0.55}
    thresholds = [0.05 * (i + 1) for i in range(len(source["labels"]))]
    path = save_promoted(tmp_path / "promoted" / "checkpoint.pt", [source], thresholds, metrics, "ignored-for-one")

    saved = ckpt_io.load(path)
    assert ckpt_io.kind(saved) == "single" and saved["thresholds"] == pytest.approx(thresholds)
    assert saved["metrics"] == {**source["metrics"], **metrics}  # the trial's val/micro_f1 0.7 replaced by 0.61
    assert saved["metrics"][PRIMARY_METRIC] == 0.61 and source["metrics"][PRIMARY_METRIC] == 0.7
    assert not saved["optimizer_state"] and saved["optimizer_state"] is not None
    assert (saved["epoch"], saved["config"], saved["labels"], saved["data_fingerprint"]) == (
        source["epoch"], source["config"], source["labels"], source["data_fingerprint"])
    assert all(torch.equal(saved["model_state"][k], v) for k, v in source["model_state"].items())


def test_save_promoted_writes_several_members_as_an_ensemble(tiny, tmp_path):
    from search.promote import save_promoted
    from trainable import checkpoint as ckpt_io

    sources = [ckpt_io.load(Path(r.best_checkpoints[0][0].path) / "checkpoint.pt") for r in tiny.results[:2]]
    thresholds = [0.3] * len(sources[0]["labels"])
    path = save_promoted(tmp_path / "checkpoint.pt", sources, thresholds, {CV_METRIC: 0.5}, "fp-of-the-data")
    saved = ckpt_io.load(path)
    assert ckpt_io.kind(saved) == "ensemble" and len(saved["members"]) == 2
    assert saved["metrics"] == {CV_METRIC: 0.5} and saved["data_fingerprint"] == "fp-of-the-data"
    assert saved["thresholds"] == pytest.approx(thresholds)
    assert [m["config"]["seed"] for m in saved["members"]] == [1, 2]


# ---- the recipe, without registering ------------------------------------------------------------------


@pytest.mark.parametrize("ensemble", [1, 2])
def test_promote_without_register_runs_every_step_on_a_tiny_search(tiny, monkeypatch, ensemble):
    import search.promote as promote_mod
    from trainable import checkpoint as ckpt_io
    from trainable.baselines import for_splits

    monkeypatch.setattr(promote_mod, "read_results", lambda path, metric, mode: tiny.results)
    p = promote_mod.promote(SEARCH, storage=str(tiny.root), register=False, ensemble=ensemble,
                            allow_below_baseline=True)

    assert (p.trial_id, p.val_score, p.epoch) == ("t_b", 0.7, 1)
    assert [m.trial_id for m in p.members] == list(TRIAL_SCORES)[:ensemble]
    assert p.checkpoint.parent.parent == tiny.path / "promoted"
    assert p.card == (p.checkpoint.parent / "model_card.md").resolve()
    saved = ckpt_io.load(p.checkpoint)
    assert ckpt_io.kind(saved) == ("single" if ensemble == 1 else "ensemble")
    assert saved["thresholds"] == pytest.approx(list(p.thresholds.values()))
    assert saved["metrics"][CV_METRIC] == pytest.approx(p.val_cv_micro_f1)
    # Each policy's val and test figures, recomputed from the saved model's outputs (an ensemble's: the mean).
    assert p.test_global is p.test["global"] and p.test_per_label is p.test["per-label"]
    splits = split_indices(len(tiny.data.targets))
    policies = {"trial": TRIAL_THRESHOLDS["t_b"], "global": p.global_threshold, "per-label": saved["thresholds"]}
    for split, scored in (("val", p.val), ("test", p.test)):
        probs = checkpoint_probs(p.checkpoint, tiny.data.images[splits[split]])
        for policy, thresholds in policies.items():
            expected = f1_score(tiny.data.targets[splits[split]], probs >= np.asarray(thresholds), average="micro",
                                zero_division=0)
            assert scored[policy][f"{split}/micro_f1"] == pytest.approx(expected, abs=1e-6), (split, policy)
    assert p.baselines == pytest.approx(for_splits(tiny.data.targets, splits, tiny.data.labels)[1])
    card = p.card.read_text()
    assert "- registered: no" in card and ("## Ensemble members" in card) == (ensemble > 1)
    assert "budget used: 3 trials, 3 trial-epochs" in card


# ---- the model card, section by section ---------------------------------------------------------------


LABELS = ["a", "b"]


def figures(split: str, seed: int) -> dict:
    """A metrics dict of one split as MetricsCollector names them, with made-up values."""
    rng = np.random.default_rng(seed)
    out = {f"{split}/{name}": float(rng.random()) for name in
           ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "exact_match", "map")}
    for label, (tp, fp, fn) in zip(LABELS, ((3, 1, 2), (0, 0, 4))):
        out.update({f"{split}/tp/{label}": tp, f"{split}/fp/{label}": fp, f"{split}/fn/{label}": fn,
                    f"{split}/f1/{label}": float(rng.random())})
    return out


def hand_promotion(tmp_path: Path, members: int = 1, cv: float = 0.6, **fields):
    """A Promotion built by hand: baseline val micro-F1 0.5, `members` trials."""
    from search.promotion import POLICIES, Member, Promotion

    trials = [Member(f"t{i}", tmp_path / f"trial_t{i}" / "checkpoint.pt", 3 + i, 0.8 - 0.1 * i,
                     {"model": "cnn4", "threshold": 0.4},
                     {"val/micro_f1": 0.1 + i, "test/micro_f1": 0.2, "val/macro_f1": 0.3, "test/macro_f1": 0.4})
              for i in range(members)]
    val = {policy: figures("val", i) for i, policy in enumerate(POLICIES)}
    test = {policy: figures("test", 10 + i) for i, policy in enumerate(POLICIES)}
    baselines = {f"baseline/{split}/{name}": 0.5 for split in ("val", "test")
                 for name in ("micro_f1", "macro_f1", "exact_match", "map")}
    baselines.update({"baseline/k/micro_f1": 1.0, "baseline/k/macro_f1": 2.0, "baseline/k/exact_match": 0.0})
    values = dict(search="s", trial_id="t0", checkpoint=tmp_path / "promoted" / "checkpoint.pt",
                  source_checkpoint=trials[0].checkpoint, epoch=3, val_score=0.8, thresholds={"a": 0.3, "b": 0.45},
                  test_global=test["global"], test_per_label=test["per-label"], card=tmp_path / "card.md",
                  global_threshold=0.45, val=val, test=test, baselines=baselines, baseline_rule="predict a",
                  members=trials, n_images=10, val_cv_micro_f1=cv)
    return Promotion(**{**values, **fields})


def hand_record(tmp_path: Path, **fields):
    from search.record import SearchRecord

    values = dict(name="s", storage=str(tmp_path / "runs"), data="/data", data_fingerprint="fp", split_seed=7,
                  space_source="quick", space={"lr": [0.1]}, space_fingerprint="sfp", wall_s=61.6,
                  options={"trials": 4, "epochs": 2})
    return SearchRecord(**{**values, **fields})


def test_card_headline_warns_only_below_the_baseline(tmp_path):
    from search.promote import card_headline

    above = card_headline(hand_promotion(tmp_path, cv=0.6, model_name="m", version="3", alias="gold", alias_set=True))
    assert above[0] == "# Model card: m v3 (@gold)" and len(above) == 4 and not any("Warning" in x for x in above)
    assert above[2].startswith(f"**Test micro-F1 {figures('test', 12)['test/micro_f1']:.4f}** against 0.5000 for "
                               f"the best no-learning baseline (predict a); validation micro-F1 0.6000")
    below = card_headline(hand_promotion(tmp_path, cv=0.5))  # not above 0.5: below
    assert below[0] == "# Model card: labeltune v- (no alias)"
    assert below[4].endswith("The alias was not moved to it.") and below[5] == ""
    allowed = card_headline(hand_promotion(tmp_path, cv=0.4, allowed_below_baseline=True))
    assert allowed[4].endswith("It was promoted with --allow-below-baseline.")


def test_card_figures_put_each_figure_beside_its_baseline_and_rule(tmp_path):
    from search.promote import card_figures

    p = hand_promotion(tmp_path, members=2)
    lines = card_figures(p)
    assert lines[:2] == ["| figure | model (per-label thresholds) | baseline | baseline rule |", "|---|---|---|---|"]
    assert lines[2] == f"| val micro_f1 | {p.val['per-label']['val/micro_f1']:.4f} | 0.5000 | top 1 labels |"
    assert lines[4] == f"| val exact_match | {p.val['per-label']['val/exact_match']:.4f} | 0.5000 | top 0 labels |"
    assert lines[9] == f"| test map | {p.test_per_label['test/map']:.4f} | 0.5000 | label prior |"
    assert lines[10] == "" and "from search `s`, ensemble of 2 trials; best trial `t0` at epoch 3" in lines[11]


def test_card_data_counts_images_unlabelled_ones_and_each_label(tmp_path):
    from search.promote import card_data

    targets = np.array([[1, 0], [1, 1], [0, 0], [0, 0], [1, 0]], dtype=np.uint8)
    lines = card_data(hand_record(tmp_path), LABELS, targets, {"split_fractions": [0.6, 0.2, 0.2]})
    assert lines[:3] == ["", "## Data", ""]
    assert "- images: 5, unlabelled: 2" in lines and "- split_seed: 7 (train/val/test [0.6, 0.2, 0.2])" in lines
    assert lines[-2:] == ["| a | 3 |", "| b | 1 |"]
    assert "- split_seed: 7 (train/val/test [0.8, 0.1, 0.1])" in card_data(hand_record(tmp_path), LABELS, targets, {})


def test_card_search_counts_the_budget_from_the_trials_results(tmp_path):
    from search.promote import card_search

    record = hand_record(tmp_path, warm_start={"old": {"added": 2, "skipped": 1}}, stop_reason="plateau")
    for trial, epochs in (("trial_x", 2), ("trial_y", 1)):
        (record.path / trial).mkdir(parents=True)
        (record.path / trial / "result.json").write_text("".join(json.dumps({"e": e}) + "\n" for e in range(epochs)))
    lines = card_search(record)
    assert lines[3:] == [
        "- space: `quick` (fingerprint `sfp`)", '- space definition: `{"lr": [0.1]}`',
        "- budget used: 2 trials, 3 trial-epochs, wall time 62 s (budget 4 trials x 2 epochs)",
        "- warm start (finished trials of earlier searches in the study before its first suggestion): "
        "old (2 added, 1 outside this space)",
        "- ended before its budget: plateau"]
    assert len(card_search(hand_record(tmp_path))) == 6  # no warm start, no early stop


def test_card_ensemble_config_and_policies_tables(tmp_path):
    from search.promote import card_config, card_ensemble, card_policies

    assert card_ensemble(hand_promotion(tmp_path)) == []
    p = hand_promotion(tmp_path, members=2)
    assert card_ensemble(p)[-1] == "| t1 | cnn4 | 4 | 1.1000 | 0.2000 | 0.3000 | 0.4000 |"
    assert card_config({"lr": 0.1, "batch_size": 32})[-2:] == ["| batch_size | 32 |", "| lr | 0.1 |"]
    # Issue 25 item 8: as MLflow names it (`lr`, not `lr_adamw`), floats at 4 significant figures
    searched = {"optimizer": "adamw", "lr_adamw": 1.1851473873082037e-05, "weight_decay": 0.00012345678901234567,
                "batch_size": 32}
    assert card_config(searched)[-4:] == ["| batch_size | 32 |", "| lr | 1.185e-05 |", "| optimizer | adamw |",
                                          "| weight_decay | 0.0001235 |"]
    rows = [line for line in card_policies(p) if line.startswith("| ") and "micro F1 |" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| trial's own (0.40)", "| global, re-chosen on val (0.45)", "| per-label"]
    m = p.test["global"]
    assert rows[1] == (f"| global, re-chosen on val (0.45) | {p.val['global']['val/micro_f1']:.4f} | "
                       f"{m['test/micro_f1']:.4f} | {m['test/macro_f1']:.4f} | {m['test/micro_precision']:.4f} | "
                       f"{m['test/micro_recall']:.4f} | {m['test/exact_match']:.4f} | {m['test/map']:.4f} |")


def test_card_per_label_computes_precision_and_recall_from_the_counts(tmp_path):
    from search.promote import card_per_label

    p = hand_promotion(tmp_path)
    lines = card_per_label(p, LABELS)
    t, g = p.test_per_label, p.test_global
    assert lines[5] == f"| a | 0.30 | 0.750 | 0.600 | {t['test/f1/a']:.3f} | {g['test/f1/a']:.3f} |"  # 3/4, 3/5
    assert lines[6] == f"| b | 0.45 | 0.000 | 0.000 | {t['test/f1/b']:.3f} | {g['test/f1/b']:.3f} |"  # nothing found
    assert lines[-1] == (f"Validation micro F1: {p.val['global']['val/micro_f1']:.4f} with the global threshold, "
                         f"{p.val['per-label']['val/micro_f1']:.4f} with the per-label thresholds.")


def test_card_lineage_names_runs_checkpoints_and_what_was_registered(tmp_path):
    from search.promote import card_lineage

    p = hand_promotion(tmp_path, members=2, parent_run_id="par", run_id="run")
    lines = card_lineage(p)
    assert lines[3:6] == ["- search run: `par`", "- trial run: `-`", "- promotion run: `run`"]
    assert f"- member checkpoint: `{p.members[1].checkpoint}`" in lines
    assert lines[-2:] == ["- registered: no", ""]
    p.model_name, p.version, p.alias = "m", "4", "gold"
    assert card_lineage(p)[-2] == "- registered: `models:/m/4` (no alias)"
    p.alias_set = True
    assert card_lineage(p)[-2] == "- registered: `models:/m@gold` (version 4)"


def test_write_card_joins_the_sections_in_order(tmp_path):
    from search import promote as promote_mod

    p, record = hand_promotion(tmp_path, card=tmp_path / "deep" / "card.md"), hand_record(tmp_path)
    targets = np.array([[1, 0], [0, 1]], dtype=np.uint8)
    promote_mod.write_card(p, record, types.SimpleNamespace(labels=LABELS), targets, types.SimpleNamespace(config={}))
    text = p.card.read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == ["# Model card: labeltune v- (no alias)", "## Data", "## Search", "## Best config",
                        "## Threshold policies", "## Test split, per label", "## Lineage"]
    assert text == "\n".join([*promote_mod.card_headline(p), *promote_mod.card_figures(p),
                              *promote_mod.card_data(record, LABELS, targets, {}), *promote_mod.card_search(record),
                              *promote_mod.card_config({}), *promote_mod.card_policies(p),
                              *promote_mod.card_per_label(p, LABELS), *promote_mod.card_lineage(p)])
    assert text.endswith("- registered: no\n")


# ---- the registry's steps ------------------------------------------------------------------------------


def run(run_id: str, trial_id: str = ""):
    return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id),
                                 data=types.SimpleNamespace(tags={"labeltune.trial_id": trial_id}))


def test_lineage_tags_link_the_parent_and_the_trial_run_or_warn(tmp_path, caplog):
    from search.tracking.registry import lineage_tags

    p = hand_promotion(tmp_path, members=2)
    tags = lineage_tags(p, run("parent"), [run("other", "t9"), run("mine", "t0")], "sqlite:///x")
    assert tags == {"labeltune.search": "s", "labeltune.role": "promotion", "labeltune.trial_id": "t0",
                    "labeltune.checkpoint": str(p.source_checkpoint), "labeltune.search_run_id": "parent",
                    "labeltune.trial_run_id": "mine", "labeltune.ensemble": "t0,t1"}
    assert (p.parent_run_id, p.trial_run_id) == ("parent", "mine")

    single = hand_promotion(tmp_path)
    with caplog.at_level(logging.WARNING, logger="search.tracking.registry"):
        tags = lineage_tags(single, None, [], "sqlite:///elsewhere")
    assert set(tags) == {"labeltune.search", "labeltune.role", "labeltune.trial_id", "labeltune.checkpoint"}
    assert (single.parent_run_id, single.trial_run_id) == ("", "")
    assert "search s has no runs in the MLflow store sqlite:///elsewhere" in caplog.text


class FakeRegistry:
    """An MlflowClient's registry calls: the versions it holds, and every write made to it."""

    def __init__(self, versions: dict[str, list[int]]):
        self.versions = versions
        self.calls: list[tuple] = []

    def search_registered_models(self, filter_string):
        return [name for name in self.versions if filter_string == f"name = '{name}'"]

    def search_model_versions(self, filter_string):
        name = filter_string.split("'")[1]
        return [types.SimpleNamespace(version=str(v)) for v in self.versions.get(name, [])]

    def update_model_version(self, name, version, description):
        self.calls.append(("description", name, version, description))

    def set_model_version_tag(self, name, version, key, value):
        self.calls.append(("tag", name, version, key, value))

    def set_registered_model_alias(self, name, alias, version):
        self.calls.append(("alias", name, alias, version))


def test_next_version_is_one_past_the_highest_registered():
    from search.tracking.registry import next_version

    client = FakeRegistry({"m": [1, 10, 3], "empty": []})
    assert next_version(client, "m") == "11"
    assert next_version(client, "new") == "1"
    assert next_version(client, "empty") == "1"


def test_registered_metrics_are_the_numbers_of_the_promotion(tmp_path):
    from search.tracking.registry import registered_metrics

    p = hand_promotion(tmp_path, val_cv_micro_f1=0.61)
    p.test_per_label = {"test/micro_f1": 0.5, "test/tp/a": 3, "test/note": "text", "test/flag": True}
    p.test_global = {"test/micro_f1": 0.4, "test/flag": np.bool_(True)}
    p.val["per-label"] = {"val/micro_f1": 0.7, "val/f1/a": 0.9}
    p.baselines = {"baseline/val/micro_f1": 0.5, "baseline/val/macro_f1": 0.2}
    # a few keys (the promotion's experiment charts them); every figure is in promotion_scores.csv
    assert registered_metrics(p) == {"test/micro_f1": 0.5, "global_threshold/test/micro_f1": 0.4,
                                     "val/micro_f1": 0.7, CV_METRIC: 0.61, "search/baseline_val_micro_f1": 0.5}


def test_describe_version_writes_description_tags_and_the_alias_only_when_set(tmp_path):
    from search.tracking.registry import describe_version, version_description, version_tags

    p = hand_promotion(tmp_path, members=2, cv=0.4, model_name="m", version="5", alias="gold")
    record = hand_record(tmp_path)
    assert version_tags(p, record) == {"labeltune.search": "s", "labeltune.trial": "t0,t1",
                                       "labeltune.data_fingerprint": "fp", "labeltune.beats_baseline": "false"}
    client = FakeRegistry({})
    describe_version(client, p, record)
    assert client.calls[0] == ("description", "m", "5", version_description(p))
    assert [c[3:] for c in client.calls[1:]] == list(version_tags(p, record).items())
    p.alias_set = True
    client = FakeRegistry({})
    describe_version(client, p, record)
    assert client.calls[-1] == ("alias", "m", "gold", "5")


@pytest.mark.timeout(120)
def test_register_model_logs_registers_and_fixes_the_card_when_the_version_moved(tiny, tmp_path, labeltune_home,
                                                                               monkeypatch):
    """A fresh sqlite store: the version the registry gives is written on the card, even when it is not the one
    next_version foresaw (another promotion registered in between); the alias moves only when asked."""
    import mlflow

    import search.tracking.registry as registry

    p = hand_promotion(tmp_path, cv=0.6, checkpoint=Path(tiny.results[0].best_checkpoints[0][0].path) /
                       "checkpoint.pt", thresholds=dict(zip(tiny.data.labels, [0.5] * len(tiny.data.labels))))
    record = hand_record(tmp_path, tracking_uri=None)
    uri = registry.store.tracking_uri()
    written = []

    def write_card():
        written.append(p.version)
        p.card.write_text(f"card of version {p.version}, run {p.run_id}")

    next_version = registry.next_version
    monkeypatch.setattr(registry, "next_version", lambda client, name: "7")  # the registry will say 1
    registry.register_model(p, record, "m", "gold", None, write_card, move_alias=False)
    assert written == ["7", "1"] and p.version == "1" and p.run_id
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    version = client.get_model_version("m", "1")
    assert version.run_id == p.run_id and version.tags["labeltune.beats_baseline"] == "true"
    assert client.get_registered_model("m").aliases == {}
    assert client.get_run(p.run_id).data.metrics[CV_METRIC] == pytest.approx(0.6)
    # MLflow's downloads build a client from the global URI, even given tracking_uri: unset, it makes ./mlflow.db.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    logged = client.download_artifacts(p.run_id, "model/card.md", str(tmp_path / "dl"))
    assert Path(logged).read_text() == f"card of version 7, run {p.run_id}"  # logged before the registry answered
    assert p.card.read_text() == f"card of version 1, run {p.run_id}"  # the copy on disk, fixed

    monkeypatch.setattr(registry, "next_version", next_version)
    registry.register_model(p, record, "m", "gold", None, write_card, move_alias=True)
    assert p.version == "2" and written[-1] == "2"
    assert {alias: str(v) for alias, v in client.get_registered_model("m").aliases.items()} == {"gold": "2"}
