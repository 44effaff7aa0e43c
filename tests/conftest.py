"""Shared pytest setup: everything runs offline on the CPU."""

import os

#: session fixtures shared by the test modules (used by name, never imported)
pytest_plugins = ("tests.helpers.tiny_models", "tests.helpers.training")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
