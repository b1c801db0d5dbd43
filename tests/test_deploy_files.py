"""Static checks of the container and conda files: no Docker engine or conda runs here, so these
tests read docker-compose.yml, Dockerfile, .dockerignore and environment.yml and compare them
with the package itself (its click commands, pyproject.toml and its modules)."""

from __future__ import annotations

import importlib.util
import re
import shlex
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from taskq.cli import cli
from tests.conftest import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PYTHON_SERVICES = ("lab", "dashboard", "worker", "api")
PUBLISHED = {"lab": 8888, "dashboard": 8866, "api": 8080}
# pip requirement -> the conda-forge packages that provide it.
CONDA_NAMES = {"redis": ["redis-py"], "fakeredis": ["fakeredis", "lupa"]}
# Packages that environment.yml lists only because a pip extra pulls them in (fakeredis[lua]).
CONDA_ONLY = {"lupa", "pip", "python"}
# Extras of pyproject.toml that environment.yml includes, and those it leaves out on purpose.
# A new extra must be added to one of the two.
CONDA_EXTRAS = {"lab", "api", "dev"}
NOT_IN_CONDA = {"bench"}
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def resolve(value: str) -> str:
    """Apply compose's variable interpolation with every variable unset: ``${X:-d}`` is d."""
    def replace(match: re.Match[str]) -> str:
        kind, default = match.group(2), match.group(3)
        if kind == "-":
            return default
        if kind == "?":
            return f"<{match.group(1)}>"
        return ""
    return VARIABLE.sub(replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def command_of(service: dict[str, Any]) -> list[str]:
    raw = service["command"]
    words = shlex.split(raw) if isinstance(raw, str) else list(raw)
    return [resolve(str(word)) for word in words]


def container_ports(service: dict[str, Any]) -> dict[int, int]:
    """Published ports as {container port: host port}."""
    out = {}
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        out[int(parts[-1].split("/")[0])] = int(parts[-2])
    return out


def option_value(command: list[str], name: str) -> str | None:
    for i, word in enumerate(command):
        if word == name and i + 1 < len(command):
            return command[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


# docker-compose.yml

def test_compose_services(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", *PYTHON_SERVICES}


def test_redis_official_image(services: dict[str, Any]) -> None:
    assert re.fullmatch(r"redis:7(\.\d+)*(-[a-z0-9.]+)?", services["redis"]["image"])


def test_redis_aof_enabled(services: dict[str, Any]) -> None:
    command = command_of(services["redis"])
    assert command[0] == "redis-server"
    assert option_value(command, "--appendonly") == "yes"


def test_redis_ping_healthcheck(services: dict[str, Any]) -> None:
    check = services["redis"]["healthcheck"]["test"]
    words = shlex.split(check) if isinstance(check, str) else check
    assert "redis-cli" in words
    assert "ping" in words


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_service_waits_for_redis(services: dict[str, Any], name: str) -> None:
    assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_service_builds_dockerfile(services: dict[str, Any], name: str) -> None:
    build = services[name]["build"]
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


@pytest.mark.parametrize("name", PYTHON_SERVICES)
def test_service_uses_compose_redis(services: dict[str, Any], name: str) -> None:
    url = services[name]["environment"]["TASKQ_REDIS_URL"]
    assert url.startswith("redis://redis:6379/")


@pytest.mark.parametrize(("name", "port"), PUBLISHED.items())
def test_service_port_published(services: dict[str, Any], name: str, port: int) -> None:
    assert container_ports(services[name]) == {port: port}


@pytest.mark.parametrize(("name", "port"), PUBLISHED.items())
def test_service_listens_on_port(services: dict[str, Any], name: str, port: int) -> None:
    command = command_of(services[name])
    assert option_value(command, "--port") == str(port)
    assert option_value(command, "--ip" if name == "lab" else "--host") == "0.0.0.0"


def test_worker_scalable(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


def test_api_requires_token(services: dict[str, Any]) -> None:
    token = services["api"]["environment"]["TASKQ_API_TOKEN"]
    assert re.fullmatch(r"\$\{TASKQ_API_TOKEN:\?[^}]+\}", token)


@pytest.mark.parametrize("name", ["dashboard", "worker", "api"])
def test_command_is_taskq_subcommand(services: dict[str, Any], name: str) -> None:
    command = command_of(services[name])
    assert command[0] == "taskq"
    assert command[1] in cli.commands, f"{command[1]!r} is not a taskq command"


@pytest.mark.parametrize("name", ["dashboard", "worker", "api"])
def test_command_options_exist(services: dict[str, Any], name: str) -> None:
    command = command_of(services[name])
    subcommand = cli.commands[command[1]]
    known = {opt for param in subcommand.params if isinstance(param, click.Option)
             for opt in param.opts + param.secondary_opts}
    used = {word.split("=")[0] for word in command[2:] if word.startswith("--")}
    assert used <= known, f"unknown options of taskq {command[1]}: {used - known}"


@pytest.mark.parametrize("name", ["worker", "api"])
def test_command_app_importable(services: dict[str, Any], name: str) -> None:
    spec = option_value(command_of(services[name]), "--app")
    assert spec is not None
    assert importlib.util.find_spec(spec.partition(":")[0]) is not None


def test_lab_runs_jupyterlab(services: dict[str, Any], pyproject: dict[str, Any]) -> None:
    lab_extra = [Requirement(r).name for r in pyproject["project"]["optional-dependencies"]["lab"]]
    assert command_of(services["lab"])[:2] == ["jupyter", "lab"]
    assert "jupyterlab" in lab_extra


# Dockerfile and .dockerignore

def test_dockerfile_python_base(dockerfile: list[str]) -> None:
    assert re.fullmatch(r"FROM python:3\.1[0-9]+(-slim)?", dockerfile[0])


def test_dockerfile_installs_package(dockerfile: list[str], pyproject: dict[str, Any]) -> None:
    installs = [line for line in dockerfile if line.startswith("RUN") and "pip install" in line]
    assert len(installs) == 1
    match = re.search(r"(?:-e\s+)?[\"']?\.\[([a-z,]+)\][\"']?", installs[0])
    assert match, f"the pip install line does not install the project: {installs[0]}"
    extras = set(match.group(1).split(","))
    assert {"lab", "api"} <= extras
    assert extras <= set(pyproject["project"]["optional-dependencies"])


def test_dockerfile_copies_project(dockerfile: list[str]) -> None:
    assert any(re.fullmatch(r"COPY \. \S+", line) for line in dockerfile)


def test_dockerfile_exposes_ports(dockerfile: list[str]) -> None:
    exposed = {int(p) for line in dockerfile if line.startswith("EXPOSE")
               for p in line.split()[1:]}
    assert exposed == set(PUBLISHED.values())


def test_dockerignore_skips_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv"} <= ignored


def test_packages_listed(pyproject: dict[str, Any]) -> None:
    """Every subpackage of taskq ships in a wheel (pyproject lists packages by hand)."""
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "taskq").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


# environment.yml

@pytest.fixture(scope="module")
def environment() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "environment.yml").read_text())
    return data


def conda_specs(environment: dict[str, Any]) -> dict[str, str]:
    """{package: version spec} of the conda dependencies (the pip section left out)."""
    specs = {}
    for entry in environment["dependencies"]:
        if isinstance(entry, str):
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", entry)
            assert match, f"unreadable conda dependency {entry!r}"
            specs[canonicalize_name(match.group(1))] = match.group(2).replace(" ", "")
    return specs


def pyproject_specs(pyproject: dict[str, Any]) -> dict[str, str]:
    """{conda package: version spec} for the core dependencies and the ``CONDA_EXTRAS``."""
    project = pyproject["project"]
    lines = list(project["dependencies"])
    for name in CONDA_EXTRAS:
        lines.extend(project["optional-dependencies"][name])
    specs = {}
    for line in lines:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) == canonicalize_name(project["name"]):
            continue  # an extra that includes other extras of this package
        names = CONDA_NAMES.get(requirement.name, [requirement.name])
        specs[canonicalize_name(names[0])] = str(requirement.specifier)
    return specs


