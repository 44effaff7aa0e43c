"""Training data: traces as conversations, assistant-only loss masks, the GRPO prompt dataset."""

from __future__ import annotations

import json

import pytest

from tests.helpers.training import make_env, rollout
from grounding.tools import default_registry
from imaging.locate import ModelFrame
from mmreason.loop import LoopConfig
from train.data import (
    AssistantOnlyCollator,
    DataError,
    fill_images,
    grpo_dataset,
    read_traces,
    sft_dataset,
    short_demonstration,
    trace_messages,
)
from train.env import FramedBackend, tool_schemas


@pytest.fixture(scope="module")
def processor(trainable_model):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(trainable_model)


@pytest.fixture(scope="module")
def episode_trace(cases):
    """A two-call episode on the nodule case, as the loop records it (with images)."""
    env = make_env(cases["syn-0021"])
    completion = rollout(env, [("segment", {"target": "nodule"}), ("measure", {"evidence_id": "E1"})],
                         "Right lung [E2].\n<answer>A [E2]</answer>")
    return env._trace(completion)


def test_trace_messages_roles_and_images(episode_trace):
    messages, images, inline = trace_messages(episode_trace)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    placeholders = sum(p["type"] == "image" for m in messages for p in m["content"])
    assert placeholders == len(images) == 3  # montage + coronal in the question, the segment overlay
    assert inline is False  # native tools: the template lists them
    assert "<tool_call>" in messages[2]["content"][0]["text"]
    assert messages[-1]["content"][0]["text"].endswith("<answer>A [E2]</answer>")


def test_short_demonstration_ends_at_the_finding(episode_trace, cases):
    short = short_demonstration(episode_trace)
    assert [t.role for t in short.turns] == ["system", "user", "assistant", "tool", "assistant"]
    assert short.turns[2].tool_calls[0].name == "segment"  # the measure call that followed is dropped
    # the answer cited E2 (the dropped measurement): it now cites the finding still shown, E1
    assert short.turns[-1].text == "<answer>A [E1]</answer>"
    assert len(episode_trace.turns) == 7  # the original trace is left as it was
    messages, images, _ = trace_messages(short)
    assert len(images) == 3 and messages[-1]["content"][0]["text"] == "<answer>A [E1]</answer>"
    # kept citations survive, elaborating-only episodes keep their calls, no answer: unchanged
    env = make_env(cases["syn-0021"])
    both = env._trace(rollout(env, [("segment", {"target": "nodule"}), ("measure", {"evidence_id": "E1"})],
                              "One nodule, 8 mm.\n<answer>Yes [E1, E2]</answer>"))
    assert short_demonstration(both).turns[-1].text == "<answer>Yes [E1]</answer>"
    env = make_env(cases["syn-0021"])
    measured = env._trace(rollout(env, [("segment", {"target": "nodule"}), ("measure", {"evidence_id": "E1"})],
                                  "no tag here"))
    assert short_demonstration(measured) is measured


def test_read_traces_refuses_traces_without_images(episode_trace, tmp_path):
    episode_trace.save(tmp_path / "with.json")
    episode_trace.save(tmp_path / "without.json", with_images=False)
    (loaded,) = read_traces([str(tmp_path / "with.json")])
    assert len(trace_messages(loaded)[1]) == 3
    with pytest.raises(DataError, match="saved without images"):
        read_traces([str(tmp_path / "without.json")])
    with pytest.raises(DataError, match="no trace files match"):
        read_traces([str(tmp_path / "none*.json")])


def test_assistant_only_labels(processor, episode_trace):
    dataset = sft_dataset([episode_trace])
    row = dataset[0]
    collator = AssistantOnlyCollator(processor, tool_schemas(default_registry()))
    batch = collator([row, row])
    assert batch["input_ids"].shape == batch["labels"].shape
    assert batch["pixel_values"].shape[0] > 0 and batch["image_grid_thw"].shape[0] == 6
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    learned = processor.tokenizer.decode([i for i, lab in zip(ids, labels) if lab != -100])
    assistant = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
    # every assistant turn with its end token, and nothing else
    assert learned == "".join(a + "<|im_end|>\n" for a in assistant)
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert all(lab == -100 for i, lab in zip(ids, labels) if i == image_id)


def test_fill_images_counts(episode_trace):
    messages, images, _ = trace_messages(episode_trace)
    filled = fill_images(messages, images)
    assert [p["image"] for m in filled for p in m["content"] if p["type"] == "image"] == images
    with pytest.raises(DataError, match="more images"):
        fill_images(messages, images + images[:1])


def test_grpo_dataset_columns_and_prompt(cases, processor):
    chosen = [cases["syn-0000"], cases["syn-0021"]]
    backend = FramedBackend(ModelFrame.from_processor(processor))
    ds = grpo_dataset(chosen, backend, default_registry(), LoopConfig())
    assert set(ds.column_names) >= {"prompt", "images", "case_id", "answer", "answer_type", "boxes", "masks",
                                    "reference_steps", "case"}
    row = ds[1]
    assert row["case_id"] == "syn-0021" and row["answer"] == "A" and row["answer_type"] == "choice"
    assert json.loads(row["boxes"])[0]["label"] == "nodule"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert sum(p["type"] == "image" for m in row["prompt"] for p in m["content"]) == len(row["images"]) == 2
    text = "".join(p["text"] or "" for p in row["prompt"][1]["content"])
    w, h = row["images"][0].size
    assert f"Image 1 ({'x'.join(map(str, backend.model_image_size(w, h)))})" in text  # captions in the model's frame
    assert "In which lung is the nodule?" in text and "A. right lung" in text
