"""bnn_teach.distributed: natural parameters, compression, the posterior server against the exact posterior of
Bayesian linear regression (2 and 4 worker processes over gloo on 127.0.0.1), the baselines, and failures."""
import copy
import math
import os
import signal
import time

import pytest
import torch
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

import bnn_teach as bt
from bnn_teach import distributed as btd

NOISE_VAR, PRIOR_SIGMA = 1.0, 1.0


#: correlated inputs: the exact marginal variances and the mean-field optimum's differ (by 1.5x and more)
MIXING = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.4, 0.77]])


def regression(seed=0, n=400, d=3, correlated=True):
    """Bayesian linear regression, on correlated inputs unless asked: ``(X, y, mean, var)`` with the mean and
    the variances of the **mean-field optimum** (the exact mean; 1 / Lambda_ii), what `method="vi"` converges
    to (on uncorrelated inputs nearly the exact marginal variances)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g) @ (MIXING.T if correlated else torch.eye(d))
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + math.sqrt(NOISE_VAR) * torch.randn(n, generator=g)
    mean, cov, precision = bt.vi.linear_regression_posterior(X, y, NOISE_VAR, PRIOR_SIGMA)
    return X, y, mean.float(), 1 / precision.diagonal().float()


def exact_sd(X, y):
    """The exact posterior's marginal standard deviations (the scale a mean's error is measured in)."""
    return bt.vi.linear_regression_posterior(X, y, NOISE_VAR, PRIOR_SIGMA)[1].diagonal().float().sqrt()


def test_the_design_tells_the_mean_field_optimum_from_the_exact_posterior():
    X, y, _, mean_field_var = regression()
    exact_var = bt.vi.linear_regression_posterior(X, y, NOISE_VAR, PRIOR_SIGMA)[1].diagonal().float()
    assert (exact_var / mean_field_var).max() > 1.5, "on this design a test can tell the two apart"


def linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(bt.nn.BayesLinear(3, 1, bias=False, init_rho=-3.0,
                                           prior=bt.priors.GaussianPrior(PRIOR_SIGMA)))


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ------------------------------------------------------------------------------------------- natural parameters

def test_product_of_gaussians_is_a_sum_of_natural_parameters():
    a = btd.DiagGaussian.from_moments(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0]))
    b = btd.DiagGaussian.from_moments(torch.tensor([3.0, 0.5]), torch.tensor([1.5, 0.25]))
    product = a + b
    theta = torch.linspace(-4, 4, 50).unsqueeze(-1).expand(50, 2)
    # log N_a + log N_b - log N_ab is constant in theta (the normaliser)
    reference = (Normal(a.mean, a.sd).log_prob(theta) + Normal(b.mean, b.sd).log_prob(theta)
                 - Normal(product.mean, product.sd).log_prob(theta))
    assert torch.allclose(reference - reference[0], torch.zeros_like(reference), atol=1e-4)
    assert torch.allclose(product.var, 1 / (1 / a.var + 1 / b.var))
    assert torch.allclose((product - b).mean, a.mean, atol=1e-5) and torch.allclose((product - b).var, a.var)
    assert torch.allclose(a.log_prob(theta), Normal(a.mean, a.sd).log_prob(theta).sum(-1), atol=1e-5)


def test_model_posterior_round_trip_and_prior():
    model = bt.models.lenet300("bbb")
    q = btd.posterior_of(model)
    assert len(q) == btd.num_parameters(model) == 266_610
    layer = model.fc1
    assert torch.allclose(q.mean[:layer.weight_mu.numel()], layer.weight_mu.detach().reshape(-1))
    assert torch.allclose(q.sd[:layer.weight_mu.numel()], layer.weight_sigma.detach().reshape(-1), rtol=1e-5)
    other = bt.models.lenet300("bbb")
    btd.load_posterior_(other, q)
    assert torch.allclose(btd.posterior_of(other).mean, q.mean)
    assert torch.allclose(btd.posterior_of(other).sd, q.sd, rtol=1e-4)
    prior = btd.prior_of(model)
    assert torch.allclose(prior.var, torch.ones(len(q))) and torch.all(prior.mean == 0)
    with pytest.raises(TypeError, match="Gaussian priors"):
        btd.prior_of(nn.Sequential(bt.nn.BayesLinear(2, 2, prior=bt.priors.ScaleMixturePrior())))
    with pytest.raises(TypeError, match="no Bayes-by-Backprop layer"):
        btd.posterior_of(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="not a proper Gaussian"):
        (btd.DiagGaussian.flat(torch.zeros(3))).check_proper()


# ------------------------------------------------------------------------------------------- compression

def test_topk_sends_whole_coordinates_and_counts_its_bytes():
    """A coordinate's shift and precision changes go together (a mean is their ratio)."""
    shift = torch.tensor([0.1, -5.0, 0.3, 0.0])
    precision = torch.tensor([0.0, 0.0, 0.1, 4.0])
    topk = btd.TopK(0.5)
    sent = topk.decode(topk.encode(torch.cat([shift, precision])), 8)
    assert torch.equal(sent, torch.tensor([0, -5.0, 0, 0.0, 0, 0, 0, 4.0]))   # coordinates 1 and 3, both numbers
    # by a priority, coordinate 2 comes first
    priority = torch.tensor([0.0, 1.0, 3.0, 2.0])
    sent = btd.TopK(0.25).decode(btd.TopK(0.25).encode(torch.cat([shift, precision]), priority=priority), 8)
    assert torch.equal(sent, torch.tensor([0, 0, 0.3, 0, 0, 0, 0.1, 0]))
    assert topk.nbytes(8) == 2 * 12 and btd.TopK(0.1).nbytes(2000) == 100 * 12
    assert btd.compress.NoCompression().nbytes(2000) == 8000
    with pytest.raises(ValueError, match="shifts, then precisions"):
        topk.encode(torch.zeros(3))


