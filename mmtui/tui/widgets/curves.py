"""Training curves (loss per epoch on the left axis, validation R@10 on the right) with textual-plotext."""

from __future__ import annotations

import math
from typing import Any

from textual_plotext import PlotextPlot


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history, start=1):
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(float(row.get("epoch", i)))
            ys.append(float(value))
    return xs, ys


class CurvePlot(PlotextPlot):
    """`show(history, title)` redraws; history rows have epoch, train_loss, val_loss, val_r10."""

    def show(self, history: list[dict[str, Any]], title: str = "", epochs: int | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("epoch")
        drawn = False
        for key, label, colour, side in (("train_loss", "train loss", "cyan", "left"),
                                         ("val_loss", "val loss", "orange", "left"),
                                         ("val_r10", "val R@10", "green", "right")):
            xs, ys = _series(history, key)
            if xs:
                plt.plot(xs, ys, label=label, color=colour, yside=side, marker="braille")
                drawn = True
        last = max([epochs or 0] + [int(x) for x in _series(history, "epoch")[1]] + [len(history)])
        if last:
            plt.xlim(1, max(last, 2))
            step = max(1, -(-last // 10))
            plt.xticks(list(range(1, last + 1, step)))
        if not drawn:
            plt.title(title or "no epochs yet")
        self.refresh()
