"""Controls shared by the lesson notebooks: parameter panels, solution reveal, setup check.

Widgets are built in constructors and shown by the notebook (the last expression of a cell),
never displayed from here, so they render the same in JupyterLab and in Voilà. Button and
slider callbacks run on the kernel's main thread; they report through a status line.
"""

from __future__ import annotations

import html
import logging
import platform
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import ipywidgets as w

from taskq.lab import Lab, demo_seconds

log = logging.getLogger("taskq.lab.widgets")

STYLE = {"description_width": "150px"}
WIDE = w.Layout(width="420px")


def int_slider(description: str, value: int, low: int, high: int, step: int = 1) -> w.IntSlider:
    return w.IntSlider(value=value, min=low, max=high, step=step, description=description,
                       style=STYLE, layout=WIDE, continuous_update=False)


def float_slider(description: str, value: float, low: float, high: float, step: float,
                 readout_format: str = ".2f") -> w.FloatSlider:
    return w.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                         style=STYLE, layout=WIDE, continuous_update=False,
                         readout_format=readout_format)


def dropdown(description: str, options: list[Any], value: Any) -> w.Dropdown:
    return w.Dropdown(options=options, value=value, description=description, style=STYLE,
                      layout=WIDE)


class ParameterPanel:
    """Named controls and a Run button that calls ``action(**values)``.

    ``run()`` (from a notebook cell) raises the action's errors; a button click shows them in
    the status line instead. With ``auto=True`` every value change runs the action, which
    suits computations that take milliseconds. Each result goes to the ``on_result``
    callbacks, which update charts by assigning traits.
    """

    def __init__(self, controls: Mapping[str, w.ValueWidget],
                 action: Callable[..., Any], *, run_label: str = "Run",
                 auto: bool = False, title: str = "") -> None:
        self.controls = dict(controls)
        self.action = action
        self.result: Any = None
        self._callbacks: list[Callable[[Any], None]] = []
        self.status = w.HTML()
        self.button = w.Button(description=run_label, button_style="primary", icon="play")
        self.button.on_click(lambda _button: self.run(raise_errors=False))
        header = [w.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows: list[w.Widget] = [*header, *self.controls.values()]
        if not auto:
            rows.append(self.button)
        rows.append(self.status)
        self.widget = w.VBox(rows)
        if auto:
            for control in self.controls.values():
                control.observe(lambda _change: self.run(raise_errors=False), names="value")

    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def on_result(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    def run(self, raise_errors: bool = True) -> Any:
        """Run the action with the current values, update the status, pass on the result."""
        self.button.disabled = True
        self.status.value = "<i>running…</i>"
        started = time.perf_counter()
        try:
            self.result = self.action(**self.values())
            for callback in self._callbacks:
                callback(self.result)
        except Exception as exc:
            log.warning("lesson action failed error=%s: %s", type(exc).__name__, exc)
            self.status.value = (f"<span style='color:#c92a2a'>{html.escape(type(exc).__name__)}"
                                 f": {html.escape(str(exc))}</span>")
            if raise_errors:
                raise
            return None
        finally:
            self.button.disabled = False
        self.status.value = f"done in {time.perf_counter() - started:.2f} s"
        return self.result


def code_html(source: str) -> str:
    return ("<pre style='font-size:12px;line-height:1.35;background:#f8f9fa;padding:8px;"
            f"border-radius:4px;overflow-x:auto'>{html.escape(source)}</pre>")


class SolutionButton:
    """A button that shows the solution file of an exercise, hidden until clicked.

    ``path`` is relative to the notebook's folder (the kernel's working directory) or
    absolute. A missing file shows an error naming the path instead of raising.
    """

    def __init__(self, path: str | Path, label: str = "Show solution") -> None:
        self.path = Path(path)
        self.code = w.HTML(layout=w.Layout(display="none"))
        self.button = w.Button(description=label, icon="eye")
        self.button.on_click(lambda _button: self.toggle())
        self.widget = w.VBox([self.button, self.code])

    def source(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def toggle(self) -> None:
        if self.code.layout.display == "none":
            try:
                self.code.value = code_html(self.source())
            except OSError as exc:
                self.code.value = (f"<span style='color:#c92a2a'>solution file {self.path} "
                                   f"could not be read: {html.escape(str(exc))}</span>")
            self.code.layout.display = "block"
            self.button.description = "Hide solution"
        else:
            self.code.layout.display = "none"
            self.button.description = "Show solution"


def table_html(rows: list[Mapping[str, Any]], columns: list[str] | None = None,
               limit: int = 50) -> str:
    """Render ``rows`` (dicts) as an escaped HTML table of at most ``limit`` rows."""
    if not rows:
        return "<i>(empty)</i>"
    columns = columns or list(rows[0])
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(c)}</th>"
                   for c in columns)
    body = []
    for row in rows[:limit]:
        cells = "".join(f"<td style='padding:2px 8px'>{html.escape(str(row.get(c, '')))}</td>"
                        for c in columns)
        body.append(f"<tr>{cells}</tr>")
    more = f"<p><i>… {len(rows) - limit} more</i></p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def setup_check(lab: Lab) -> dict[str, Any]:
    """Check that the lesson can run: Redis responds, Lua scripts run, packages are present.

    Returns the facts as a dict (the notebook prints them). Raises RuntimeError with the fix
    when the backend cannot run Lua, which the embedded backend needs ``lupa`` for.
    """
    client = lab.app.client
    try:
        lua_ok = client.eval("return 40 + 2", 0) == 42
    except Exception as exc:  # noqa: BLE001 - any failure here means the lesson cannot run
        raise RuntimeError(
            f"the Redis backend {lab.backend} cannot run Lua scripts ({type(exc).__name__}: "
            f"{exc}); for the embedded backend install fakeredis with Lua: "
            "pip install 'fakeredis[lua]'") from exc
    try:
        server_version = client.info("server").get("redis_version", "unknown")
    except Exception:  # noqa: BLE001 - the embedded server has no INFO command
        server_version = "embedded fakeredis"
    return {
        "backend": lab.backend,
        "redis_version": server_version,
        "lua": "ok" if lua_ok else "unexpected result",
        "key_prefix": lab.prefix,
        "demo_seconds": demo_seconds(),
        "seed": lab.seed,
        "python": platform.python_version(),
        "taskq": _version("taskq-lab"),
        "ipywidgets": _version("ipywidgets"),
        "plotly": _version("plotly"),
    }
