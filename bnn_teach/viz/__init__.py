"""Figures and widgets of the course: every figure in a lecture or an assignment comes from here.

- :mod:`~bnn_teach.viz.sparsity`: the sparsification recorder, weight/filter pictures, slider, animation.
- :mod:`~bnn_teach.viz.uncertainty`: regression bands, reliability diagram, in vs out of distribution.
- :mod:`~bnn_teach.viz.mcmc`: traces, autocorrelation, effective sample size, 2-D samples, histograms against
  an exact posterior, step-size schedules, variable selection, ensemble size.
- :mod:`~bnn_teach.viz.widgets`: the 1-D regression explorers (Bayes by Backprop, MC dropout).
- :mod:`~bnn_teach.viz.training`: training curves, gradient estimators and their variance.
- :mod:`~bnn_teach.viz.distributed`: subposteriors and their combinations, curves per round, accuracy against
  bytes sent (lecture 8).
"""
from bnn_teach.viz.distributed import distributed_figure, plot_communication, plot_rounds, plot_subposteriors
from bnn_teach.viz.mcmc import (
    autocorrelation,
    effective_sample_size,
    plot_autocorrelation,
    plot_ensemble_size,
    plot_marginals,
    plot_samples_2d,
    plot_step_sizes,
    plot_traces,
    plot_variable_selection,
)
from bnn_teach.viz.sparsity import (
    SparsityRecorder,
    frame_title,
    layer_score,
    plot_conv_filters,
    plot_frame,
    plot_input_pixels,
    plot_input_tiles,
    plot_log_alpha_hist,
    plot_mu_sigma,
    plot_pruning_curve,
    plot_sparsity_bars,
    plot_weights,
    save_animation,
    sparsification_slider,
)
from bnn_teach.viz.training import (
    experiment_figure,
    plot_gradient_estimators,
    plot_gradient_variance,
    plot_history,
    plot_sweep,
)
from bnn_teach.viz.uncertainty import (
    plot_auroc_bars,
    plot_certainty_grid,
    plot_gaussian_fits,
    plot_ood_inputs,
    plot_regression_bands,
    plot_reliability,
    plot_reliability_grid,
    plot_uncertainty_hist,
    plot_uncertainty_hists,
    plot_uncertainty_map,
    uncertainty_grid,
)
from bnn_teach.viz.widgets import DropoutExplorer, RegressionExplorer, regression_explorer

__all__ = [
    "SparsityRecorder", "frame_title", "layer_score", "plot_conv_filters", "plot_frame", "plot_input_tiles",
    "plot_input_pixels",
    "plot_log_alpha_hist", "plot_mu_sigma", "plot_pruning_curve", "plot_sparsity_bars", "plot_weights",
    "save_animation", "sparsification_slider", "plot_regression_bands", "plot_reliability", "plot_uncertainty_hist",
    "plot_certainty_grid", "plot_gaussian_fits", "plot_uncertainty_map", "uncertainty_grid",
    "plot_ood_inputs", "plot_reliability_grid", "plot_auroc_bars", "plot_uncertainty_hists", "autocorrelation",
    "effective_sample_size", "plot_traces", "plot_autocorrelation", "plot_samples_2d", "plot_marginals",
    "plot_step_sizes", "plot_variable_selection", "plot_ensemble_size", "plot_history",
    "experiment_figure", "plot_gradient_estimators", "plot_gradient_variance", "plot_sweep", "RegressionExplorer",
    "regression_explorer", "DropoutExplorer", "plot_subposteriors", "plot_rounds", "plot_communication",
    "distributed_figure",
]
