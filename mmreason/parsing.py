"""Reading a model turn: tool calls and the final answer.

Two tool-call syntaxes are understood, whichever the model emits:

* Hermes / Qwen2.5-VL / Qwen3-VL JSON::

    <tool_call>{"name": "crop", "arguments": {"view_id": "V1", "bbox_2d": [10, 20, 90, 120]}}</tool_call>

* Qwen3.5 / Qwen3-Coder function-parameter XML::

    <tool_call><function=crop><parameter=view_id>V1</parameter>...</function></tool_call>

A well-formed turn is parsed by transformers' response parser (``parse_response`` with the
response templates below; with ``tools=`` it casts XML parameter text through each tool's JSON
Schema). When that parser raises or misses a call (malformed JSON, a call inside ``<think>``, a
closing tag cut off because generation stopped on it), a lenient hand-written parser reads each
``<tool_call>`` block on its own: it repairs trailing commas, single quotes, Python literals and
unclosed braces, and turns what it cannot repair into a call with an ``error`` (the loop shows
that error to the model) instead of dropping it.

Calls inside ``<think>...</think>`` are used only when the turn has no call outside it (a model
that keeps its call in the reasoning block still gets the tool run; one that drafts a call while
thinking and then makes it does not get it run twice).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any

from mmreason.quantities import cited_evidence, strip_citations


def _qwen_response_template(tool_calls: dict[str, Any]) -> dict[str, Any]:
    """A transformers response template for a Qwen assistant turn whose tool calls match ``tool_calls``."""
    return {
        "defaults": {"role": "assistant"},
        "start_anchor": "<|im_start|>assistant\n",
        "fields": {
            "reasoning_content": {"open": "<think>", "close_pattern": r"</think>\s*", "content": "text"},
            "tool_calls": tool_calls,
            "content": {"close_pattern": r"\s*(?:<\|im_end\|>|<\|endoftext\|>)", "content": "text"},
        },
    }


#: transformers response template for the Hermes/Qwen JSON tool-call form (model output only).
HERMES_TEMPLATE: dict[str, Any] = _qwen_response_template({
    "open_pattern": r"\s*<tool_call>",
    "close_pattern": r"</tool_call>\s*",
    "repeats": True,
    "content": "json",
    "transform": {"type": "function", "function": "{content}"},
})

#: transformers response template for the Qwen3.5 function/parameter XML form.
XML_TEMPLATE: dict[str, Any] = _qwen_response_template({
    "open_pattern": r"\s*<tool_call>\s*<function=(?P<name>[^>\n]+)>",
    "close_pattern": r"</function>\s*</tool_call>\s*",
    "repeats": True,
    "content": "xml-inline",
    "content_args": {"tag_pattern": r"<parameter=(?P<key>[^>\n]+)>\s*(?P<value>.*?)\s*</parameter>"},
    "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{content}"}},
})

#: a ``<think>`` block; an unclosed one runs to the end of the text
THINK_BLOCK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)
_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|(?=<tool_call>)|$)", re.DOTALL)
_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)(?:</function>|$)", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\n]+)>(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", re.DOTALL)
#: an ``<answer>`` block (group 1: its text); an unclosed one runs to the end of the text
ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL | re.IGNORECASE)
#: "B", "(B)", "B.", "B) text", "B: text" (group 2: the rest)
_LEADING_LETTER = re.compile(r"^\(?([A-Za-z])\s*(?:\)|\.|:|$)\s*(.*)$", re.DOTALL)
#: "A left lung": a bare capital letter and a space before the rest (group 2)
_LEADING_WORD = re.compile(r"^([A-Z])\s+(.+)$", re.DOTALL)
#: "the answer is B", "Option: A", "choice (C)"
_NAMED_LETTER = re.compile(r"\b(?i:option|answer|choice)(?:\s+is)?\s*:?\s*\(?([A-Z])\b")
_ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(r"[^\w\s.%-]|(?<!\d)\.|\.(?!\d)|(?<![\w])-|-(?![\w])")


@dataclass
class ParsedCall:
    """One tool call read from a model turn.

    Attributes:
        name: the tool name ("" when it could not be read).
        arguments: the arguments as a dict (empty when they could not be read).
        raw: the text of the call as the model wrote it.
        error: why the call could not be read (shown to the model), None when it parsed.
        in_think: the call was written inside ``<think>...</think>``.
    """

    name: str
    arguments: dict[str, Any]
    raw: str = ""
    error: str | None = None
    in_think: bool = False


@dataclass
class ParsedAnswer:
    """The final answer of a turn: its text, option letter (multiple choice) and cited evidence."""

    text: str
    option: str | None = None
    cited: list[str] = field(default_factory=list)
    closed: bool = True


def strip_think(text: str) -> str:
    """The turn without its ``<think>...</think>`` blocks (an unclosed block runs to the end)."""
    return THINK_BLOCK.sub("", text)


def parse_tool_calls(text: str, tools: list[dict[str, Any]] | None = None) -> list[ParsedCall]:
    """All tool calls of one model turn, in order.

    Args:
        text: the generated text of one assistant turn (model output only, no prompt).
        tools: function specs (``{"type": "function", "function": {...}}``) used to cast XML
            parameter values to the types their JSON Schema declares.
    """
    if "<tool_call>" not in text and "<function=" not in text:
        return []
    try:
        strict = _parse_strict(text, tools)
        if strict is not None:
            return strict
        return _parse_lenient(text, tools)
    except RecursionError:
        # Python's JSON and literal parsers recurse once per bracket: ~1000 nested brackets in
        # a 2 KB call exhaust the stack. The call is unreadable, which the model is told.
        return [ParsedCall(name="", arguments={}, raw=text, error=(
            "the tool call nests brackets too deeply to be read; write the arguments as a flat JSON object "
            'such as {"view_id": "V1", "bbox_2d": [10, 20, 90, 120]}'))]


def _parse_strict(text: str, tools: list[dict[str, Any]] | None) -> list[ParsedCall] | None:
    """transformers' parser on a well-formed turn; None when the turn needs the lenient path."""
    outside = strip_think(text)
    n_open = outside.count("<tool_call>")
    if n_open == 0 or n_open != outside.count("</tool_call>"):
        return None
    xml = "<function=" in outside
    # imported here: transformers costs a second at start-up and commands like `infer --help` never parse
    from transformers.utils.chat_parsing import parse_response

    try:
        message = parse_response(text, XML_TEMPLATE if xml else HERMES_TEMPLATE, prefix="", tools=tools)
    except (ValueError, KeyError, TypeError):
        return None
    calls = []
    for item in message.get("tool_calls") or []:
        fn = item.get("function") if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            return None
        name = fn["name"].strip()
        args = fn.get("arguments", fn.get("parameters", {}))
        if not isinstance(args, dict):
            return None
        if xml:  # values the schema did not cast are still text
            args = args | _cast_xml_arguments(name, {k: v for k, v in args.items() if isinstance(v, str)}, tools)
        calls.append(ParsedCall(name=name, arguments=args))
    if len(calls) != n_open:
        return None
    for call, m in zip(calls, _CALL_BLOCK.finditer(outside)):
        call.raw = m.group(0)
    return calls


