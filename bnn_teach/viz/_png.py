"""Widgets show their figure as a PNG in an ``ipywidgets.Image``: a slider that redraws the figure
replaces the image's bytes, which any frontend (JupyterLab, Colab, VS Code, a static export) shows
without an interactive matplotlib backend such as ipympl."""
from __future__ import annotations

import io


def figure_png(fig, dpi: int = 90) -> bytes:
    """The figure rendered as PNG bytes, always of the figure's size (a slider's picture does not jump)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def new_figure(**kwargs):
    """A figure that pyplot does not track, so a notebook does not also show it below the widget; as a
    cell's value it shows as a PNG (``_repr_png_``) whether or not pyplot's inline backend is loaded.

    Its margins are fixed (no automatic layout): redrawing the same content gives the same pixels, and
    a picture does not shift as a slider moves.
    """
    from matplotlib.figure import Figure

    class StaticFigure(Figure):
        def _repr_png_(self):
            return figure_png(self)

    fig = StaticFigure(**kwargs)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    return fig
