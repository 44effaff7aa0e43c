"""The grounding tools as an MCP server (official ``mcp`` Python SDK): any MCP-capable agent can open a
scan and ground its answers with ``view``, ``crop``, ``segment`` and ``measure``.

    mmreason mcp                                  # stdio (what desktop agents launch)
    mmreason mcp --transport http --port 8765     # streamable HTTP at http://127.0.0.1:8765/mcp

Tools:
- ``open_study(path, modality?, series?, frame?)``: load an image file or DICOM folder through
  `imaging.io.load`; returns a study id (``S1``, ``S2`` ...), the study line the reasoning loop
  shows a model (modality, grid, spacing; never the file name) and the initial views (an axial
  montage and a coronal slice of a 3-D study, the whole image of a 2-D one) as view ``V1``, ``V2``.
- ``view``, ``crop``, ``segment``, ``measure``: the `grounding.tools.default_registry` tools with
  their own JSON Schemas, plus an optional ``study_id`` (default: the study opened last).

Each study has its own `grounding.tool.ToolContext` kept for the life of the server, so view ids
and evidence ids (``E1``, ``E2`` ...) stay stable across calls and a later call may cite earlier
evidence. Studies are not tied to a transport session (the 2026 protocol is stateless per request);
the ``study_id`` is the handle. A result is the evidence text the loop gives a model (``[E3] ...``
and a ``Result:`` JSON line of measurements and quality), then for each image a text with its
view id, size, description and geometry (the pixel -> voxel/mm map as JSON) followed by the image
as MCP image content (PNG). A tool error is a result with ``isError`` and the message, so the
agent can correct its call; a tool that crashes is reported the same way and the server goes on.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from imaging.errors import MMReasonError

OPEN_STUDY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "an image file (.nii/.nii.gz, .dcm, .png, .jpg, .tif) or a "
                                                  "folder of DICOM files, on the server's file system"},
        "modality": {"type": "string", "enum": ["CT", "MR", "XR", "PT", "US", "OT"],
                     "description": "override the detected modality"},
        "series": {"type": "string", "description": "series index or SeriesInstanceUID of a DICOM folder with several"},
        "frame": {"type": "integer", "description": "frame of a 4-D NIfTI or multi-frame file"},
    },
    "required": ["path"],
}
STUDY_ID_SCHEMA = {"type": "string", "description": "study to work on (from open_study); default the last opened"}


def _install_hint(error: ImportError) -> MMReasonError:
    return MMReasonError(f"mmreason mcp needs the MCP Python SDK ({error}); pip install 'mmreason[mcp]'")


@dataclass
class Part:
    """One piece of a tool result: text, or a PNG image (base64)."""

    text: str | None = None
    png_b64: str | None = None


@dataclass
class Studies:
    """The open studies, one `ToolContext` each, and the tools that work on them (thread-safe).

    ``segmenter`` and ``tool_options`` (`grounding.segmenters.spec.SegmenterSpec.tool_options`) go
    into every study's context, as `mmreason.loop.LoopConfig` puts them into an episode's.
    """

    registry: Any = None
    segmenter: str = "classical"
    tool_options: dict[str, Any] = field(default_factory=dict)
    contexts: dict[str, Any] = field(default_factory=dict)
    current: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.registry is None:
            from grounding.tools import default_registry

            self.registry = default_registry()

    def tool_specs(self) -> list[dict[str, Any]]:
        """``{"name", "description", "input_schema"}`` of ``open_study`` and every grounding tool."""
        specs = [{"name": "open_study", "input_schema": OPEN_STUDY_SCHEMA,
                  "description": "Open a CT/MR/X-ray study (file or DICOM folder) for the grounding tools; returns its "
                                 "study id, its grid and spacing, and overview images with their geometry."}]
        for tool in self.registry:
            schema = json.loads(json.dumps(tool.parameters))
            schema.setdefault("properties", {})["study_id"] = STUDY_ID_SCHEMA
            specs.append({"name": tool.name, "description": tool.description, "input_schema": schema})
        return specs

    def open_study(self, path: str, modality: str | None = None, series: str | None = None,
                   frame: int | None = None) -> list[Part]:
        from grounding.tool import ToolContext
        from imaging.io import load
        from mmreason.loop import initial_views, study_text

        series_arg: int | str | None = int(series) if series is not None and series.isdigit() else series
        volume = load(path, modality=modality, series=series_arg, frame=frame)
        context = ToolContext(volumes={"0": volume}, segmenter=self.segmenter, options=dict(self.tool_options))
        views = initial_views(context.volumes)
        with self._lock:
            study_id = f"S{len(self.contexts) + 1}"
            self.contexts[study_id] = context
            self.current = study_id
        for view in views:
            context.add_view(view)
        head = f"Opened study {study_id}.\n{study_text(context.volumes)}"
        return [Part(text=head)] + [p for view in views for p in view_parts(view)]

    def call(self, name: str, arguments: dict[str, Any]) -> list[Part]:
        """Run a grounding tool on its study; raises `MMReasonError` (shown as a tool error)."""
        from grounding.tool import ToolError
        from mmreason.messages import result_text

        arguments = dict(arguments)
        study_id = arguments.pop("study_id", None) or self.current
        if study_id is None:
            raise ToolError("no study is open: call open_study(path) first")
        if study_id not in self.contexts:
            raise ToolError(f"unknown study_id '{study_id}'; open studies: {', '.join(self.contexts)}")
        context = self.contexts[study_id]
        with self._lock:  # one call at a time per server: ids are handed out in order
            ev = self.registry.run(context, name, arguments)
            for view in ev.views:
                if not view.view_id or context.views.get(view.view_id) is not view:
                    context.add_view(view)
        return [Part(text=f"study {study_id}\n" + result_text(ev))] + [p for v in ev.views for p in view_parts(v)]


def view_parts(view: Any) -> list[Part]:
    """A view as MCP content: its id, size, description and geometry as text, then the PNG."""
    buffer = io.BytesIO()
    view.image.save(buffer, format="PNG")
    width, height = view.size
    geometry = json.dumps(view.geometry.to_dict(), separators=(",", ":"), default=float)
    text = f"View {view.view_id} ({width}x{height} px): {view.description}\nGeometry: {geometry}"
    return [Part(text=text), Part(png_b64=base64.b64encode(buffer.getvalue()).decode("ascii"))]


def build_server(studies: Studies | None = None) -> Any:
    """The low-level MCP ``Server`` exposing ``open_study`` and the grounding tools."""
    try:
        import anyio
        import mcp_types as types
        from mcp.server.lowlevel import Server
    except ImportError as error:
        raise _install_hint(error) from error

    studies = studies or Studies()

    def content(parts: list[Part]) -> list[Any]:
        return [types.TextContent(type="text", text=p.text) if p.text is not None
                else types.ImageContent(type="image", data=p.png_b64, mime_type="image/png") for p in parts]

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[types.Tool(**spec) for spec in studies.tool_specs()])

    async def call_tool(ctx: Any, params: Any) -> Any:
        arguments = dict(params.arguments or {})
        try:
            if params.name == "open_study":
                parts = await anyio.to_thread.run_sync(lambda: studies.open_study(**arguments))
            else:
                parts = await anyio.to_thread.run_sync(studies.call, params.name, arguments)
        except (MMReasonError, TypeError) as error:
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"Error: {error}")],
                                        is_error=True)
        except Exception as error:  # a bug in a tool: say so, keep serving the other calls
            message = f"Error: the tool failed ({type(error).__name__}: {error})"
            return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)
        return types.CallToolResult(content=content(parts))

    from importlib.metadata import PackageNotFoundError, version

    try:
        mmreason_version = version("mmreason")
    except PackageNotFoundError:
        mmreason_version = "dev"
    return Server("mmreason", version=mmreason_version, on_list_tools=list_tools, on_call_tool=call_tool,
                  instructions="Open a study with open_study(path), then ground answers with view, crop, segment "
                               "and measure; cite evidence ids (E1, E2 ...).")


def run_stdio(server: Any) -> None:
    """Serve over stdin/stdout until the client closes them."""
    import anyio
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def http_app(server: Any, host: str = "127.0.0.1") -> Any:
    """The streamable-HTTP ASGI app (endpoint ``/mcp``)."""
    return server.streamable_http_app(host=host)
