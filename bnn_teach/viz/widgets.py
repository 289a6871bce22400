"""Interactive explorers (lecture 7). They work headless: the figure is computed without a frontend,
and where ipywidgets is missing the explorer is just its static figure."""
from __future__ import annotations

import torch
from torch import nn

from bnn_teach import data as _data
from bnn_teach.nn import BayesLinear, MCDropout
from bnn_teach.objectives import gaussian_nll
from bnn_teach.predict import predictive_regression
from bnn_teach.priors import GaussianPrior
from bnn_teach.train import fit
from bnn_teach.viz._png import figure_png, new_figure
from bnn_teach.viz.uncertainty import plot_regression_bands

__all__ = ["RegressionExplorer", "regression_explorer", "DropoutExplorer"]


class RegressionExplorer:
    """Fit a small Bayesian network to 1-D regression data and show its predictive bands.

    Knobs: ``prior_sigma`` (Gaussian prior of the BBB layers), ``kl_weight``, ``num_samples``
    (Monte Carlo samples of the prediction) and ``dropout`` (MC dropout rate after each hidden layer).
    :meth:`update` refits and redraws; :meth:`widget` wires ipywidgets sliders to it (``observe``).
    The network predicts a mean and a log noise variance, so the bands split into aleatoric and epistemic.
    ``kl_weight`` starts at 0.2: with the full ELBO (1.0) on 120 points the prior dominates and the fit is
    nearly flat, which moving the slider to 1 shows. Its layers sample weights (``local_reparam=False``):
    each Monte Carlo sample is one whole function, so the predictive mean is smooth in ``x`` (the LRT
    would draw independent noise per input).

    The hidden units are ReLUs, whose sampled functions fan out linearly beyond the data: the
    predictive grid runs to ±8 against data in [-4, 4], and there the epistemic band is several times
    wider than on the data (``tests/test_viz.py`` asserts at least 3×). With ``tanh`` units the sampled
    functions saturate to constants and the band would be no wider off the data than on it.
    One update (300 epochs on 120 points) takes a few seconds on a laptop CPU.
    """

    def __init__(self, X=None, y=None, prior_sigma=1.0, kl_weight=0.2, num_samples=100, dropout=0.0,
                 hidden=32, num_epochs=300, seed=0):
        self._start(X, y, dict(prior_sigma=prior_sigma, kl_weight=kl_weight, num_samples=num_samples,
                                dropout=dropout), hidden, num_epochs, seed)

    def _start(self, X, y, values: dict, hidden: int, num_epochs: int, seed: int):
        """Keep the data (lecture 0's 1-D set when ``X`` is None) and the knobs, make the figure, fit once."""
        if X is None:
            X, y = _data.regression_1d(120, seed=seed)
        self.X, self.y = X, y
        self.values = values
        self.hidden, self.num_epochs, self.seed = hidden, num_epochs, seed
        self.x_grid = torch.linspace(-8, 8, 240).unsqueeze(1)
        self.num_updates = 0
        self.prediction = None
        self.image = None  # the widget's picture, once widget() made it
        self.figure = new_figure(figsize=(6, 3.5))
        self.ax = self.figure.add_subplot()
        self.update()

    def build(self) -> nn.Module:
        prior = GaussianPrior(float(self.values["prior_sigma"]))
        p = float(self.values["dropout"])
        kw = dict(prior=prior, init_rho=-5.0, local_reparam=False)
        return nn.Sequential(BayesLinear(1, self.hidden, **kw), nn.ReLU(), MCDropout(p),
                             BayesLinear(self.hidden, self.hidden, **kw), nn.ReLU(), MCDropout(p),
                             BayesLinear(self.hidden, 2, **kw))

    def update(self, **values):
        """Set any of the knobs, refit, recompute the prediction and redraw. Returns the prediction."""
        unknown = set(values) - set(self.values)
        if unknown:
            raise ValueError(f"unknown knob(s) {sorted(unknown)}; the knobs are {sorted(self.values)}")
        self.values.update(values)
        torch.manual_seed(self.seed)
        model = self.build()
        fit(model, (self.X, self.y), self.num_epochs, self.optimizer(model), batch_size=32,
            kl_weight=float(self.values.get("kl_weight", 0.0)), nll_fn=gaussian_nll, progress=False)
        self.model = model
        self.prediction = predictive_regression(model, self.x_grid, num_samples=int(self.values["num_samples"]))
        self.ax.clear()
        plot_regression_bands(self.x_grid, self.prediction, self.X, self.y, ax=self.ax)
        self.ax.set_title(self.title(), fontsize=9)
        if self.image is not None:
            self.image.value = figure_png(self.figure)
        self.num_updates += 1
        return self.prediction

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=1e-2)

    def title(self) -> str:
        v = self.values
        return (f"prior σ {v['prior_sigma']:g} · KL weight {v['kl_weight']:g} · "
                f"{int(v['num_samples'])} samples · dropout {v['dropout']:g}")

    def sliders(self, widgets) -> dict:
        """One ipywidgets slider per knob, set to its current value."""
        return {
            "prior_sigma": widgets.FloatLogSlider(
                value=self.values["prior_sigma"], base=10, min=-2, max=1, description="prior σ"
            ),
            "kl_weight": widgets.FloatSlider(
                value=self.values["kl_weight"], min=0.0, max=2.0, step=0.1, description="KL weight"
            ),
            "num_samples": widgets.IntSlider(
                value=self.values["num_samples"], min=1, max=200, description="MC samples"
            ),
            "dropout": widgets.FloatSlider(
                value=self.values["dropout"], min=0.0, max=0.9, step=0.05, description="dropout"
            ),
        }

    def widget(self):
        """Sliders whose ``observe`` callbacks call :meth:`update`, above the figure as a PNG
        (``ipywidgets.Image``) that each update redraws; the static figure without ipywidgets."""
        try:
            import ipywidgets as widgets
        except ImportError:  # pragma: no cover - ipywidgets is a dependency
            return self.figure
        sliders = self.sliders(widgets)
        for name, slider in sliders.items():
            slider.continuous_update = False
            slider.observe(lambda change, name=name: self.update(**{name: change["new"]}), names="value")
        self.image = widgets.Image(value=figure_png(self.figure), format="png")
        box = widgets.VBox([*sliders.values(), self.image])
        box.sliders, box.image = sliders, self.image
        return box


