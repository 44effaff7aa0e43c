"""Tool-call and answer parsing: every syntax and every repair path."""

import pytest

from mmreason.parsing import cited_evidence, parse_answer, parse_tool_calls, read_option

TOOLS = [{"type": "function", "function": {"name": "crop", "parameters": {"type": "object", "properties": {
    "view_id": {"type": "string"}, "bbox_2d": {"type": "array"}, "zoom": {"type": "number"},
    "index": {"type": "integer"}}}}}]


def test_hermes_json_call_with_leading_text_uses_transformers(monkeypatch):
    from transformers.utils import chat_parsing

    seen = []
    real = chat_parsing.parse_response
    monkeypatch.setattr(chat_parsing, "parse_response", lambda *a, **k: seen.append(1) or real(*a, **k))
    text = 'Let me zoom.\n<tool_call>\n{"name": "crop", "arguments": {"view_id": "V1", "bbox_2d": [1, 2, 30, 40]}}\n</tool_call>'
    [call] = parse_tool_calls(text)
    assert seen, "the well-formed turn should go through transformers' parse_response"
    assert (call.name, call.arguments, call.error) == ("crop", {"view_id": "V1", "bbox_2d": [1, 2, 30, 40]}, None)
    assert call.raw.startswith("<tool_call>") and call.raw.endswith("</tool_call>")


def test_several_calls_in_one_turn_and_trailing_text():
    text = ('<tool_call>{"name": "segment", "arguments": {"target": "lungs"}}</tool_call>\n'
            '<tool_call>{"name": "measure", "arguments": {"evidence_id": "E1"}}</tool_call> and then I answer.')
    calls = parse_tool_calls(text)
    assert [c.name for c in calls] == ["segment", "measure"]
    assert calls[1].arguments == {"evidence_id": "E1"}


def test_qwen35_xml_form_cast_with_schema():
    text = ("<tool_call>\n<function=crop>\n<parameter=view_id>\nV1\n</parameter>\n"
            "<parameter=bbox_2d>\n[10, 20, 110, 140]\n</parameter>\n<parameter=zoom>\n2.5\n</parameter>\n"
            "<parameter=index>\n7\n</parameter>\n</function>\n</tool_call>")
    [call] = parse_tool_calls(text, TOOLS)
    assert call.arguments == {"view_id": "V1", "bbox_2d": [10, 20, 110, 140], "zoom": 2.5, "index": 7}
    # a string parameter that looks like a number stays a string
    [call] = parse_tool_calls("<tool_call><function=crop><parameter=view_id>12</parameter></function></tool_call>", TOOLS)
    assert call.arguments == {"view_id": "12"}


def test_xml_without_schema_and_without_closing_tags():
    text = "<tool_call>\n<function=segment>\n<parameter=target>\nnodule\n</parameter>\n<parameter=view_id>V2"
    [call] = parse_tool_calls(text)
    assert call.name == "segment" and call.arguments == {"target": "nodule", "view_id": "V2"} and call.error is None


@pytest.mark.parametrize("body, expected", [
    ('{"name": "crop", "arguments": {"view_id": "V1",},}', {"view_id": "V1"}),          # trailing commas
    ("{'name': 'crop', 'arguments': {'view_id': 'V1', 'flag': true}}", {"view_id": "V1", "flag": True}),
    ('{"name": "crop", "arguments": {"view_id": "V1", "bbox_2d": [1, 2, 3', {"view_id": "V1", "bbox_2d": [1, 2, 3]}),
    ('```json\n{"name": "crop", "parameters": {"view_id": "V3"}}\n```', {"view_id": "V3"}),  # Llama-style key
    ('{"type": "function", "function": {"name": "crop", "arguments": "{\\"view_id\\": \\"V1\\"}"}}', {"view_id": "V1"}),
    ('{"name": "crop", "arguments": {"view_id": "V1"}} I think this is right', {"view_id": "V1"}),
])
def test_malformed_json_is_repaired(body, expected):
    [call] = parse_tool_calls(f"<tool_call>{body}</tool_call>")
    assert call.error is None and call.name == "crop" and call.arguments == expected


