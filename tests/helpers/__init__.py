"""Helpers of the test suite, imported normally (``from tests.helpers.tools import small_chest``).

The session fixtures (``tiny_model_dir`` in `tests.helpers.tiny_models`; ``synthetic_dir``,
``cases`` and ``trainable_model`` in `tests.helpers.training`) are registered once for every test
module by ``tests/conftest.py`` (``pytest_plugins``); test modules use them by name.
"""
