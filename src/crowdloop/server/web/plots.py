"""Small SVG plots drawn on the server (no chart library, no script): bars, a histogram and lines.

Every text is escaped; colours are presentation attributes (the pages' CSP allows no inline style).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 560, 220, 36
COLOURS = ("#2f6fb0", "#3a9a5b", "#d08a1e", "#b0413e", "#7a5ab8", "#6b7a8f")


def _svg(body: list[str], label: str, height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="plot" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def _text(x: float, y: float, text: object, anchor: str = "middle", cls: str = "tick") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}">{escape(str(text))}</text>'


def _axes(top: float, label_y: str) -> list[str]:
    bottom, right = HEIGHT - PAD, WIDTH - 12
    return [
        f'<line x1="{PAD}" y1="{bottom}" x2="{right}" y2="{bottom}" class="axis"/>',
        f'<line x1="{PAD}" y1="{top}" x2="{PAD}" y2="{bottom}" class="axis"/>',
        _text(4, top - 6, label_y, anchor="start"),
    ]


def stacked_bar(counts: dict[str, int], labels: dict[str, str], label: str) -> Markup:
    """One horizontal bar split by status, with a legend below: where the items are."""
    total = max(sum(counts.values()), 1)
    x, body = 0.0, []
    for k, (key, count) in enumerate(counts.items()):
        width = (WIDTH - 2) * count / total
        colour = COLOURS[k % len(COLOURS)]
        body.append(f'<rect x="{x + 1:.1f}" y="4" width="{width:.1f}" height="28" fill="{colour}"><title>'
                    f"{escape(labels.get(key, key))}: {count}</title></rect>")  # fmt: skip
        column = k % 3
        row = k // 3
        lx, ly = 4 + column * (WIDTH / 3), 52 + row * 18
        body.append(f'<rect x="{lx:.1f}" y="{ly - 10:.1f}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(lx + 16, ly, f"{labels.get(key, key)}: {count}", anchor="start"))
        x += width
    return _svg(body, label, height=52 + 18 * ((len(counts) + 2) // 3))


def histogram(
    values: np.ndarray,
    edges: Sequence[float],
    label: str,
    axis: str,
    tick_format: str = "{:g}",
    *,
    centres: bool = False,
) -> Markup:
    """Counts of ``values`` in the bins ``edges`` as columns; ticks at the edges, or at the bins'
    centres (``centres``: one bin per integer, say)."""
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=np.asarray(edges, dtype=np.float64))
    top, bottom = 20.0, HEIGHT - PAD
    high = max(int(counts.max(initial=0)), 1)
    step = (WIDTH - 12 - PAD) / max(len(counts), 1)
    body = _axes(top, label)
    for k, count in enumerate(counts):
        h = (bottom - top) * count / high
        x = PAD + k * step
        body.append(f'<rect x="{x + 1:.1f}" y="{bottom - h:.1f}" width="{step - 2:.1f}" height="{h:.1f}" '
                    f'fill="{COLOURS[0]}"><title>{count}</title></rect>')  # fmt: skip
        if count:
            body.append(_text(x + step / 2, bottom - h - 3, count))
    ticks = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2 if centres else np.asarray(edges)
    every = max(1, len(ticks) // 8)
    for k in range(0, len(ticks), every):
        body.append(_text(PAD + (k + 0.5 * centres) * step, bottom + 14, tick_format.format(ticks[k])))
    body.append(_text(WIDTH - 12, HEIGHT - 4, axis, anchor="end"))
    return _svg(body, label)


def lines(series: dict[str, tuple[np.ndarray, np.ndarray]], label: str, axis: str) -> Markup:
    """Step lines of ``y`` against ``x`` (one per named series, x shared in scale), with a legend."""
    xs = [x for x, _ in series.values() if len(x)]
    ys = [y for _, y in series.values() if len(y)]
    top, bottom, right = 20.0, HEIGHT - PAD, WIDTH - 12
    body = _axes(top, label)
    if not xs:
        return _svg(body, label)
    low, high = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
    span, peak = max(high - low, 1e-9), max(float(y.max()) for y in ys) or 1.0
    for k, (name, (x, y)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        if len(x):
            px = PAD + (right - PAD) * (np.asarray(x, dtype=np.float64) - low) / span
            py = bottom - (bottom - top) * np.asarray(y, dtype=np.float64) / peak
            points = " ".join(
                f"{a:.1f},{b:.1f}" for a, b in zip(np.repeat(px, 2)[1:], np.repeat(py, 2)[:-1], strict=True)
            )
            body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body.append(f'<rect x="{PAD + 8 + k * 150}" y="{top - 4}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(PAD + 22 + k * 150, top + 5, f"{name}: {int(y[-1]) if len(y) else 0}", anchor="start"))
    body.append(_text(PAD - 4, top + 8, f"{peak:g}", anchor="end"))
    body.append(_text(right, HEIGHT - 4, axis, anchor="end"))
    return _svg(body, label)


def curves(
    series: dict[str, tuple[np.ndarray, np.ndarray]],
    label: str,
    axis: str,
    *,
    high: float | None = None,
    value_format: str = "{:.2f}",
    marked: Sequence[str] = (),
) -> Markup:
    """Straight lines of ``y`` against ``x`` from 0 to ``high`` (default: the highest ``y``), with
    a dot at each point of the ``marked`` series and the last value of each in the legend."""
    xs = [np.asarray(x, dtype=np.float64) for x, _ in series.values() if len(x)]
    top, bottom, right = 34.0, HEIGHT - PAD, WIDTH - 12  # the legend above the highest value
    body = _axes(top, label)
    if not xs:
        return _svg(body, label)
    low, far = min(float(x.min()) for x in xs), max(float(x.max()) for x in xs)
    span = max(far - low, 1e-9)
    peak = high or max(float(np.max(y)) for _, y in series.values() if len(y)) or 1.0
    for k, (name, (x, y)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        px = PAD + (right - PAD) * (np.asarray(x, dtype=np.float64) - low) / span
        py = bottom - (bottom - top) * np.clip(np.asarray(y, dtype=np.float64) / peak, 0.0, 1.0)
        if len(px):
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
            body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if name in marked:
            body.extend(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>' for a, b in zip(px, py, strict=True)
            )
        legend = f"{name}: {value_format.format(float(y[-1]))}" if len(y) else name
        body.append(f'<rect x="{PAD + 8 + k * 170}" y="{top - 31}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(PAD + 22 + k * 170, top - 22, legend, anchor="start"))
    body.append(_text(PAD - 4, top + 8, f"{peak:g}", anchor="end"))
    body.append(_text(PAD, bottom + 14, f"{low:,.0f}" if span > 10 else f"{low:g}", anchor="start"))
    body.append(_text(right, bottom + 14, f"{far:,.0f}" if span > 10 else f"{far:g}", anchor="end"))
    body.append(_text(right, HEIGHT - 4, axis, anchor="end"))
    return _svg(body, label)