def test_missing_closing_tag_at_end_of_text():
    # backends that strip the stop string leave the call unclosed
    [call] = parse_tool_calls('thinking done\n<tool_call>\n{"name": "view", "arguments": {"plane": "axial"}}')
    assert (call.name, call.arguments) == ("view", {"plane": "axial"})


def test_unreadable_call_becomes_an_error_not_a_drop():
    calls = parse_tool_calls('<tool_call>crop the left lung please</tool_call>'
                             '<tool_call>{"name": "view", "arguments": {}}</tool_call>')
    assert len(calls) == 2
    assert calls[0].error and "JSON" in calls[0].error and calls[0].name == ""
    assert calls[1].error is None and calls[1].name == "view"
    [nameless] = parse_tool_calls('<tool_call>{"arguments": {"a": 1}}</tool_call>')
    assert "name" in nameless.error
    [bad_args] = parse_tool_calls('<tool_call>{"name": "view", "arguments": [1, 2]}</tool_call>')
    assert bad_args.name == "view" and "object" in bad_args.error


def test_calls_inside_think():
    only_think = '<think>I should segment. <tool_call>{"name": "segment", "arguments": {"target": "lungs"}}</tool_call></think>'
    [call] = parse_tool_calls(only_think)
    assert call.in_think and call.name == "segment"
    both = ('<think>draft: <tool_call>{"name": "segment", "arguments": {"target": "body"}}</tool_call></think>\n'
            '<tool_call>{"name": "segment", "arguments": {"target": "lungs"}}</tool_call>')
    [call] = parse_tool_calls(both)
    assert call.arguments == {"target": "lungs"} and not call.in_think
    unclosed_think = '<think>let me call <tool_call>{"name": "view", "arguments": {"plane": "coronal"}}'
    [call] = parse_tool_calls(unclosed_think)
    assert call.arguments == {"plane": "coronal"} and call.in_think


def test_no_calls():
    assert parse_tool_calls("The answer is <answer>yes</answer>") == []
    assert parse_tool_calls("") == []


def test_answer_tag_citations_and_unclosed():
    ans = parse_answer("<think>maybe E9</think>Done. <answer>A 12 mm nodule in the right lower lobe [E2], volume 0.9 mL (E3, E2).</answer>")
    assert ans.text.startswith("A 12 mm") and ans.cited == ["E2", "E3"] and ans.closed and ans.option is None
    ans = parse_answer("<answer>yes [E1]")
    assert ans.text == "yes [E1]" and not ans.closed and ans.cited == ["E1"]
    assert parse_answer("no tags here") is None
    assert parse_answer("<think><answer>draft</answer></think> still working") is None
    ans = parse_answer("<answer>first</answer> wait <answer>second</answer>")
    assert ans.text == "second"


@pytest.mark.parametrize("answer, letter", [
    ("B", "B"), ("(C)", "C"), ("B. Right lung", "B"), ("D) none", "D"), ("The answer is C [E2]", "C"),
    ("Option: A", "A"), ("right lung", "B"), ("Z", None), ("a nodule", None),
    # nothing is guessed from partial text, and a letter with another option's text names nothing
    ("A nodule in the left lung", None), ("A. right lung", None), ("A right lung", None), ("A left lung", "A"),
    ("B right lung", "B"), ("(A) both lungs", None), ("a left lung", "A"),
])
def test_option_letters(answer, letter):
    assert read_option(answer, ["left lung", "right lung", "both lungs", "neither"]) == letter


def test_answer_option_from_parse_answer():
    ans = parse_answer("<answer>(B) right lung [E3]</answer>", options=["left lung", "right lung"])
    assert ans.option == "B" and ans.cited == ["E3"]


def test_cited_evidence_forms():
    assert cited_evidence("see [E2], E10 and (E2)") == ["E2", "E10"]
    assert cited_evidence("EE2 or E2x are not ids") == []
