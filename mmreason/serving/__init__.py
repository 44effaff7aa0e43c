"""Serving mmreason to the ecosystem: an OpenAI-compatible chat server (`mmreason.serving.openai_server`)
and the grounding tools as an MCP server (`mmreason.serving.mcp_server`).

Both import their framework (FastAPI/uvicorn, the ``mcp`` SDK) lazily: install them with
``pip install "mmreason[serve]"`` or ``"mmreason[mcp]"``.
"""
