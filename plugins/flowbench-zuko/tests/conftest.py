"""Shared fixtures. The tests exercise the *installed* plugin: flowbench must find it through the
``flowbench`` entry point of the flowbench-zuko distribution
(``pip install -e plugins/flowbench-zuko``)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def registry():
    import flowbench

    registry = flowbench.load_registry(strict=True)
    assert "zuko-maf" in registry.names("flow"), (
        "flowbench does not see the zuko flows: install this package first "
        "(pip install -e plugins/flowbench-zuko)"
    )
    return registry
