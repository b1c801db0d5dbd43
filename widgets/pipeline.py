"""The pipeline panel: stages with their counts and the flow of work between them, animated.

An anywidget whose only synced value is ``state`` (counts per stage and flows per second). The
browser draws the stages once as SVG and moves dots along each edge at a pace that grows with
the edge's flow, so moving work is visible at a glance; the kernel sends only the numbers.
"""

from __future__ import annotations

from typing import Any

import anywidget
import traitlets
from taskq_widgets.frame import PRIORITIES, Frame
from taskq_widgets.model import DashboardModel

_ESM = r"""
const NS = "http://www.w3.org/2000/svg";
function mk(tag, attrs, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}
function fmt(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}
function rate(n) { return n >= 100 ? Math.round(n) + "/s" : n.toFixed(1) + "/s"; }
// Dots per second drawn on an edge: the flow itself up to 4/s, then logarithmic, so a fast
// queue still looks fast without flooding the page.
function pace(r) { return r <= 0 ? 0 : (r <= 4 ? r : 4 + 2 * Math.log10(r / 4)); }
const MAX_DOTS = 48;
const FRAME_MS = 33;   // about 30 frames per second is smooth enough for dots
const SAMPLES = 60;    // points kept per edge, so no frame measures a path

const BOXES = {
  scheduled: [90, 8, 130, 58, "#f3f0ff", "#7048e8"],
  ready: [90, 92, 130, 150, "#e7f5ff", "#1c7ed6"],
  active: [330, 92, 130, 70, "#fff9db", "#f08c00"],
  retried: [330, 196, 130, 46, "#fff4e6", "#e8590c"],
  succeeded: [575, 20, 130, 60, "#ebfbee", "#2f9e44"],
  dead: [575, 170, 130, 60, "#fff5f5", "#e03131"],
};
const EDGES = {
  enqueued: ["M 4 168 L 86 168", [8, 160], "#868e96"],
  promoted: ["M 155 67 L 155 90", [162, 83], "#adb5bd"],
  started: ["M 222 160 L 326 134", [240, 138], "#1c7ed6"],
  succeeded: ["M 462 112 C 520 112, 520 50, 571 50", [490, 72], "#2f9e44"],
  retried: ["M 395 163 L 395 193", [402, 183], "#e8590c"],
  waiting: ["M 328 220 C 40 244, 30 37, 86 37", [36, 120], "#e8590c"],
  dead: ["M 462 150 C 520 150, 520 200, 571 200", [490, 190], "#e03131"],
};

function render({ model, el }) {
  const box = document.createElement("div");
  box.className = "tq-pipe-box";
  el.appendChild(box);
  const svg = mk("svg", { viewBox: "0 0 720 250", class: "tq-pipe" }, box);
  // Dots are drawn on a canvas over the SVG: moving SVG nodes would restyle the page on
  // every frame, a canvas costs one small redraw.
  const canvas = document.createElement("canvas");
  canvas.className = "tq-pipe-dots";
  box.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  const defs = mk("defs", {}, svg);
  const marker = mk("marker", { id: "tq-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" }, defs);
  mk("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#868e96" }, marker);

  const edges = {};
  for (const [name, [d, at, colour]] of Object.entries(EDGES)) {
    const path = mk("path", { d, fill: "none", stroke: colour, "stroke-width": 2,
      "stroke-opacity": 0.5, "marker-end": "url(#tq-arrow)" }, svg);
    const label = mk("text", { x: at[0], y: at[1], class: "tq-pipe-flow",
      "data-flow": name }, svg);
    const length = path.getTotalLength();
    const points = [];
    for (let i = 0; i <= SAMPLES; i++) points.push(path.getPointAtLength((length * i) / SAMPLES));
    edges[name] = { path, label, colour, points, rate: 0, owed: 0 };
  }
  edges.promoted.label.textContent = "when due";

  const counts = {};
  for (const [name, [x, y, wd, ht, bg, fg]] of Object.entries(BOXES)) {
    mk("rect", { x, y, width: wd, height: ht, rx: 6, fill: bg, stroke: fg }, svg);
    mk("text", { x: x + 8, y: y + 17, class: "tq-pipe-label" }, svg).textContent = name;
    counts[name] = mk("text", { x: x + wd - 8, y: y + 17, class: "tq-pipe-count",
      "text-anchor": "end", "data-stage": name }, svg);
  }
  const bars = [];
  for (let i = 0; i < 10; i++) {
    const y = 118 + i * 12;
    mk("text", { x: 98, y: y + 8, class: "tq-pipe-p" }, svg).textContent = "p" + (9 - i);
    bars.push([mk("rect", { x: 118, y, height: 9, width: 0, fill: "#339af0" }, svg),
      mk("text", { x: 214, y: y + 8, class: "tq-pipe-p", "text-anchor": "end" }, svg)]);
  }

  function update() {
    const s = model.get("state") || {};
    const flows = s.flows || {};
    const ready = s.ready || [];
    for (const name of Object.keys(BOXES)) {
      const value = name === "ready" ? ready.reduce((a, b) => a + b, 0) : s[name];
      counts[name].textContent = fmt(value || 0);
    }
    const top = Math.max(1, ...ready);
    ready.forEach((depth, i) => {
      bars[i][0].setAttribute("width", (70 * depth) / top);
      bars[i][1].textContent = depth ? fmt(depth) : "";
    });
    for (const [name, edge] of Object.entries(edges)) {
      if (name === "promoted") continue;
      edge.rate = flows[name] || 0;
      edge.label.textContent = rate(edge.rate);
    }
  }
  model.on("change:state", update);
  update();

  const dots = [];
  let last = performance.now();
  let alive = true;
  function step(now) {
    if (!alive) return;
    requestAnimationFrame(step);
    if (now - last < FRAME_MS) return;
    const dt = Math.min((now - last) / 1000, 0.1);
    last = now;
    for (const edge of Object.values(edges)) {
      edge.owed += pace(edge.rate) * dt;
      while (edge.owed >= 1) {
        edge.owed -= 1;
        if (dots.length < MAX_DOTS) dots.push({ edge, at: 0 });
      }
    }
    const width = svg.clientWidth, height = svg.clientHeight;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    ctx.clearRect(0, 0, width, height);
    const scale = width / 720;
    for (let i = dots.length - 1; i >= 0; i--) {
      const dot = dots[i];
      dot.at += dt / 1.2;
      if (dot.at >= 1) { dots.splice(i, 1); continue; }
      const p = dot.edge.points[Math.round(dot.at * SAMPLES)];
      ctx.beginPath();
      ctx.arc(p.x * scale, p.y * scale, 3.5 * scale, 0, 2 * Math.PI);
      ctx.fillStyle = dot.edge.colour;
      ctx.fill();
    }
  }
  requestAnimationFrame(step);
  return () => { alive = false; };
}
export default { render };
"""

