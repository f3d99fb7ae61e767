"""Figures for the report: image grids in fixed HU windows (never per-image min-max, so brighter
always means denser), GIF animations and metric curves. Deterministic for a given run dir."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from raylatent.data.dicom import model_to_hu

TILE = 64  # pixels per image tile in the figures (nearest-neighbour upscaling of small images)


def window(images: torch.Tensor | np.ndarray, center: float, width: float) -> np.ndarray:
    """[-1, 1] model images -> uint8 in a fixed HU window."""
    hu = model_to_hu(np.asarray(images, dtype=np.float32))
    return (np.clip((hu - (center - width / 2)) / width, 0, 1) * 255).astype(np.uint8)


def _tile(img: np.ndarray, tile: int = TILE) -> np.ndarray:
    s = img.shape[-1]
    rep = max(1, tile // s)
    return np.kron(img, np.ones((rep, rep), dtype=np.uint8))


HEADER = 16  # pixels of the column-label band above a grid (shift values, interpolation steps)


def shift_labels(shifts) -> list[str]:
    """Column labels for a sweep: the shift ε of each column."""
    return [f"eps {float(x):+g}" if float(x) else "original" for x in shifts]  # the bitmap font has no ε


def grid_png(images: np.ndarray, path: Path, row_labels: list[str] | None = None, gap: int = 2,
             label_w: int = 0, col_labels: list[str] | None = None) -> tuple[int, int]:
    """images: rows x cols x H x W uint8 -> PNG with optional row labels (left) and column labels
    (a band on top, e.g. the shift of each column); returns (w, h)."""
    rows, cols = images.shape[:2]
    tiles = [[_tile(images[r, c]) for c in range(cols)] for r in range(rows)]
    th, tw = tiles[0][0].shape
    label_w = label_w or (110 if row_labels else 0)
    top = HEADER if col_labels else 0
    W, H = label_w + cols * (tw + gap), top + rows * (th + gap)
    canvas = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(canvas)
    for r in range(rows):
        for c in range(cols):
            canvas.paste(Image.fromarray(tiles[r][c]), (label_w + c * (tw + gap), top + r * (th + gap)))
        if row_labels:
            draw.text((4, top + r * (th + gap) + th // 2 - 6), row_labels[r][: label_w // 6], fill=255)
    for c, text in enumerate(col_labels or []):
        draw.text((label_w + c * (tw + gap) + 2, 2), str(text)[: max(4, tw // 6)], fill=255)
    canvas.save(path, optimize=False)
    return W, H


def gif(frames: list[np.ndarray], path: Path, ms: int = 120) -> None:
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=ms, loop=0)


def line_styles(n: int) -> list[tuple[tuple, str]]:
    """n distinct (colour, line style) pairs: the 20 colours of tab20, then again dashed, dotted...
    (matplotlib's default cycle repeats after 10, and a smoke run has 16+ curves)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [(tuple(cmap(i % 20)), ("-", "--", ":", "-.")[(i // 20) % 4]) for i in range(n)]


def curves_png(series: dict[str, list[tuple[float, float]]], path: Path, title: str, xlabel: str,
               ylabel: str, hlines: dict[str, float] | None = None) -> list[tuple[tuple, str]]:
    """A line per series (distinct colour and style), and grey dashed reference lines (`hlines`,
    e.g. chance); returns the styles used, in sorted series order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    styles = line_styles(len(series))
    for (colour, ls), name in zip(styles, sorted(series)):
        xs, ys = zip(*series[name]) if series[name] else ((), ())
        ax.plot(xs, ys, label=name, lw=1.2, color=colour, linestyle=ls)
    for name, y in sorted((hlines or {}).items()):
        ax.axhline(y, color="0.5", lw=0.8, linestyle="--")
        ax.annotate(name, (1.0, y), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=6,
                    color="0.35")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if len(series) <= 16:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return styles
