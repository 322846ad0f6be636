"""Search spaces: the define-by-run function suggests each knob only where it applies."""

from __future__ import annotations

import optuna
import pytest

from search.space import PRESETS, define_by_run, load_space, to_train_config, validate_space

ASL_KNOBS = {"asl_gamma_neg", "asl_gamma_pos", "asl_clip"}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_asl_knobs_are_suggested_only_when_the_loss_is_asl(preset):
    space = load_space(preset)
    validate_space(space, where=preset)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    losses = set()
    for _ in range(40):
        trial = study.ask()
        config = define_by_run(trial, space, constants={"epochs": 1}, pretrained_models=())
        study.tell(trial, 0.0)
        losses.add(config["loss"])
        if config["loss"] == "asl":
            assert ASL_KNOBS <= set(trial.params) and ASL_KNOBS <= set(config)
            cfg = to_train_config(config)
            assert {k: getattr(cfg, k) for k in ASL_KNOBS} == {k: trial.params[k] for k in ASL_KNOBS}
            assert space["asl_clip"]["low"] <= cfg.asl_clip <= space["asl_clip"]["high"]
        else:
            assert not ASL_KNOBS & set(trial.params) and not ASL_KNOBS & set(config)
    assert "asl" in losses and len(losses) > 1  # both branches were taken


def test_a_fixed_trial_without_asl_needs_no_asl_values():
    # FixedTrial raises on any parameter it was not given: a bce trial must not ask for the asl knobs
    space = {"model": "cnn5", "optimizer": "adamw", "loss": ["bce", "asl"], "asl_clip": {"low": 0.0, "high": 0.2}}
    config = define_by_run(optuna.trial.FixedTrial({"loss": "bce"}), space, constants={}, pretrained_models=())
    assert config["loss"] == "bce" and "asl_clip" not in config
    config = define_by_run(optuna.trial.FixedTrial({"loss": "asl", "asl_clip": 0.1}), space, constants={},
                           pretrained_models=())
    assert config["asl_clip"] == 0.1


def test_a_space_file_can_narrow_the_asl_knobs(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("preset: quick\nloss: [asl]\nasl_gamma_neg: 4.0\nasl_clip: {low: 0.0, high: 0.1}\n")
    space = load_space(str(path))
    assert space["asl_gamma_neg"] == 4.0 and space["asl_clip"] == {"low": 0.0, "high": 0.1}