def test_quantize_error_is_at_most_half_a_level_of_each_half():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(500, generator=g), 1000 + 50 * torch.randn(500, generator=g)])
    q = btd.Quantize(8)
    decoded = q.decode(q.encode(x), 1000)
    for half, sent in zip(x.chunk(2), decoded.chunk(2)):
        level = (half.max() - half.min()) / 255
        assert (sent - half).abs().max() <= level / 2 + 1e-4 * half.abs().max()
        assert (sent - half).abs().max() > level / 10          # it does round
    assert q.nbytes(1000) == 1000 + 16
    three = btd.Quantize(3)   # codes packed 3 bits each: 188 bytes per half of 500, not 500
    assert three.nbytes(1000) == 2 * math.ceil(500 * 3 / 8) + 16
    decoded = three.decode(three.encode(x), 1000)
    for half, sent in zip(x.chunk(2), decoded.chunk(2)):
        assert (sent - half).abs().max() <= (half.max() - half.min()) / 7 / 2 * (1 + 1e-5)
    with pytest.raises(ValueError, match="bits"):
        btd.Quantize(9)
    with pytest.raises(ValueError, match="unknown compression"):
        btd.compress.make("zip")


# ------------------------------------------------------------------------------------------- the posterior server

def schedule_2(r):   # 1/m for 60 rounds, then decreasing: averages the noisy local fits over more rounds
    return min(0.5, 30.0 / r)


def schedule_4(r):   # 1/m for 120 rounds: on correlated inputs the mean takes about 100 rounds at 1/4
    return min(0.25, 30.0 / r)


@pytest.mark.parametrize("num_workers, schedule", [(2, schedule_2), (4, schedule_4)])
def test_posterior_server_reaches_the_mean_field_optimum_of_bayesian_linear_regression(num_workers, schedule):
    X, y, mean, var = regression()
    run = btd.posterior_server(linear_model(), (X, y), num_workers, rounds=100, local_steps=50,
                               batch_size=400 // num_workers, lr=0.01, damping=schedule, noise_var=NOISE_VAR,
                               progress=False)
    q = run.posterior
    assert ((q.mean - mean).abs() / exact_sd(X, y)).max() < 0.1, (q.mean, mean)
    assert ((q.var / var) - 1).abs().max() < 0.15, (q.var, var)
    assert len(run.history) == 100 and run.history[-1]["clamped"] == 0
    # 3 weights: every round each worker sends (shift, precision) changes, 2 x 3 float32, and receives q
    assert run.bytes_up == run.bytes_down == 100 * num_workers * 2 * 3 * 4


