"""Grouped bars, shared by the figures that compare several series over the same categories."""
from __future__ import annotations

import numpy as np


def grouped_bars(ax, categories, series: dict) -> tuple[np.ndarray, list]:
    """One group per category, one bar colour per series (``{label: values in category order}``), the
    groups centred on ``0, 1, ...``. Returns the group centres (for the ticks) and the bar containers."""
    x = np.arange(len(categories))
    width = 0.8 / len(series)
    containers = []
    for i, (label, values) in enumerate(series.items()):
        offset = (i - (len(series) - 1) / 2) * width
        containers.append(ax.bar(x + offset, [float(v) for v in values], width, label=label))
    return x, containers
