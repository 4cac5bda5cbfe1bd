"""The small chart on a task's page: rows read (bars) and durations (a line) over its last
runs, as an SVG drawn on the server. No script, no inline style: colours come from classes in
the console's style sheet."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 600, 140, 24


def svg(runs: Sequence[tuple[int, float, str]]) -> Markup:
    """``runs``: (rows read, seconds, status), oldest first."""
    if not runs:
        return Markup("")
    most_rows = max(rows for rows, _, _ in runs) or 1
    most_seconds = max(seconds for _, seconds, _ in runs) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / len(runs)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="rows read and durations of the last {len(runs)} runs">',
             f'<line class="axis" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
             f'y2="{HEIGHT - PAD}"/>']
    points = []
    for index, (rows, seconds, status) in enumerate(runs):
        height = inner_h * rows / most_rows
        x = PAD + index * step
        parts.append(f'<rect class="bar status-{escape(status)}" x="{x + step * 0.15:.1f}" '
                     f'y="{HEIGHT - PAD - height:.1f}" width="{step * 0.7:.1f}" '
                     f'height="{height:.1f}"><title>{rows} rows, {seconds:.1f} s, '
                     f'{escape(status)}</title></rect>')
        points.append(f"{x + step / 2:.1f},{HEIGHT - PAD - inner_h * seconds / most_seconds:.1f}")
    parts.append(f'<polyline class="durations" points="{" ".join(points)}"/>')
    parts.append(f'<text class="legend" x="{PAD}" y="{PAD - 8}">rows read (bars, most '
                 f'{most_rows}) · duration (line, longest {most_seconds:.1f} s)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