def test_without_decreasing_damping_the_noisy_fits_stay_noisy():
    """The same run with damping fixed at 1: each round's q is the last noisy local fit; the variances wander."""
    X, y, mean, var = regression(correlated=False)
    run = btd.posterior_server(linear_model(), (X, y), 4, rounds=12, local_steps=50, batch_size=100, lr=0.01,
                               damping=1.0, noise_var=NOISE_VAR, progress=False, trace=True)
    ratios = torch.stack([q.var / var for q in run.trace[-6:]])
    assert (ratios - 1).abs().max() > 0.15


def test_one_worker_is_bayes_by_backprop():
    """m = 1, damping 1: the cavity is the prior, so every round continues Bayes by Backprop on all the data."""
    X, y, mean, var = regression()
    run = btd.posterior_server(linear_model(), (X, y), 1, rounds=10, local_steps=100, batch_size=100, lr=0.01,
                               noise_var=NOISE_VAR, progress=False)
    assert ((run.posterior.mean - mean).abs() / exact_sd(X, y)).max() < 0.2
    assert ((run.posterior.var / var) - 1).abs().max() < 0.2


def test_compressed_messages_count_fewer_bytes_and_still_converge():
    X, y, mean, var = regression(correlated=False)
    run = btd.posterior_server(linear_model(), (X, y), 2, rounds=40, local_steps=50, batch_size=200, lr=0.01,
                               damping=schedule_2, noise_var=NOISE_VAR, compression="8bit", progress=False)
    assert run.bytes_up == 40 * 2 * (2 * 3 + 16)      # 6 one-byte codes, a min and a step per half
    assert ((run.posterior.mean - mean).abs() / var.sqrt()).max() < 0.2
    assert run.settings["compression"] == "8-bit"
    run = btd.posterior_server(linear_model(), (X, y), 2, rounds=40, local_steps=50, batch_size=200, lr=0.01,
                               damping=schedule_2, noise_var=NOISE_VAR, compression="topk:0.33", progress=False)
    assert run.bytes_up == 40 * 2 * 12                 # one of the 3 coordinates a message
    assert ((run.posterior.mean - mean).abs() / var.sqrt()).max() < 0.2


def test_consensus_monte_carlo_combines_gaussian_subposteriors():
    """For Gaussian subposteriors the precision-weighted average of draws is exact (up to Monte Carlo error)."""
    X, y, mean, var = regression(n=200, correlated=False)
    run = btd.consensus_monte_carlo(linear_model(), (X, y), 2, num_samples=200, burn_in=300, thin=20,
                                    batch_size=100, sgld_lr=5e-4, noise_var=NOISE_VAR, progress=False)
    assert run.samples.shape == (200, 3)
    assert ((run.posterior.mean - mean).abs() / var.sqrt()).max() < 0.4
    assert ((run.posterior.var / var) - 1).abs().max() < 0.4
    assert run.bytes_up == 2 * 200 * 3 * 4 and run.bytes_down == 0


def test_federated_averaging_runs_and_approaches_the_posterior_mean():
    X, y, mean, var = regression(correlated=False)
    run = btd.federated_averaging(linear_model(), (X, y), 2, rounds=10, local_steps=100, batch_size=100, lr=0.01,
                                  noise_var=NOISE_VAR, progress=False)
    assert ((run.posterior.mean - mean).abs() / var.sqrt()).max() < 0.5
    assert run.bytes_up == run.bytes_down == 10 * 2 * 2 * 3 * 4   # mu and rho up, q down


def test_predict_on_a_classifier_gives_probabilities():
    torch.manual_seed(0)
    X = torch.randn(120, 1, 28, 28)
    y = torch.randint(0, 10, (120,))
    model = bt.models.lenet300("bbb")
    run = btd.posterior_server(model, (X, y), 2, rounds=2, local_steps=3, batch_size=20, progress=False,
                               test_data=(X[:30], y[:30]))
    probs = run.predict(model, X[:5], num_samples=4)
    assert probs.shape == (4, 5, 10) and torch.allclose(probs.sum(-1), torch.ones(4, 5), atol=1e-5)
    assert 0.0 <= run.history[-1]["test_acc"] <= 1.0


