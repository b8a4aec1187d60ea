"""Config: defaults are valid, every wrong value names its setting and what is accepted."""

import json

import pytest

from oal_widget.config import Config, field_names


def test_defaults_are_valid_and_serialisable():
    config = Config()
    assert config.input_shape == (64, 64, 3)
    json.dumps(config.to_dict())  # JSON-safe (the model card and metrics files use it)


def test_two_int_shape_means_rgb():
    assert Config(input_shape=(32, 48)).input_shape == (32, 48, 3)
    assert Config(input_shape=[16, 16, 1]).channels == 1


@pytest.mark.parametrize(
    "setting, value, accepted",
    [
        ("test_fraction", -0.1, "[0, 1)"),
        ("test_fraction", 1.0, "[0, 1)"),
        ("input_shape", (32,), "(height, width)"),
        ("input_shape", (32, 32, 2), "channels 1 or 3"),
        ("input_shape", (32, 32, 3, 1), "(height, width)"),
        ("input_shape", (4, 4), "at least 8"),
        ("input_shape", "32x32", "(height, width)"),
        ("batch_size", 0, ">= 1"),
        ("buffer_size", 2.5, ">= 1"),
        ("eval_every", True, ">= 1"),
        ("query_every", -3, ">= 1"),
        ("train_steps", 0, ">= 1"),
        ("epsilon", 1.5, "[0, 1]"),
        ("strategy", "smartest", "margin"),
        ("policy", "yolo", "epsilon_greedy"),
        ("early_stopping", {"f1": (None, 0.9)}, "accuracy"),
        ("early_stopping", {"accuracy": 0.9}, "(lower, upper)"),
        ("early_stopping", {"accuracy": (None, None)}, "at least one bound"),
        ("early_stopping", {"loss": (0.5, 0.1)}, "lower < upper"),
        ("early_stopping", {"loss": (float("nan"), None)}, "finite"),
    ],
)
def test_wrong_value_names_setting_and_accepted_values(setting, value, accepted):
    with pytest.raises(ValueError) as info:
        Config(**{setting: value})
    message = str(info.value)
    assert setting in message and accepted in message


def test_early_stopping_without_a_test_split_is_refused_naming_both_settings():
    with pytest.raises(ValueError) as info:
        Config(early_stopping={"accuracy": (None, 0.95)}, test_fraction=0)
    message = str(info.value)
    assert "early_stopping" in message and "test_fraction=0" in message and "min_test_labels" in message
    assert Config(test_fraction=0).early_stopping == {}  # without thresholds it is fine


def test_thresholds_are_normalised():
    config = Config(early_stopping={"accuracy": [None, 0.95]})
    assert config.early_stopping == {"accuracy": (None, 0.95)}


def test_callables_are_accepted_for_strategy_and_policy():
    def my_scores(probs):
        return probs.max(axis=1)

    config = Config(strategy=my_scores)
    assert config.to_dict()["strategy"] == "my_scores"


def test_replace_validates_and_rejects_unknown_settings():
    config = Config()
    assert config.replace(batch_size=8).batch_size == 8
    with pytest.raises(ValueError, match="batch_size"):
        config.replace(batch_size=0)
    with pytest.raises(ValueError, match="unknown setting.*learning_rte"):
        config.replace(learning_rte=0.1)
    assert "test_fraction" in field_names()