def _parse_lenient(text: str, tools: list[dict[str, Any]] | None) -> list[ParsedCall]:
    think_spans = [m.span() for m in THINK_BLOCK.finditer(text)]
    calls = []
    blocks = list(_CALL_BLOCK.finditer(text))
    if not blocks and "<function=" in text:  # a bare XML call without the <tool_call> wrapper
        blocks = list(re.finditer(r"(<function=.*?(?:</function>|$))", text, re.DOTALL))
    for m in blocks:
        in_think = any(a <= m.start() < b for a, b in think_spans)
        call = _parse_block(m.group(1), tools)
        call.raw, call.in_think = m.group(0), in_think
        calls.append(call)
    outside = [c for c in calls if not c.in_think]
    return outside or calls


def _parse_block(body: str, tools: list[dict[str, Any]] | None) -> ParsedCall:
    body = body.strip()
    fn = _FUNCTION.search(body)
    if fn:
        name = fn.group(1).strip()
        args = {k.strip(): v.strip() for k, v in _PARAMETER.findall(fn.group(2))}
        return ParsedCall(name=name, arguments=_cast_xml_arguments(name, args, tools))
    body = re.sub(r"^```(?:json)?|```$", "", body).strip()
    obj = _loads_lenient(body)
    if not isinstance(obj, dict):
        return ParsedCall(name="", arguments={}, error=(
            'could not read the tool call as JSON; write <tool_call>{"name": "<tool>", '
            '"arguments": {...}}</tool_call> with double-quoted keys'))
    if isinstance(obj.get("function"), dict):  # OpenAI-style {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args = _loads_lenient(args) if args.strip() else {}
    if not isinstance(name, str) or not name.strip():
        return ParsedCall(name="", arguments={}, error='the tool call has no "name"; add "name": "<tool>"')
    if not isinstance(args, dict):
        return ParsedCall(name=name.strip(), arguments={},
                          error='"arguments" must be a JSON object such as {"view_id": "V1"}')
    return ParsedCall(name=name.strip(), arguments=args)