def test_environment_extras_decided(pyproject: dict[str, Any]) -> None:
    extras = set(pyproject["project"]["optional-dependencies"])
    assert extras == CONDA_EXTRAS | NOT_IN_CONDA


def test_environment_conda_forge(environment: dict[str, Any]) -> None:
    assert environment["channels"][0] == "conda-forge"
    assert set(environment["channels"]) <= {"conda-forge", "nodefaults"}


def test_environment_python_version(environment: dict[str, Any],
                                    pyproject: dict[str, Any]) -> None:
    assert conda_specs(environment)["python"] == pyproject["project"]["requires-python"]


def test_environment_matches_pyproject(environment: dict[str, Any],
                                       pyproject: dict[str, Any]) -> None:
    conda = {k: v for k, v in conda_specs(environment).items() if k not in CONDA_ONLY}
    assert conda == pyproject_specs(pyproject)


def test_environment_uses_redis_py(environment: dict[str, Any]) -> None:
    specs = conda_specs(environment)
    assert "redis-py" in specs
    assert "redis" not in specs, "conda-forge's redis is the server; the client is redis-py"


def test_environment_has_lua(environment: dict[str, Any]) -> None:
    assert "lupa" in conda_specs(environment)


def test_environment_installs_package(environment: dict[str, Any]) -> None:
    pip_sections = [e["pip"] for e in environment["dependencies"] if isinstance(e, dict)]
    assert pip_sections == [["-e ."]]
