"""docs/plugins.md cannot drift: every hook and spec field is documented, and its example plugin
is built into a package, exposed through its entry point, listed, trained and checked."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from flowbench import hookspecs, specs

DOC = Path(__file__).parents[1] / "docs" / "plugins.md"
TEXT = DOC.read_text()


def hook_names() -> list[str]:
    return [name for name, value in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(value, f"{hookspecs.PROJECT}_spec")]


def test_every_hookspec_is_documented() -> None:
    names = hook_names()
    assert "flowbench_register_flows" in names and len(names) >= 4
    for name in names:
        assert inspect.getdoc(getattr(hookspecs, name)), f"{name} has no docstring"
        assert f"### {name}" in TEXT, f"{name} is not documented in {DOC.name}"


@pytest.mark.parametrize("spec_type", [specs.FlowSpec, specs.BaseSpec, specs.DatasetSpec,
                                       specs.DatasetFamilySpec, specs.SuiteSpec])
def test_every_spec_field_is_documented(spec_type) -> None:
    section = TEXT.split("## Spec fields")[1].split("\n## ")[0]
    for field in dataclasses.fields(spec_type):
        assert f"`{field.name}`" in section, f"{spec_type.__name__}.{field.name} undocumented"


def example_files() -> dict[str, str]:
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", TEXT, re.S)
    return {path: body for path, body in blocks}


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The page's package, written out and exposed the way an installed distribution is: its
    modules and a ``.dist-info`` with the entry points of its pyproject.toml, on PYTHONPATH."""
    root = tmp_path_factory.mktemp("docs-example")
    files = example_files()
    assert "my-flows/pyproject.toml" in files and "my-flows/my_flows/plugin.py" in files
    for path, body in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(body)
    project = tomllib.loads(files["my-flows/pyproject.toml"])["project"]
    site = root / "site"
    (site / "my_flows").mkdir(parents=True)
    for module in (root / "my-flows" / "my_flows").glob("*.py"):
        (site / "my_flows" / module.name).write_text(module.read_text())
    dist_info = site / f"my_flows-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    entry_points = "".join(f"{name} = {target}\n" for name, target in
                           project["entry-points"]["flowbench"].items())
    (dist_info / "entry_points.txt").write_text(f"[flowbench]\n{entry_points}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return root, env


def flowbench(env, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flowbench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_example_plugin_is_listed_through_its_entry_point(installed_example) -> None:
    _, env = installed_example
    listing = json.loads(flowbench(env, "list", "--json").stdout)
    flows = {item["name"]: item for item in listing["items"] if item["kind"] == "flow"}
    assert flows["shuffled"]["plugin"] == "shuffled"
    assert "entry point 'shuffled = my_flows.plugin' in my-flows 0.1.0" == \
        flows["shuffled"]["source"]
    assert listing["problems"] == []


def test_example_plugin_trains_in_a_run(installed_example) -> None:
    root, env = installed_example
    result = flowbench(env, "run", "--suite", "toy2d", "--flows", "shuffled,realnvp",
                       "--datasets", "two_moons", "--bases", "normal", "--seeds", "0",
                       "--steps", "40", "--out", str(root / "run"), "-j", "1", "--no-measure",
                       "--no-report")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (root / "run" / "cells.jsonl").read_text().splitlines()]
    shuffled = next(r for r in records if r["flow"] == "shuffled")
    assert shuffled["status"] == "ok" and shuffled["test_nll"] < shuffled["history"][0]["val_nll"]


def test_example_plugin_passes_flowbench_check(installed_example) -> None:
    _, env = installed_example
    result = flowbench(env, "check", "shuffled", "--set", "layers=2", "--set", "width=16")
    assert result.returncode == 0, result.stdout
    assert "all " in result.stdout and "FAIL" not in result.stdout


def test_example_plugin_loads_without_installing(installed_example) -> None:
    root, _ = installed_example
    env = dict(os.environ)
    plugin = root / "my-flows" / "my_flows" / "plugin.py"
    assert "shuffled" in flowbench(env, "-p", str(plugin), "list").stdout
    env["FLOWBENCH_PLUGINS"] = str(plugin)
    assert "shuffled" in flowbench(env, "list").stdout


def test_disable_switch_hides_an_installed_plugin(installed_example) -> None:
    _, env = installed_example
    env = dict(env, FLOWBENCH_DISABLE_PLUGINS="shuffled,glow")
    result = flowbench(env, "list", "--json")
    names = {item["name"] for item in json.loads(result.stdout)["items"]}
    assert "shuffled" not in names and "glow" not in names and "realnvp" in names
