"""Generated covers: an SVG drawn from an event's category and title, for events without a cover
image, so no card is text only. Deterministic (the same event always gets the same picture), no
external requests, inline in the page (presentation attributes only: the CSP forbids inline
styles, not SVG attributes).
"""

from __future__ import annotations

import hashlib

from markupsafe import Markup

# (top colour, bottom colour, shape colour) per category; others pick one by the category's hash
PALETTES = {
    "music": ("#3b0764", "#be185d", "#f9a8d4"),
    "concert": ("#3b0764", "#be185d", "#f9a8d4"),
    "sports": ("#064e3b", "#0f766e", "#99f6e4"),
    "culture": ("#7c2d12", "#c2410c", "#fed7aa"),
    "classical": ("#1e1b4b", "#4338ca", "#c7d2fe"),
    "comedy": ("#713f12", "#ca8a04", "#fef08a"),
    "theatre": ("#450a0a", "#b91c1c", "#fecaca"),
    "festival": ("#831843", "#ea580c", "#fde68a"),
    "conference": ("#0c4a6e", "#0369a1", "#bae6fd"),
    "food": ("#365314", "#65a30d", "#d9f99d"),
}
_OTHERS = [("#1f2937", "#4b5563", "#e5e7eb"), ("#172554", "#1d4ed8", "#bfdbfe"),
           ("#4a044e", "#a21caf", "#f5d0fe"), ("#134e4a", "#0d9488", "#ccfbf1")]


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def cover_svg(category: str, title: str, uid: str | int, *, width: int = 1200,
              height: int = 500, css_class: str = "cover") -> Markup:
    """An inline SVG cover for `category` and `title`; `uid` keeps its gradient id unique in a
    page. Decorative (hidden from assistive technology): the title is on the page in words."""
    palette = PALETTES.get(category) or _OTHERS[_digest(category)[0] % len(_OTHERS)]
    top, bottom, ink = palette
    d = _digest(category, title)
    grad = f"cg{uid}"
    shapes = []
    for i in range(5):  # circles and rings placed by the title's hash
        x = d[i * 3] / 255 * width
        y = d[i * 3 + 1] / 255 * height
        r = 40 + d[i * 3 + 2] / 255 * height * 0.6
        if i % 2:
            shapes.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{r:.0f}" fill="none" '
                          f'stroke="{ink}" stroke-width="{6 + d[20 + i] % 18}" opacity=".35"/>')
        else:
            shapes.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="{r:.0f}" fill="{ink}" opacity=".18"/>')
    slope = d[16] / 255 * height
    shapes.append(f'<path d="M0 {height - slope:.0f} L{width} {height * .55:.0f} L{width} {height} '
                  f'L0 {height}Z" fill="{bottom}" opacity=".55"/>')
    return Markup(
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid slice" '
        f'aria-hidden="true" focusable="false" xmlns="http://www.w3.org/2000/svg">'
        f'<defs><linearGradient id="{grad}" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        f'</linearGradient></defs><rect width="{width}" height="{height}" fill="url(#{grad})"/>'
        + "".join(shapes) + "</svg>")
