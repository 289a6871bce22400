"""``bnn-teach``: check (data source, versions, broken files, missing pieces), one-line errors with exit
statuses 2 (usage) and 1 (failure), Ctrl-C, --version and reproduce --help."""
import os
import re
import subprocess
import sys

import pytest


def run_check(env_updates, *args, drop=("BNN_TEACH_DATA",)):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates)
    return subprocess.run([sys.executable, "-m", "bnn_teach.cli", "check", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_check_reports_full_set(mnist_root, tmp_path):
    result = run_check({"BNN_TEACH_DATA": str(mnist_root), "BNN_TEACH_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert f"full set at {mnist_root}" in result.stdout
    for piece in ("python", "torch", "nbgrader", "jupyterlab", "device", "writable"):
        assert piece in result.stdout


def test_check_reports_embedded_subset_offline(tmp_path):
    result = run_check({"BNN_TEACH_OFFLINE": "1", "BNN_TEACH_CACHE": str(tmp_path / "c")})
    assert result.returncode == 0, result.stderr
    assert "embedded subset" in result.stdout


def test_check_fails_when_a_required_piece_is_missing(tmp_path):
    shim = tmp_path / "shim" / "nbgrader"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('simulated: nbgrader is not installed')\n")
    env = {"PYTHONPATH": str(tmp_path / "shim"), "BNN_TEACH_OFFLINE": "1", "BNN_TEACH_CACHE": str(tmp_path / "c")}
    result = run_check(env, "--course")
    assert result.returncode == 1
    assert "missing nbgrader" in result.stderr
    # without --course the course tools are optional
    assert run_check(env).returncode == 0


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("bnn-teach") or os.path.join(os.path.dirname(sys.executable), "bnn-teach")
    if not os.path.exists(exe):
        pytest.fail("the bnn-teach console script is not installed next to this Python")
    result = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "check" in result.stdout


def test_check_reports_a_truncated_mnist_file_as_broken(mnist_root, tmp_path):
    """A .gz cut short must not be reported as ready: check reads and checksums what it reports."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (mnist_root / "MNIST" / "raw").glob("*.gz"):
        (raw / path.name).write_bytes(path.read_bytes())
    target = raw / "t10k-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    result = run_check({"BNN_TEACH_DATA": str(tmp_path / "data"), "BNN_TEACH_CACHE": str(tmp_path / "c")})
    assert result.returncode == 1
    assert "ready" not in result.stdout.splitlines()[-1]
    assert "BROKEN" in result.stdout and "t10k-images-idx3-ubyte.gz" in result.stdout
    assert "t10k-images-idx3-ubyte.gz" in result.stderr and "Traceback" not in result.stderr

    assert "bnn-teach check --download" in result.stderr, "advice a command-line user can follow"


def test_check_names_a_missing_mnist_file_and_a_bad_data_folder(mnist_root, tmp_path):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (mnist_root / "MNIST" / "raw").glob("*.gz"):
        if path.name != "t10k-labels-idx1-ubyte.gz":
            (raw / path.name).write_bytes(path.read_bytes())
    result = run_check({"BNN_TEACH_DATA": str(tmp_path / "data"), "BNN_TEACH_CACHE": str(tmp_path / "c")})
    assert result.returncode == 1 and "both splits read" not in result.stdout
    assert "holds only 3 of the 4 MNIST files; missing: t10k-labels-idx1-ubyte.gz" in result.stdout
    for folder, says in [(tmp_path / "nowhere", "is not a folder"), (tmp_path / "empty", "holds no MNIST file")]:
        (tmp_path / "empty").mkdir(exist_ok=True)
        result = run_check({"BNN_TEACH_DATA": str(folder), "BNN_TEACH_OFFLINE": "1",
                            "BNN_TEACH_CACHE": str(tmp_path / "c")})
        assert result.returncode == 1 and f"BNN_TEACH_DATA={folder} {says}" in result.stdout, result.stdout


# ---------------------------------------------------------------- one-line errors and exit statuses

from bnn_teach import cli, reproduce  # noqa: E402


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """/proc refuses new files even to root, as a read-only mount does; a file cannot hold a folder."""
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output folder was checked")

    monkeypatch.setattr(reproduce.runs, "fit", no_work)
    monkeypatch.setattr("bnn_teach.viz.gallery.render_all", no_work)
    (tmp_path / "a_file").write_text("x")
    for out in ("/proc/bnn-teach-runs/sgld", str(tmp_path / "a_file" / "run")):
        assert cli.main(["reproduce", "sgld-sa", "--out", out]) == 2
        err = capsys.readouterr().err
        assert f"--out {out}:" in err and "give a folder you can write to" in err and "Traceback" not in err
        assert cli.main(["gallery", out]) == 2
        err = capsys.readouterr().err
        assert f"{out}:" in err and "give a folder you can write to" in err and "OSError" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"], "the probes left nothing behind"


@pytest.mark.parametrize(
    "argv, status, says",
    [
        (["reproduce", "sparsevd-lenet300", "--epochs", "-3"], 2, "--epochs: must be a positive integer"),
        (["reproduce", "sparsevd-lenet300", "--epochs", "three"], 2, "--epochs: must be a positive integer"),
        (["reproduce", "sparsevd-lenet300", "--device", "gpu"], 2, "use cpu or cuda"),
        (
            ["reproduce", "sparsevd-lenet300", "--device", "cuda"],
            2,
            "CUDA is not available on this machine; use --device cpu",
        ),
        (["reproduce", "sparsevd-lenet300", "--train-size", "-5"], 2, "--train-size: must be a positive integer"),
        (["reproduce", "sgld-sa", "--lr", "5.0", "--train-size", "-5"], 2, "--train-size: must be a positive integer"),
        (["reproduce", "sgld-sa", "--lr", "5.0"], 2, "sgld-sa does not use --lr"),
        (["reproduce", "sgld-sa", "--train-size", "500"], 2, "sgld-sa does not use --train-size"),
        (["reproduce", "bbb-mnist", "--lr-floor", "0.1"], 2, "bbb-mnist does not use --lr-floor"),
        (["reproduce", "sparsevd-lenet300", "--lr", "nan"], 2, "--lr: must be a positive number"),
        (["reproduce", "sparsevd-lenet300", "--lr-floor", "1.5"], 2, "--lr-floor: must be in [0, 1)"),
        (["reproduce", "sparsevd-lenet300", "--seed", "-1"], 2, "--seed: must be a non-negative integer"),
        (["reproduce", "nope"], 2, "invalid choice"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_cli_errors_are_one_line_that_says_what_to_do(argv, status, says, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "run"
    code = cli.main([*argv, "--out", str(out)] if argv[0] == "reproduce" and len(argv) > 1 and argv[1] != "nope"
                    else argv)
    captured = capsys.readouterr()
    assert code == status
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert says in lines[0] and "Traceback" not in captured.err
    assert not out.exists(), "a refused command left a folder behind"


def test_out_naming_an_existing_file_is_refused(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert cli.main(["reproduce", "sgld-sa", "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a file; give a folder" in err
    assert target.read_text() == "mine"
    assert cli.main(["gallery", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_device_cuda_without_cuda_in_a_subprocess_leaves_nothing(tmp_path):
    """The shell a student uses: one line, status 2, and no empty output folder left behind."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = tmp_path / "cuda_run"
    command = [sys.executable, "-m", "bnn_teach.cli", "reproduce", "sparsevd-lenet300", "--device", "cuda",
               "--out", str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "CUDA is not available" in result.stderr
    assert not out.exists()


def test_a_mixed_resume_is_refused_by_the_cli_in_one_line(isolated_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BNN_TEACH_FAST", "1")
    out = tmp_path / "run"
    assert cli.main(["reproduce", "sgld-sa", "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    assert cli.main(["reproduce", "sgld-sa", "--epochs", "3", "--seed", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "steps 200 there, 300 asked" in err and "seed 0 there, 4 asked" in err
    assert "--restart" in err and "another --out" in err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before


def test_ctrl_c_during_training_says_how_to_resume(isolated_data, tmp_path, capsys, monkeypatch):
    from bnn_teach import train

    monkeypatch.setenv("BNN_TEACH_FAST", "1")

    def ctrl_c_after_epoch_1(*args, callbacks=(), **kwargs):
        def stop(epoch, model, history):
            if epoch == 1:
                raise KeyboardInterrupt
        return train.fit(*args, callbacks=[*callbacks, stop], **kwargs)

    monkeypatch.setattr(reproduce.runs, "fit", ctrl_c_after_epoch_1)
    out = tmp_path / "run"
    code = cli.main(["reproduce", "sparsevd-lenet300", "--epochs", "3", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 130
    assert err.splitlines() == ["bnn-teach reproduce: stopped after epoch 1 (sparsevd-lenet300); the checkpoint is "
                                "saved; run the same command to resume"]
    assert (out / "sparsevd-lenet300.ckpt").exists()


def test_real_sigint_prints_one_line_and_no_traceback(isolated_data, tmp_path):
    import signal
    import time

    env = {**os.environ, "BNN_TEACH_FAST": "1", "MPLBACKEND": "Agg"}
    out = tmp_path / "run"
    # far more epochs than the test waits for: the run must still be going when the signal comes. The child
    # gets the default SIGINT handler even where this test runs in the background (a shell's `&` ignores it).
    proc = subprocess.Popen([sys.executable, "-m", "bnn_teach.cli", "reproduce", "sparsevd-lenet300",
                             "--epochs", "100000", "--out", str(out), "--no-progress"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not (out / "sparsevd-lenet300.ckpt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave the run behind
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert re.search(r"stopped after epoch \d+ \(sparsevd-lenet300\); the checkpoint is saved; run the same command "
                     r"to resume", last), err


def test_version_and_reproduce_help_describe_things(capsys):
    import bnn_teach

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"bnn-teach {bnn_teach.__version__} (torch ")
    assert cli.main(["reproduce", "--help"]) == 0
    text = capsys.readouterr().out
    for name in reproduce.EXPERIMENTS:
        line = next(line for line in text.splitlines() if line.strip().startswith(name + " "))
        assert reproduce.describe(name) in line and len(reproduce.describe(name)) > 30


@pytest.mark.parametrize("argv, torch", [(["grade", "scores", "--root", "."], False), (["hub", "--help"], False),
                                         (["lab", "--help"], False), (["grade", "--help"], False),
                                         (["reproduce", "--help"], True)])
def test_grading_hub_and_lab_commands_start_without_torch(argv, torch, tmp_path):
    """Only reproduce, check and the notebooks need torch: the instructor's commands and `make lab` start
    without importing it (about a second on a laptop); reproduce shows that the check can tell."""
    code = ("import sys\nfrom bnn_teach import cli\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch')\n")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.stdout.strip().endswith("torch imported" if torch else "no torch"), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