def regression_explorer(**kwargs):
    """Build a :class:`RegressionExplorer` and return ``(explorer, widget)``."""
    explorer = RegressionExplorer(**kwargs)
    return explorer, explorer.widget()


class DropoutExplorer(RegressionExplorer):
    """MC dropout on the same 1-D regression (lecture 4): a plain ReLU network with
    :class:`~bnn_teach.nn.MCDropout` after each hidden layer, trained with weight decay, predicting
    with dropout on (``num_samples`` masks).

    Knobs: ``dropout`` (the rate p), ``weight_decay`` (Adam's, the dropout objective's prior term) and
    ``num_samples``. The epistemic band is the spread of the sampled networks' means: it grows with p
    whatever the data say, because p is a fixed hyper-parameter, not learnt.
    """

    def __init__(self, X=None, y=None, dropout=0.2, weight_decay=1e-4, num_samples=100, hidden=64, num_epochs=300,
                 seed=0):
        self._start(X, y, dict(dropout=dropout, weight_decay=weight_decay, num_samples=num_samples), hidden,
                    num_epochs, seed)

    def build(self) -> nn.Module:
        p = float(self.values["dropout"])
        return nn.Sequential(nn.Linear(1, self.hidden), nn.ReLU(), MCDropout(p),
                             nn.Linear(self.hidden, self.hidden), nn.ReLU(), MCDropout(p),
                             nn.Linear(self.hidden, 2))

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=float(self.values["weight_decay"]))

    def title(self) -> str:
        v = self.values
        return (f"MC dropout · p {v['dropout']:g} · weight decay {v['weight_decay']:g} · "
                f"{int(v['num_samples'])} samples")

    def sliders(self, widgets) -> dict:
        return {
            "dropout": widgets.FloatSlider(value=self.values["dropout"], min=0.0, max=0.8, step=0.05,
                                           description="dropout p"),
            "weight_decay": widgets.FloatLogSlider(value=self.values["weight_decay"], base=10, min=-6, max=-1,
                                                   description="weight decay"),
            "num_samples": widgets.IntSlider(value=self.values["num_samples"], min=1, max=200,
                                             description="MC samples"),
        }
