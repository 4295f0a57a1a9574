"""AdaFocusConfig: a plain frozen dataclass to the models, validated field by field
with every problem named at once (adafocus.schema's rules)."""

import dataclasses

import pytest
from pydantic import ValidationError

from adafocus.config import AdaFocusConfig, config_from_dict, config_to_dict, preset
from adafocus.schema import problems


def _problems(build) -> list[str]:
    with pytest.raises(ValidationError) as err:
        build()
    return problems(err.value, AdaFocusConfig, "config")


def test_every_bad_field_is_named_at_once_and_strings_are_not_coerced():
    found = _problems(lambda: AdaFocusConfig(num_classes=1, policy="v3", glance_strides=(1, 3),
                                             frame_size=("128", 128), zoom=2))
    assert found == [
        "config.num_classes: must be >= 2, got 1",
        "config.frame_size[0]: expected an integer, got str",
        "config.policy: expected 'v1' or 'v2', got 'v3'",
        "config.glance_strides[1]: expected 1 or 2, got 3",
        "config.zoom: unknown key (allowed: " + ", ".join(
            f.name for f in dataclasses.fields(AdaFocusConfig)) + ")",
    ]


def test_relations_between_fields_are_named_at_their_keys():
    assert _problems(lambda: preset("tiny", patch_size=200, local_strides=(2, 2))) == [
        "config.patch_size: 200 does not fit in frame (128, 128)",
        "config.local_strides: needs one stride per entry of the channel list",
    ]


def test_it_stays_a_frozen_dataclass_and_lists_become_tuples():
    config = preset("tiny", frame_size=[64, 96], patch_size=32)
    assert config.frame_size == (64, 96)
    assert dataclasses.replace(config, policy="v2").policy == "v2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.policy = "v2"
    with pytest.raises(ValidationError):
        dataclasses.replace(config, policy="v9")  # replace validates too


def test_a_stored_config_needs_every_key():
    stored = config_to_dict(preset("tiny"))
    assert config_from_dict(stored) == preset("tiny")
    del stored["patch_size"]  # the default would fit this model, silently
    assert _problems(lambda: config_from_dict(stored)) == [
        "config.patch_size: required key is missing"]
    assert _problems(lambda: config_from_dict([1, 2])) == [
        "config: expected a mapping, got list"]
