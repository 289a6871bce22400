"""``bnn-teach reproduce EXPERIMENT``: the papers' tables, re-run and printed beside the papers' rows.

Each experiment writes ``results.json`` (ours and the paper's), ``history.json`` and ``figure.png``
under ``--out`` (default ``runs/EXPERIMENT``), saves a checkpoint after every epoch and resumes from
it after an interruption (``--restart`` starts over). ``BNN_TEACH_FAST=1`` shrinks the data and the
epochs: such a run is a smoke run (it checks that the code runs) and says so in its table, its
``results.json`` and its figure.

A run folder belongs to one set of settings (experiment, epochs, seed, learning rate, training
images, FAST, batch size; ``settings.json``) and one data set (image counts and a fingerprint of the
tensors, kept in every checkpoint). Asking a folder for a run with other settings or other data is
refused (:class:`SettingsMismatch`) before anything in it changes. Nothing is created before the
arguments are checked and the data are loaded.
Full runs are benchmarks (see ``benchmarks/README.md``), not tests.

One module per concern: :mod:`~bnn_teach.reproduce.experiments` (the seven experiments, the papers'
rows, the recipes), :mod:`~bnn_teach.reproduce.runs` (settings, checkpoints, :func:`run`) and
:mod:`~bnn_teach.reproduce.recorded` (the recorded runs the lectures load). The command line is parsed
in :mod:`bnn_teach.cli`.
"""
from bnn_teach.reproduce.experiments import EXPERIMENTS, PAPER, RECIPES, describe, sample_linear_regression
from bnn_teach.reproduce.experiments import _center as _center  # these three: the tests check the recipe's parts
from bnn_teach.reproduce.experiments import _linear_decay as _linear_decay
from bnn_teach.reproduce.experiments import _paper_init_ as _paper_init_
from bnn_teach.reproduce.recorded import RECORDED, RecordedRunError, load_recorded, record
from bnn_teach.reproduce.runs import RunInterrupted, SettingsMismatch, UsageError, run

__all__ = [
    "EXPERIMENTS",
    "PAPER",
    "RECIPES",
    "run",
    "describe",
    "sample_linear_regression",
    "UsageError",
    "SettingsMismatch",
    "RunInterrupted",
    "record",
    "load_recorded",
    "RecordedRunError",
    "RECORDED",
]
