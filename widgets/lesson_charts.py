"""Plotly charts for the lesson notebooks: one ``Chart`` class that updates traces in place.

A ``Chart`` wraps a ``plotly.graph_objects.FigureWidget``. Each drawing method names its trace
(plus the subplot it sits in); drawing the same name again replaces that trace's data instead
of adding a trace, so a panel can redraw on every run and the figure keeps its zoom and
legend state. All updates are trait assignments, safe from a poller thread.

plotly copies a FigureWidget's data into its synced ``_widget_data`` and ``_widget_layout``
traits only when the figure is displayed on its own (``_repr_mimebundle_``). Inside a Box that
never happens, so a frontend that connects after the cell ran (Voilà, a reloaded JupyterLab page)
would draw the figure as it was created. ``Chart`` copies both traits after every change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOURS = {
    "high": "#d6336c", "normal": "#1c7ed6", "low": "#f59f00",
    "naive": "#e03131", "watch": "#1971c2", "lua": "#2f9e44",
    "fifo": "#868e96", "strict": "#e8590c", "weighted": "#2f9e44",
    "engine": "#2f9e44", "polling": "#e8590c",
    "succeeded": "#2f9e44", "retrying": "#f59f00", "dead": "#e03131", "running": "#868e96",
    "A": "#e03131", "B": "#1971c2",
}
"""One colour per name used across lessons, so a name keeps its colour in every chart."""


def colour(name: str, fallback: str = "#495057") -> str:
    return COLOURS.get(name, fallback)


class Chart:
    """A FigureWidget with ``rows`` x ``cols`` subplots and traces upserted by name."""

    def __init__(self, title: str = "", *, rows: int = 1, cols: int = 1,
                 subplot_titles: Sequence[str] | None = None, height: int = 360,
                 x_title: str = "", y_title: str = "", barmode: str = "group",
                 shared_yaxes: bool = False) -> None:
        if rows * cols > 1:
            base = make_subplots(rows=rows, cols=cols, subplot_titles=subplot_titles,
                                 horizontal_spacing=0.08, vertical_spacing=0.18,
                                 shared_yaxes=shared_yaxes)
        else:
            base = go.Figure()
        base.update_layout(title=title or None, height=height, template="plotly_white",
                           barmode=barmode, margin={"l": 50, "r": 20, "t": 60, "b": 50},
                           legend={"orientation": "h", "y": -0.2}, uirevision="lesson")
        self.figure = go.FigureWidget(base)
        self.widget = self.figure
        self._grid = rows * cols > 1
        self._index: dict[str, int] = {}
        if x_title or y_title:
            self.axes(x_title=x_title, y_title=y_title)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several drawing calls into one update, then sync the state once."""
        with self.figure.batch_update():
            yield
        self.sync_state()

    def sync_state(self) -> None:
        """Copy the figure's data and layout into the traits a late-connecting view reads."""
        if self.figure._in_batch_mode:
            return
        # NOTE: private plotly attributes (checked with plotly 7.1); see the module docstring.
        self.figure._widget_data = deepcopy(self.figure._data)
        self.figure._widget_layout = deepcopy(self.figure._layout_obj._props)

    def _where(self, row: int, col: int) -> dict[str, int]:
        return {"row": row, "col": col} if self._grid else {}

    def _upsert(self, key: str, trace: Any, row: int, col: int) -> None:
        index = self._index.get(key)
        if index is None:
            self.figure.add_trace(trace, **self._where(row, col))
            self._index[key] = len(self.figure.data) - 1
        else:
            target = self.figure.data[index]
            with self.figure.batch_update():
                for name in ("x", "y", "base", "text", "marker", "name", "customdata"):
                    value = getattr(trace, name, None)
                    if value is not None:
                        setattr(target, name, value)
        self.sync_state()

    def bars(self, name: str, x: Sequence[Any], y: Sequence[float], *, row: int = 1,
             col: int = 1, legend: bool = True, text: Sequence[str] | None = None,
             colour_name: str | None = None) -> None:
        self._upsert(f"{name}@{row},{col}", go.Bar(
            name=name, x=list(x), y=list(y), marker_color=colour(colour_name or name),
            showlegend=legend, legendgroup=name, text=list(text) if text else None,
            textposition="outside" if text else None), row, col)

    def line(self, name: str, x: Sequence[Any], y: Sequence[float], *, row: int = 1,
             col: int = 1, dash: str | None = None, markers: bool = False,
             legend: bool = True, colour_name: str | None = None) -> None:
        self._upsert(f"{name}@{row},{col}", go.Scatter(
            name=name, x=list(x), y=list(y), mode="lines+markers" if markers else "lines",
            line={"color": colour(colour_name or name), "dash": dash}, showlegend=legend,
            legendgroup=name), row, col)

    def markers(self, name: str, x: Sequence[float], y: Sequence[float], *, row: int = 1,
                col: int = 1, symbol: str = "circle", size: int = 7, legend: bool = True,
                colour_name: str | None = None, text: Sequence[str] | None = None) -> None:
        self._upsert(f"{name}@{row},{col}", go.Scatter(
            name=name, x=list(x), y=list(y), mode="markers", showlegend=legend,
            legendgroup=colour_name or name, text=list(text) if text else None,
            marker={"color": colour(colour_name or name), "symbol": symbol, "size": size}),
            row, col)

    def histogram(self, name: str, values: Sequence[float], *, bin_size: float,
                  row: int = 1, col: int = 1) -> None:
        """Draw a histogram with fixed bins as bars, so repeated runs update it in place."""
        counts: dict[int, int] = {}
        for value in values:
            counts[int(value // bin_size)] = counts.get(int(value // bin_size), 0) + 1
        bins = sorted(counts)
        self._upsert(f"{name}@{row},{col}", go.Bar(
            name=name, x=[(b + 0.5) * bin_size for b in bins], y=[counts[b] for b in bins],
            width=bin_size, marker_color=colour(name), opacity=0.7, legendgroup=name),
            row, col)

    def segments(self, name: str, starts: Sequence[float], ends: Sequence[float],
                 levels: Sequence[float], *, row: int = 1, col: int = 1,
                 colour_name: str | None = None) -> None:
        """Horizontal segments from ``starts[i]`` to ``ends[i]`` at height ``levels[i]``."""
        x: list[float | None] = []
        y: list[float | None] = []
        for start, end, level in zip(starts, ends, levels):
            x.extend([start, max(end, start + 0.002), None])
            y.extend([level, level, None])
        self._upsert(f"{name}@{row},{col}", go.Scatter(
            name=name, x=x, y=y, mode="lines+markers", legendgroup=colour_name or name,
            line={"color": colour(colour_name or name), "width": 5},
            marker={"size": 5, "color": colour(colour_name or name)}), row, col)

    def axes(self, *, x_title: str = "", y_title: str = "", row: int = 1, col: int = 1,
             x_log: bool = False, y_log: bool = False, y_range: Sequence[float] | None = None
             ) -> None:
        where = self._where(row, col)
        self.figure.update_xaxes(title_text=x_title or None,
                                 type="log" if x_log else None, **where)
        self.figure.update_yaxes(title_text=y_title or None, type="log" if y_log else None,
                                 range=list(y_range) if y_range else None, **where)
        self.sync_state()

    def vline(self, x: float, label: str = "", *, dash: str = "dash",
              colour_name: str = "#495057") -> None:
        """Draw a vertical line across the whole plot (all subplots), with an optional label."""
        shapes = [s for s in self.figure.layout.shapes if s.name != label or not label]
        shapes.append(go.layout.Shape(type="line", x0=x, x1=x, xref="x", y0=0, y1=1,
                                      yref="paper", name=label,
                                      line={"dash": dash, "color": colour(colour_name,
                                                                          colour_name)}))
        annotations = [a for a in self.figure.layout.annotations
                       if a.name != label or not label]
        if label:
            annotations.append(go.layout.Annotation(x=x, y=1.02, xref="x", yref="paper",
                                                    text=label, showarrow=False, name=label))
        with self.figure.batch_update():
            self.figure.layout.shapes = shapes
            self.figure.layout.annotations = annotations
        self.sync_state()

    def trace_values(self, name: str, row: int = 1, col: int = 1) -> dict[str, list[Any]]:
        """Return the x and y values a named trace contains now, for checks in tests."""
        trace = self.figure.data[self._index[f"{name}@{row},{col}"]]
        return {"x": list(trace.x or []), "y": list(trace.y or [])}