def test_round_metrics_score_every_round_of_the_trace():
    torch.manual_seed(0)
    X = torch.randn(200, 1, 28, 28)
    y = torch.randint(0, 10, (200,))
    model = bt.models.lenet300("bbb")
    run = btd.posterior_server(model, (X, y), 2, rounds=3, local_steps=2, batch_size=50, progress=False, trace=True)
    rows = run.round_metrics(model, (X[:40], y[:40]), num_samples=3)
    assert [row["round"] for row in rows] == [1, 2, 3]
    torch.manual_seed(1)
    net = btd.gaussian.load_posterior_(copy.deepcopy(model), run.trace[0]).eval()
    with bt.nn.sampling(net):
        probs = torch.stack([torch.softmax(net(X[:40]), -1) for _ in range(3)]).mean(0)
    torch.manual_seed(1)
    first = run.round_metrics(model, (X[:40], y[:40]), num_samples=3)[0]   # the first three draws, as above
    assert first["nll"] == pytest.approx(F.nll_loss(probs.log(), y[:40]).item(), abs=1e-4)
    assert first["accuracy %"] == pytest.approx(100 * (probs.argmax(-1) == y[:40]).float().mean().item(), abs=0.01)
    untraced = btd.posterior_server(model, (X, y), 2, rounds=1, local_steps=1, batch_size=50, progress=False)
    with pytest.raises(ValueError, match="trace=True"):
        untraced.round_metrics(model, (X[:40], y[:40]))


# ------------------------------------------------------------------------------------------- failures

class DiesOnRank(nn.Module):
    """Identity; on ``rank`` it kills its own process (SIGKILL, as the out-of-memory killer would) at call ``at``."""

    def __init__(self, rank, at):
        super().__init__()
        self.rank, self.at, self.calls = rank, at, 0

    def forward(self, x):
        import torch.distributed as dist

        self.calls += 1
        if dist.is_initialized() and dist.get_rank() == self.rank and self.calls == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return x


class HangsOnRank(DiesOnRank):
    def forward(self, x):
        import torch.distributed as dist

        self.calls += 1
        if dist.is_initialized() and dist.get_rank() == self.rank and self.calls == self.at:
            time.sleep(600)
        return x


def test_a_worker_that_dies_mid_run_is_a_clear_error_and_leaves_no_process():
    X, y, _, _ = regression()
    model = nn.Sequential(DiesOnRank(rank=2, at=120), *linear_model())
    began = time.monotonic()
    with pytest.raises(btd.WorkerError) as info:
        btd.posterior_server(model, (X, y), 4, rounds=40, local_steps=50, batch_size=100, noise_var=NOISE_VAR,
                             progress=False, timeout=120)
    assert time.monotonic() - began < 60
    error = info.value
    assert error.rank == 2 and error.exitcode == -signal.SIGKILL
    assert "rank 2 (worker 2) was killed by SIGKILL" in str(error) and "all 5 processes ended" in str(error)
    assert len(error.pids) == 5 and all(gone(pid) for pid in error.pids)


class RaisesOnRank(DiesOnRank):
    def forward(self, x):
        import torch.distributed as dist

        self.calls += 1
        if dist.is_initialized() and dist.get_rank() == self.rank and self.calls == self.at:
            raise RuntimeError("out of memory (simulated)")
        return x


def test_an_exception_in_a_worker_reaches_the_parent_with_its_traceback():
    X, y, _, _ = regression()
    model = nn.Sequential(RaisesOnRank(rank=1, at=7), *linear_model())
    with pytest.raises(btd.WorkerError, match=r"rank 1 \(worker 1\) exited with code 1[\s\S]*"
                                              r"RuntimeError: out of memory \(simulated\)[\s\S]*Traceback"):
        btd.posterior_server(model, (X, y), 2, rounds=2, local_steps=5, noise_var=NOISE_VAR, progress=False)


def test_data_that_do_not_fit_the_model_are_refused_in_the_parent():
    _, y, _, _ = regression()
    with pytest.raises(ValueError, match="does not fit in_features=3"):
        btd.posterior_server(linear_model(), (torch.randn(400, 5), y), 2, noise_var=NOISE_VAR, progress=False)


