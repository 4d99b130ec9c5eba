"""Set-up of the doc-block tests: pytester for the blocks that are test modules."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # `pytest_plugins = ["pytester"]` is refused in a non-root conftest when the whole suite runs.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture(scope="session")
def loaded_before_inner_runs() -> None:
    """Load every module an inner run's checks and lints import, before the first inner run.

    pytester forgets the modules an in-process run imported; torch registers operator libraries as
    its submodules load (``torch._dynamo``, which ``torch.manual_seed`` imports, among them) and
    refuses to register one twice, so those modules must be loaded before the first inner run.
    """
    import hypothesis  # noqa: F401  (an inner run with hypothesis would re-import it)
    import torch
    import torch._dynamo  # noqa: F401

    import pytest_equivariance.report.terminal  # noqa: F401
    from doc_names import AliasingCNN
    from pytest_equivariance import check_shift_invariant, lint_model

    torch.manual_seed(0)
    model = AliasingCNN().eval()
    check_shift_invariant(model, input_shape=(1, 3, 8, 8), shift=(1, 1), localize=True, grid=True)
    lint_model(model, (1, 3, 8, 8))