_CSS = """
.tq-pipe-box { position: relative; width: 100%; max-width: 760px; }
.tq-pipe { display: block; width: 100%; height: auto; font-family: system-ui, sans-serif; }
.tq-pipe-dots { position: absolute; left: 0; top: 0; pointer-events: none; }
.tq-pipe-label { font-size: 13px; font-weight: 600; fill: #1f2933; }
.tq-pipe-count { font-size: 15px; font-weight: 700; fill: #1f2933; }
.tq-pipe-flow { font-size: 11px; fill: #52606d; }
.tq-pipe-p { font-size: 9px; fill: #52606d; }
"""


class PipelineWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """Stages and flows; ``state`` holds the numbers (see ``pipeline_state``)."""

    _esm = _ESM
    _css = _CSS
    state = traitlets.Dict().tag(sync=True)


def pipeline_state(frame: Frame) -> dict[str, Any]:
    """The numbers the pipeline draws, all from the frame's snapshot.

    ``retried`` counts retries so far: the snapshot counts the tasks waiting to retry inside
    ``scheduled``, and the loop edge from retried back to scheduled shows that.

    ``started`` is the sum of the attempt outcomes per second (succeeded, retried, dead): in a
    steady state it equals the claim rate, which the engine does not count per second.
    """
    p = frame.pipeline
    return {
        "scheduled": p.scheduled, "ready": [p.ready_by_priority[q] for q in PRIORITIES],
        "active": p.active, "retried": p.retried, "succeeded": p.succeeded, "dead": p.dead,
        "flows": {"enqueued": p.enqueued_per_s,
                  "started": p.succeeded_per_s + p.retried_per_s + p.dead_per_s,
                  "succeeded": p.succeeded_per_s, "retried": p.retried_per_s,
                  "waiting": p.retried_per_s, "dead": p.dead_per_s},
    }


class PipelineView:
    def __init__(self, model: DashboardModel) -> None:
        self.widget = PipelineWidget()
        model.observe(self._render, names="frame")

    def _render(self, change: Any) -> None:
        self.widget.state = pipeline_state(change["new"])