def test_a_hung_worker_times_out_and_leaves_no_process():
    X, y, _, _ = regression()
    model = nn.Sequential(HangsOnRank(rank=1, at=10), *linear_model())
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="timeout of 8 s") as info:
        btd.posterior_server(model, (X, y), 2, rounds=5, local_steps=50, noise_var=NOISE_VAR, progress=False,
                             timeout=8)
    assert time.monotonic() - began < 20
    del info
    import multiprocessing

    assert not [p for p in multiprocessing.active_children() if p.name.startswith("bnn_teach-")]


@pytest.mark.parametrize("num_data, num_workers", [(10, 8), (9, 4), (100, 7), (8, 8)])
def test_the_data_split_has_exactly_one_near_equal_part_per_worker(num_data, num_workers):
    parts = btd.algorithms.split(num_data, num_workers)
    sizes = [len(p) for p in parts]
    assert len(parts) == num_workers and max(sizes) - min(sizes) <= 1, sizes
    assert sorted(torch.cat(parts).tolist()) == list(range(num_data))
    labels = torch.arange(num_data) % 3
    assert len(btd.algorithms.split(num_data, num_workers, "by_label", labels)) == num_workers


def test_data_problems_are_named_in_one_line_before_any_process_starts(monkeypatch):
    def no_processes(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(btd.algorithms, "launch", no_processes)
    X, y, _, _ = regression()
    model = linear_model()
    with pytest.raises(ValueError, match="train_data: X holds 1 NaN"):
        btd.posterior_server(model, (X.index_put((torch.tensor([3]), torch.tensor([1])), torch.tensor(float("nan"))),
                                     y), 2, noise_var=NOISE_VAR, progress=False)
    with pytest.raises(ValueError, match="train_data: y holds 1 NaN"):
        btd.posterior_server(model, (X, y.index_put((torch.tensor([0]),), torch.tensor(float("inf")))), 2,
                             noise_var=NOISE_VAR, progress=False)
    with pytest.raises(ValueError, match="pass noise_var="):
        btd.posterior_server(model, (X, y), 2, progress=False)
    with pytest.raises(ValueError, match=r"shape \(N,\) or \(N, 1\), got \(400, 2\)"):
        btd.posterior_server(model, (X, torch.stack([y, y], 1)), 2, noise_var=NOISE_VAR, progress=False)
    with pytest.raises(ValueError, match=r"test_data: X has inputs of shape \(5,\)"):
        btd.posterior_server(model, (X, y), 2, noise_var=NOISE_VAR, test_data=(torch.randn(10, 5), y[:10]),
                             progress=False)
    with pytest.raises(ValueError, match="noise_var"):
        btd.posterior_server(model, (X, y), 2, noise_var=-1.0, progress=False)


def test_the_default_timeouts_grow_with_the_work_and_gloo_waits_about_one_round():
    X, y, _, _ = regression()
    short, _ = btd.algorithms.prepare("ep", linear_model(), (X, y), 2, rounds=2, local_steps=50, batch_size=100,
                                      lr=0.01, noise_var=NOISE_VAR)
    long, _ = btd.algorithms.prepare("ep", linear_model(), (X, y), 2, rounds=200, local_steps=50, batch_size=100,
                                     lr=0.01, noise_var=NOISE_VAR)
    (t_short, comm_short), (t_long, comm_long) = (btd.algorithms.default_timeouts(spec, 2, step_seconds=0.01)
                                                  for spec in (short, long))
    assert t_long - 120 == pytest.approx(100 * (t_short - 120)), (t_short, t_long)   # 100x the rounds
    assert comm_long == pytest.approx(comm_short) and comm_long < t_long / 20, (comm_short, comm_long)
    measured, comm = btd.algorithms.default_timeouts(long, 2)   # a step timed here
    assert measured > 120 and 60 < comm < measured


def test_bad_arguments_are_refused_before_any_process_starts():
    X, y, _, _ = regression()
    model = linear_model()
    with pytest.raises(ValueError, match="num_workers"):
        btd.posterior_server(model, (X, y), 0, progress=False)
    with pytest.raises(ValueError, match="damping"):
        btd.posterior_server(model, (X, y), 2, damping=1.5, progress=False)
    with pytest.raises(ValueError, match="at round 3"):
        btd.posterior_server(model, (X, y), 2, rounds=5, damping=lambda r: 1.0 if r < 3 else 0.0, progress=False)
    with pytest.raises(ValueError, match="method"):
        btd.posterior_server(model, (X, y), 2, method="mcmc", progress=False)
    with pytest.raises(ValueError, match="at least 5 data points"):
        btd.posterior_server(model, (X[:3], y[:3]), 5, progress=False)
    with pytest.raises(TypeError, match="no Bayes-by-Backprop layer"):
        btd.posterior_server(nn.Linear(3, 1), (X, y), 2, progress=False)


# ------------------------------------------------------------------------------------------- torchrun and figures

def test_torchrun_runs_the_same_server(tmp_path):
    """Three processes under torchrun (the server and two workers), on the embedded MNIST."""
    import json
    import subprocess
    import sys

    out = tmp_path / "row.json"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
         "-m", "bnn_teach.distributed", "--rounds", "2", "--local-steps", "3", "--train-size", "600",
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    row = json.loads(out.read_text())
    assert row["label"] == "posterior server, 2 workers" and 0 <= row["accuracy %"] <= 100
    assert row["MB up"] == pytest.approx(2 * 2 * 2 * 79_510 * 4 / 1e6, abs=1e-3)   # 2 rounds, 2 workers
    assert "rank 0: {'round': 2" in result.stdout
    alone = subprocess.run([sys.executable, "-m", "bnn_teach.distributed"], capture_output=True, text=True)
    assert alone.returncode == 2 and "run it under torchrun" in alone.stderr


def test_lecture_figures_have_titles_labels_and_legends():
    import matplotlib.pyplot as plt

    fig = bt.viz.plot_subposteriors([(0.5, 0.2), (0.9, 0.2)], {"exact posterior": (0.7, 0.14),
                                                                "average": (0.7, 0.2)}, xlabel="slope w")
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() == "slope w" and ax.get_ylabel() == "density"
    assert len(ax.get_legend().get_texts()) == 3   # one entry for the workers, one per combination
    plt.close(fig)
    fig = bt.viz.plot_rounds({"a": [1.0, 0.5, 0.2], "b": [2.0, 1.0, 0.9]}, "error", "Errors", logy=True,
                             reference=0.15, reference_label="tolerance")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel().startswith("round")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "tolerance"]
    plt.close(fig)
    rows = [{"label": "posterior server, 2 workers", "method": "ep", "MB up": 1.2, "accuracy %": 90.0},
            {"label": "consensus MC, 2 workers", "method": "consensus", "MB up": 12.0, "accuracy %": 80.0}]
    fig = bt.viz.plot_communication(rows)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "megabytes" in ax.get_xlabel() and "accuracy" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [r["label"] for r in rows]
    plt.close(fig)
    fig = bt.viz.distributed_figure({"rows": rows, "curves": {r["label"]: [0.5, 0.8] for r in rows}}, smoke_run=True)
    assert len(fig.axes) == 2 and "SMOKE RUN" in fig._suptitle.get_text()
    plt.close(fig)


def test_format_table_lists_each_run_under_its_columns():
    rows = [{"label": "posterior server, 1 worker", "accuracy %": 95.53, "nll": 0.1588, "ece": 0.0357,
             "MB up": 12.722, "MB down": 12.722, "seconds": 9.5},
            {"label": "consensus MC, 8 workers", "accuracy %": 85.77, "nll": 0.449, "ece": 0.0192,
             "MB up": 50.886, "MB down": 0.0, "seconds": 22.8}]
    lines = btd.format_table(rows).splitlines()
    assert lines[0].split() == ["accuracy", "%", "nll", "ece", "MB", "up", "MB", "down", "seconds"]
    assert lines[1].startswith("posterior server, 1 worker ") and lines[1].split()[-6:] == [
        "95.53", "0.1588", "0.0357", "12.722", "12.722", "9.5"]
    assert len({len(line) for line in lines}) == 1   # every line as wide: the columns line up
