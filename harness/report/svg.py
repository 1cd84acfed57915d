"""Inline SVG line charts for the report: axes, ticks, labels, units and a legend.

Series differ by colour (Okabe–Ito, safe for colour-blind readers) AND by marker shape
and dash pattern, so a chart reads in greyscale too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")
MAX_MARKED_POINTS = 60  # beyond this, markers only clutter the line

Series = dict[str, list[tuple[int, float]]]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about ``count`` of them."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [math.floor(low / step) * step]
    while ticks[-1] < high - step * 1e-9:  # until the highest value is covered
        ticks.append(round(ticks[0] + step * len(ticks), 10))
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _marker(shape: str, x: float, y: float, colour: str, tip: str) -> str:
    title = f"<title>{escape(tip)}</title>"
    if shape == "square":
        return (f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" '
                f'fill="{colour}">{title}</rect>')
    if shape == "triangle":
        return (f'<path d="M{x:.1f},{y - 4.5:.1f} L{x + 4.5:.1f},{y + 3.5:.1f} '
                f'L{x - 4.5:.1f},{y + 3.5:.1f} Z" fill="{colour}">{title}</path>')
    if shape == "diamond":
        return (f'<path d="M{x:.1f},{y - 5:.1f} L{x + 5:.1f},{y:.1f} L{x:.1f},{y + 5:.1f} '
                f'L{x - 5:.1f},{y:.1f} Z" fill="{colour}">{title}</path>')
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">{title}</circle>'


def _labelled(n: int, most: int = 8) -> list[int]:
    """The x indices that get a label: about ``most`` evenly spaced, always the last."""
    step = max(1, math.ceil(n / most))
    picked = list(range(0, n, step))
    if picked and picked[-1] != n - 1:
        if n - 1 - picked[-1] < step and len(picked) > 1:
            picked.pop()  # too close to the last one: its label would overlap
        picked.append(n - 1)
    return picked


def line_chart(
    title: str,
    unit: str,
    x_labels: Sequence[str],
    series: Series,
    *,
    width: int = 640,
    plot_height: int = 200,
    x_title: str = "round (UTC start time)",
) -> str:
    """One chart as an ``<svg>`` element. ``series`` maps a name to (x index, value) points."""
    # The right margin holds half of the last x label, so it is never clipped.
    left, right, top, bottom = 64, 44, 44, 46
    legend_rows = math.ceil(len(series) / 2)
    height = top + plot_height + bottom + 20 * legend_rows
    plot_w = width - left - right
    n = max(len(x_labels), 1)
    values = [v for points in series.values() for _, v in points]
    low = min(0.0, *values) if values else 0.0
    high = max(values) if values else 1.0
    ticks = nice_ticks(low, high)
    y_min, y_max = ticks[0], ticks[-1]

    def sx(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def sy(v: float) -> float:
        return top + plot_height - plot_height * (v - y_min) / ((y_max - y_min) or 1)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f"<title>{escape(title)} ({escape(unit)}) over runs</title>",
        f'<text x="{left - 50}" y="20" class="chart-title">{escape(title)}</text>',
    ]
    for tick in ticks:  # horizontal grid with labelled y ticks
        y = sy(tick)
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                   'class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
                   f"{_fmt(tick)}</text>")
    base = top + plot_height
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" class="axis"/>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" class="axis"/>')
    out.append(
        f'<text transform="translate(14 {top + plot_height / 2:.0f}) rotate(-90)" '
        f'class="axis-label" text-anchor="middle">{escape(unit)}</text>'
    )
    for i in _labelled(n, max(2, int(plot_w // 88))):
        x = sx(i)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" class="axis"/>')
        label = x_labels[i] if i < len(x_labels) else str(i)
        out.append(f'<text x="{x:.1f}" y="{base + 17}" class="tick" text-anchor="middle">'
                   f"{escape(label)}</text>")
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{base + 36}" class="axis-label" '
               f'text-anchor="middle">{escape(x_title)}</text>')
    for k, (name, points) in enumerate(series.items()):
        colour, dash = PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]
        shape = MARKERS[k % len(MARKERS)]
        if len(points) > 1:
            path = " ".join(
                f"{'M' if j == 0 else 'L'}{sx(i):.1f},{sy(v):.1f}"
                for j, (i, v) in enumerate(points)
            )
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"'
                       f"{dash_attr}/>")
        if len(points) <= MAX_MARKED_POINTS:
            for i, v in points:
                label = x_labels[i] if i < len(x_labels) else str(i)
                tip = f"{name} · {label}: {_fmt(v)} {unit}"
                out.append(_marker(shape, sx(i), sy(v), colour, tip))
        lx = left + (k % 2) * (plot_w / 2)
        ly = base + bottom + 20 * (k // 2) + 8
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx:.0f}" x2="{lx + 26:.0f}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash_attr}/>')
        out.append(_marker(shape, lx + 13, ly, colour, name))
        out.append(f'<text x="{lx + 34:.0f}" y="{ly + 4}" class="legend">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
