"""Job validation: clear errors that name the field and what is allowed."""

from __future__ import annotations

import pytest

from batchlog.domain.config import InferenceConfig, PromptFacts, validate_batch_size, validate_job
from batchlog.domain.errors import ValidationError

PROMPTS = {
    "ps_1": PromptFacts("ps_1", "blurry", {}),
    "ps_2": PromptFacts("ps_2", "", {"depth": "d.png"}),
}


def validate(prompt_ids=("ps_1",), job_type="inference", config=None, priority=50):
    return validate_job("job_x", list(prompt_ids), job_type, config, priority, PROMPTS)


def error_of(**kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate(**kwargs)
    return caught.value


def test_defaults_are_filled_in_one_place():
    job = validate(config={"weights": {"vis": 0.5}})
    (run,) = job.runs
    params = run.parameters
    assert (params.num_steps, params.guidance, params.sigma_max, params.fps) == (35, 5.0, 70.0, 24)
    assert (params.blur_strength, params.canny_threshold) == ("medium", "medium")
    assert run.seed == 1
    assert params.negative_prompt == "blurry"  # from the prompt


def test_guidance_scale_is_an_alias_of_guidance():
    job = validate(config={"weights": {"vis": 0.5}, "guidance_scale": 7})
    assert job.runs[0].parameters.guidance == 7.0


@pytest.mark.parametrize(
    ("config", "field", "fragment"),
    [
        (
            {"weights": {"color": 0.5}},
            "config.weights",
            "unknown control 'color' in weights; allowed: vis, edge, depth, seg",
        ),
        ({"weights": {"vis": 1.5}}, "config.weights", "allowed: 0 to 1"),
        ({"weights": {"vis": -0.1}}, "config.weights", "allowed: 0 to 1"),
        ({"weights": {"vis": "0.5"}}, "config.weights", "must be a number"),
        ({"weights": {"vis": True}}, "config.weights", "must be a number"),
        ({"weights": {"vis": 0.0}}, "config.weights", "at least one control"),
        (
            {"weights": {"vis": 0.5}, "steps": 3},
            "config.steps",
            "unknown config key 'steps'; allowed:",
        ),
        (
            {"weights": {"vis": 0.5}, "num_steps": 0},
            "config.num_steps",
            "greater than or equal to 1",
        ),
        ({"weights": {"vis": 0.5}, "blur_strength": "max"}, "config.blur_strength", "very_low"),
        ({}, "config.weights", "is required"),
        ({"weights": {"vis": 0.5}, "weights_list": [{"vis": 0.5}]}, "config", "not both"),
    ],
)
def test_bad_config_names_the_field_and_what_is_allowed(config, field, fragment):
    error = error_of(config=config)
    assert error.field == field
    assert fragment in str(error)


def test_weights_list_length_must_match_the_prompts():
    error = error_of(
        prompt_ids=("ps_1", "ps_2"),
        job_type="batch_inference",
        config={"weights_list": [{"vis": 0.5}]},
    )
    assert error.field == "config.weights_list"
    assert "has 1 entries but prompt_ids has 2" in str(error)


def test_weights_list_gives_each_prompt_its_own_weights():
    job = validate(
        prompt_ids=("ps_1", "ps_2"),
        job_type="batch_inference",
        config={"weights_list": [{"vis": 0.5}, {"edge": 0.3, "depth": 0.7}]},
    )
    assert [dict(r.weights) for r in job.runs] == [{"vis": 0.5}, {"edge": 0.3, "depth": 0.7}]


def test_empty_and_unknown_prompt_ids_are_refused():
    assert error_of(prompt_ids=()).field == "prompt_ids"
    error = error_of(prompt_ids=("ps_404",))
    assert error.field == "prompt_ids" and "ps_404" in str(error)


def test_unknown_job_type_lists_the_allowed_types():
    error = error_of(job_type="train", config={"weights": {"vis": 1}})
    assert error.field == "job_type"
    assert "inference, batch_inference, upscale, enhancement" in str(error)


def test_depth_without_an_input_file_is_refused_at_add_time():
    error = error_of(config={"weights": {"depth": 0.5}})
    assert error.field == "config.weights"
    assert "needs an input file" in str(error)
    assert validate(prompt_ids=("ps_2",), config={"weights": {"depth": 0.5}}).runs


@pytest.mark.parametrize("size", [0, -1, 65, 2.5, True, "4"])
def test_bad_batch_sizes_are_refused(size):
    with pytest.raises(ValidationError) as caught:
        validate_batch_size(size)
    assert caught.value.field == "batch_size"
    assert "1 to 64" in str(caught.value)


def test_priority_must_be_in_range():
    assert error_of(config={"weights": {"vis": 1}}, priority=101).field == "priority"


@pytest.mark.parametrize(
    "config",
    [
        {"weights": {"vis": 0.5, "edge": 0}, "seed": 3},
        {"weights": {"vis": 1}, "guidance_scale": 7, "negative_prompt": "blurry", "fps": 12},
        {"weights_list": [{"vis": 0.5}, {"edge": 0.25}], "seeds": [1, 2], "frames": 16},
    ],
)
def test_the_normalized_config_is_what_pydantic_dumps(config):
    facts = {pid: PromptFacts(pid, "", {}) for pid in ("p0", "p1")}
    job_type = "batch_inference" if "weights_list" in config else "inference"
    job = validate_job("job_1", ["p0", "p1"], job_type, config, 50, facts)
    assert job.config == InferenceConfig.model_validate(config).model_dump(exclude_none=True)
    assert list(job.config) == list(
        InferenceConfig.model_validate(config).model_dump(exclude_none=True)
    )