def _loads_lenient(text: str) -> Any:
    """JSON, or the nearest thing to it a model writes: None when nothing can be read."""
    start = text.find("{")
    if start < 0:
        return None
    text = text[start:]
    candidates = [text, _close_brackets(text)]
    for cand in candidates:
        for attempt in (cand, re.sub(r",\s*([}\]])", r"\1", cand)):
            try:
                return json.loads(attempt)
            except json.JSONDecodeError as exc:
                if exc.msg == "Extra data":  # a valid object followed by trailing text
                    return json.loads(attempt[: exc.pos])
            try:  # single quotes, True/False/None, trailing commas
                pyish = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", attempt)))
                value = ast.literal_eval(pyish)
                if isinstance(value, dict):
                    return value
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
    return None


def _close_brackets(text: str) -> str:
    """Append the closing brackets a truncated JSON object is missing (strings respected)."""
    stack: list[str] = []
    in_str: str | None = None
    escape = False
    end = len(text)
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == in_str:
                in_str = None
            continue
        if ch in "\"'":
            in_str = ch
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if stack:
                stack.pop()
            if not stack:
                end = i + 1
                break
    text = text[:end].rstrip()
    if in_str:
        text += in_str
    return text + "".join(reversed(stack))


def _cast_xml_arguments(name: str, args: dict[str, str], tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """XML parameter values are text: cast them with the tool's schema, or as JSON when unknown."""
    props: dict[str, Any] = {}
    for spec in tools or []:
        fn = spec.get("function", spec)
        if fn.get("name") == name:
            props = fn.get("parameters", {}).get("properties", {})
    out: dict[str, Any] = {}
    for key, raw in args.items():
        declared = props.get(key, {}).get("type")
        if declared == "string":
            out[key] = raw
            continue
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            literal = _loads_lenient("{\"v\": " + raw + "}") if declared in ("array", "object") else None
            out[key] = literal["v"] if isinstance(literal, dict) and "v" in literal else raw
    return out


def last_answer_block(text: str) -> re.Match | None:
    """The last ``<answer>...</answer>`` block outside ``<think>`` (an unclosed one runs to the end
    of the text), or None: the answer of a turn for the loop and the first rule of the scorer."""
    blocks = list(ANSWER_BLOCK.finditer(strip_think(text)))
    return blocks[-1] if blocks else None


def parse_answer(text: str, options: list[str] | None = None) -> ParsedAnswer | None:
    """The final ``<answer>...</answer>`` of a turn, or None when the turn has none.

    The last answer block outside ``<think>`` wins; an unclosed block (generation stopped on
    ``</answer>``) runs to the end of the text. For multiple choice (``options`` given) the
    option letter is read from the answer ("B", "(B)", "B. text", "the answer is B") or, failing
    that, matched from an option's text quoted in the answer.
    """
    last = last_answer_block(text)
    if last is None:
        return None
    answer = last.group(1).strip()
    return ParsedAnswer(text=answer, option=read_option(answer, options) if options else None,
                        cited=cited_evidence(answer), closed=last.group(0).endswith("</answer>"))


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation (keeping decimal points, %, inner hyphens) and articles."""
    text = _PUNCT.sub(" ", text.lower())
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def read_option(answer: str, options: list[str]) -> str | None:
    """The option letter (``A``, ``B``...) an answer names among ``options``, or None.

    One rule for the loop, the verifiers and the benchmark scorer, in this order: the answer written
    exactly as one option (case, spacing and a final full stop aside: so "A non-enhanced tumor" is
    that option, not the letter A); a leading letter ("B", "(B)", "B.", "B) text", "B: text"); a
    leading bare letter before an option's text ("A left lung"); an explicit "option/answer/choice
    (is) B"; the whole answer equal to one option's text (normalised). A letter followed by the
    text of another option contradicts itself and names nothing, and nothing is guessed from
    partial text.
    """
    bare = strip_citations(answer).strip()
    letters = [chr(ord("A") + i) for i in range(len(options))]
    verbatim = [_verbatim(o) for o in options]
    if _verbatim(bare) in verbatim and verbatim.count(_verbatim(bare)) == 1:
        return letters[verbatim.index(_verbatim(bare))]
    texts = [normalize_answer(o) for o in options]
    m = _LEADING_LETTER.match(bare)
    if m is None:
        word = _LEADING_WORD.match(bare)
        if word and word.group(1).upper() in letters and normalize_answer(word.group(2)) in texts:
            m = word
    if m is not None and m.group(1).upper() in letters:
        index = letters.index(m.group(1).upper())
        rest = normalize_answer(m.group(2))
        return None if rest and rest != texts[index] and rest in texts else letters[index]
    m = _NAMED_LETTER.search(bare)
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    whole = normalize_answer(bare)
    return letters[texts.index(whole)] if whole and whole in texts else None


def _verbatim(text: str) -> str:
    """An option as written, up to case, runs of spaces and a final full stop."""
    return " ".join(text.lower().split()).rstrip(".").strip()


# -- boxes and points written in prose ------------------------------------------------------------
#: a bracketed list in a sentence: "[12, 14, 18, 20]"
_BRACKETS = re.compile(r"\[[^\[\]\n]*\]")
#: a point in a sentence: "point (15, 17)", "point_2d [15, 17]" (group 1: the numbers)
_POINT = re.compile(r"\bpoint(?:_2d)?\b[^\[\(\n]{0,20}[\[\(]([^\[\]\(\)\n]*)[\]\)]", re.IGNORECASE)


def _json_numbers(text: str, count: int) -> list[float] | None:
    """The ``count`` numbers of a JSON list, read as tool-call arguments are read; None otherwise."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(values, list) or len(values) != count:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return [float(v) for v in values]


def find_boxes(text: str) -> list[list[float]]:
    """The boxes ``[x1, y1, x2, y2]`` written in ``text``, in order.

    A box in prose is read exactly as a ``bbox_2d`` in a tool call (a JSON list of four numbers),
    so the two cannot disagree; where it lies is then worked out by `imaging.locate` for both.
    """
    return [v for m in _BRACKETS.finditer(text) if (v := _json_numbers(m.group(0), 4)) is not None]


def find_points(text: str) -> list[list[float]]:
    """The points ``point (x, y)`` / ``point_2d [x, y]`` written in ``text``, read as `find_boxes` reads boxes."""
    return [v for m in _POINT.finditer(text) if (v := _json_numbers(f"[{m.group(1)}]", 2)) is not None]
