"""The ``bnn-teach`` command: ``check`` (is this machine ready for the course?), ``lab``, ``reproduce``, ``gallery``,
``notebooks``, ``run``, ``grade``.

Every error is one line on stderr that says what to do; the exit status is 0 (done), 1 (a failure),
2 (a usage error: the command cannot work as given) or 130 (stopped by Ctrl-C).
"""
from __future__ import annotations

import argparse
import importlib
import math
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from bnn_teach._checks import RunInterrupted, UsageError, env_flag, folder_problem  # torch-free

__all__ = ["main"]

REQUIRED = ("torch", "numpy", "matplotlib", "tqdm", "ipywidgets")
COURSE = ("jupyterlab", "nbgrader", "jupytext", "nbstripout")


def _version(module_name: str):
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - any import failure means "missing"
        return None
    return getattr(module, "__version__", "installed")


def _cache_writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


def _online(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    from bnn_teach.data.mnist import _mirrors, _offline

    if _offline():
        return False
    for url in _mirrors():
        parsed = urlparse(url)
        try:
            with socket.create_connection(
                (parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)), timeout=timeout
            ):
                return True
        except OSError:
            continue
    return False


def _verify_mnist() -> str | None:
    """Read every MNIST file that loading would use (size, IDX header and MD5 of the content);
    the problem in one line, or None when both splits are sound."""
    from bnn_teach.data.mnist import MNISTFileError, _find_split, read_idx

    for split in ("train", "test"):
        found = _find_split(None, split)
        if found is None:
            continue
        try:
            images, labels = (read_idx(path) for path in found)
        except MNISTFileError as err:
            return " ".join(str(err).split())
        if len(images) != len(labels):
            return f"{found[0]} holds {len(images)} images but {found[1]} holds {len(labels)} labels"
    return None


def check(course: bool = False, download: bool = False) -> int:
    """Print versions, device and data source; return 0 when ready, 1 when a required piece is missing.
    ``download``: fetch full MNIST into the cache first when it is not found and this machine is online
    (Colab's setup cell asks for it); offline, the embedded subset stays the source."""
    from bnn_teach.grading.nbgrader_main import without_iri_checker

    without_iri_checker()  # importing jupyterlab for its version then costs 2 s less (of about 6 on a slow core)
    missing = []
    print(f"python       {platform.python_version()} ({sys.executable})")
    for name in REQUIRED + COURSE:
        version = _version(name)
        required = name in REQUIRED or course
        if version is None and required:
            missing.append(name)
        label = version or ("MISSING" if required else "not installed (pip install 'bnn_teach[course]')")
        print(f"{name:<12} {label}")
    if "torch" in missing:
        print("\nbnn-teach check: torch is missing. Install it first, e.g. pip install torch", file=sys.stderr)
        return 1
    from bnn_teach.data.mnist import cache_dir, mnist_source
    from bnn_teach.utils import get_device

    device = get_device()
    import torch

    if download and mnist_source() == "embedded" and _online():
        from bnn_teach.data.mnist import _download_split

        for split in ("train", "test"):
            try:
                _download_split(split, None)
            except OSError as err:  # ConnectionError included
                print(f"MNIST        {split} download failed ({' '.join(str(err).split())[:200]})")

    if device.type == "cuda":
        detail = f" ({torch.cuda.get_device_name(device)})"
    else:
        detail = f" ({torch.get_num_threads()} threads)"
    print(f"device       {device}{detail}")
    from bnn_teach.data.mnist import data_problems

    source = mnist_source()
    broken = _verify_mnist() if source != "embedded" or mnist_source(split="test") != "embedded" else None
    broken = broken or "; ".join(data_problems()) or None
    if broken:
        print(f"MNIST        BROKEN: {broken}")
    elif source != "embedded":
        print(f"MNIST        full set at {source} (both splits read and checksummed)")
    elif _online():
        print(f"MNIST        not found locally; downloads to {cache_dir()} on first use")
    else:
        print("MNIST        embedded subset (10,000 train / 2,000 test images); offline and no full set found. "
              "Set BNN_TEACH_DATA to a folder with MNIST/raw/*.gz for the full set.")
    writable = _cache_writable(cache_dir())
    print(f"cache        {cache_dir()} ({'writable' if writable else 'NOT writable'})")
    if broken:
        print(f"\nbnn-teach check: MNIST is not usable: {broken}", file=sys.stderr)
        return 1
    if missing:
        extra = " 'bnn_teach[course]'" if set(missing) & set(COURSE) else ""
        print(f"\nbnn-teach check: missing {', '.join(missing)}. Run `make setup` or pip install -e .{extra}",
              file=sys.stderr)
        return 1
    print("\nready.")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (a fraction of --lr), got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``bnn-teach`` parser. ``command``: the one about to run, when known; the list of experiments of
    ``reproduce`` (which imports torch) is then built only for ``reproduce`` itself, so that the grading, hub
    and lab commands start without torch."""
    from importlib.metadata import version

    from bnn_teach import __version__

    parser = _Parser(prog="bnn-teach", description="Bayesian deep learning, taught.")
    parser.add_argument("--version", action="version",
                        version=f"bnn-teach {__version__} (torch {version('torch')}, "
                                f"Python {platform.python_version()})")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_check = sub.add_parser("check", help="print versions, device and data source; fail if something is missing")
    p_check.add_argument("--course", action="store_true",
                         help="also require JupyterLab, nbgrader, jupytext, nbstripout")
    p_check.add_argument("--download", action="store_true",
                         help="download full MNIST into the cache when it is missing and the machine is online")
    p_lab = sub.add_parser("lab", help="start JupyterLab at the course's root on 127.0.0.1 and print its URL")
    p_lab.add_argument("--port", type=int, default=None, help="port (default: 8888 when free, else a free one)")
    p_lab.add_argument("--no-browser", action="store_true", help="do not open a browser; open the printed URL")
    if command in (None, "reproduce"):
        _add_reproduce_parser(sub)
    else:
        sub.add_parser("reproduce", help=REPRODUCE_HELP)
    p_gallery = sub.add_parser("gallery", help="render every bnn_teach.viz figure to PNG files in a folder")
    p_gallery.add_argument("out_dir")
    targets = "lectures, solutions, folders or notebook sources (default: lectures and solutions)"
    p_notebooks = sub.add_parser("notebooks", help="write each .ipynb from its py:percent source (make notebooks)")
    p_notebooks.add_argument("targets", nargs="*", help=targets)
    p_notebooks.add_argument("--check", action="store_true",
                             help="write nothing; fail if a .ipynb is missing or differs from its source")
    p_run = sub.add_parser("run", help="execute notebooks headless and print their times and status")
    p_run.add_argument("targets", nargs="*", help=targets)
    p_run.add_argument("--fast", action="store_true", help="BNN_TEACH_FAST=1: small data and epochs, same code")
    p_run.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_run.add_argument("--check-answers", action="store_true",
                       help="also run each check-yourself cell with its right answer and its typical mistakes")
    p_run.add_argument("--save", metavar="DIR", help="write each executed notebook, outputs and figures, to DIR")
    p_site = sub.add_parser("site", help="the executed lectures as a static web site (needs the [site] extra)")
    p_site.add_argument("--out", default="build/site", help="the site's folder (default build/site)")
    p_site.add_argument("--full", action="store_true", help="run the lectures in full mode (default: FAST)")
    p_site.add_argument("--executed", metavar="DIR", help="use the executed notebooks in DIR (bnn-teach run --save)")
    p_site.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")
    _add_grade_parser(sub)
    _add_hub_parser(sub)
    return parser


def _add_hub_parser(sub):
    p_hub = sub.add_parser("hub", help="the course on a JupyterHub for a class (as root): accounts, then start")
    actions = p_hub.add_subparsers(dest="hub_action", required=True, metavar="ACTION")
    p = actions.add_parser("add-instructor", help="create the instructor's account with a copy of the course in "
                                                  "~NAME/bnn_teach")
    p.add_argument("name")
    p = actions.add_parser("add-students", help="create students' accounts in the course's Unix group (then set "
                                                "their passwords with passwd)")
    p.add_argument("names", nargs="+")
    p.add_argument("--group", default="bnn_teach", help="the course's Unix group (default bnn_teach)")
    p = actions.add_parser("start", help="run the hub until Ctrl-C and print where to log in")
    p.add_argument("--instructor", default="instructor", help="the instructor's account (default instructor)")
    p.add_argument("--group", default="bnn_teach", help="the students' Unix group (default bnn_teach)")
    p.add_argument("--state", default="/srv/bnn_teach_hub",
                   help="the hub's database and nbgrader's exchange (default /srv/bnn_teach_hub)")
    p.add_argument("--ip", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1; 0.0.0.0 for a class, behind HTTPS)")
    p.add_argument("--port", type=int, default=8000, help="the port (default 8000)")


REPRODUCE_HELP = "re-run a paper's experiment and print it beside the paper's row"


def _add_reproduce_parser(sub):
    from bnn_teach.reproduce import EXPERIMENTS, describe

    width = max(map(len, EXPERIMENTS))
    listing = "\n".join(f"  {name:<{width}}  {describe(name)}" for name in EXPERIMENTS)
    p = sub.add_parser(
        "reproduce", help=REPRODUCE_HELP,
        description="Re-run a paper's experiment and print our row beside the paper's. Writes results.json, "
                    "history.json and figure.png in --out and resumes an interrupted run from its checkpoint.",
        epilog=f"experiments:\n{listing}\n\nA folder holds one run: asking it for other settings is refused "
               "(use --restart or another --out).\nBNN_TEACH_FAST=1 makes a smoke run (a few images, 1 epoch).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "experiment",
        choices=list(EXPERIMENTS),
        metavar="EXPERIMENT",
        help="one of: " + ", ".join(EXPERIMENTS) + " (listed below)",
    )
    p.add_argument("--epochs", type=_positive_int, default=None, help="training epochs (default: the paper's recipe)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--out", default=None, help="output folder (default: runs/EXPERIMENT)")
    p.add_argument("--restart", action="store_true", help="start over: delete the folder's checkpoints and results")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="SparseVD experiments: Adam's initial learning rate (default 1e-3)")
    p.add_argument("--train-size", type=_positive_int, default=None,
                   help="MNIST experiments: train on the first N training images "
                        "(e.g. 50000, holding out the last 10,000)")
    p.add_argument("--lr-floor", type=_fraction, default=None,
                   help="SparseVD experiments: decay the learning rate linearly to this fraction of --lr "
                        "(default 0, the paper's code)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="distributed: run the posterior server with 1 and N workers (default 1, 2, 4 and 8)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--record", action="store_true",
                   help="then copy the run's results and history into the package, where the lectures load "
                        "them (bnn_teach/recorded, checksummed)")
    return p


def _add_grade_parser(sub):
    p_grade = sub.add_parser("grade", help="nbgrader with the course's config: release, autograde, feedback, "
                                           "scores, and the students' check before handing in")
    actions = p_grade.add_subparsers(dest="action", required=True, metavar="ACTION")
    root = dict(default=None, help="the course root (default: the course that holds the working directory)")
    p = actions.add_parser("release", help="regenerate solutions/ID/ID.ipynb and the student release assignments/ID/")
    p.add_argument("assignment")
    p.add_argument("--root", **root)
    p = actions.add_parser("autograde", help="grade course/submitted/STUDENT/ID/, each submission in isolation")
    p.add_argument("assignment")
    p.add_argument("--student", action="append", help="only this student (repeatable)")
    p.add_argument("--jobs", type=int, default=None,
                   help="submissions graded side by side (default: the CPU cores); each kernel uses one thread")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds for one whole submission, a backstop behind each cell's limits (default 3600)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--root", **root)
    p = actions.add_parser("feedback", help="HTML feedback for each graded student under course/feedback/")
    p.add_argument("assignment")
    p.add_argument("--root", **root)
    p = actions.add_parser("scores", help="a table of every student's scores; optionally a CSV file and a histogram")
    p.add_argument("--csv", default=None, help="also write the scores to this CSV file")
    p.add_argument("--plot", default=None, help="also draw a histogram per assignment into this PNG file")
    p.add_argument("--root", **root)
    p = actions.add_parser("publish", help="write the students' repository into OUT: lectures, releases, library, "
                                           "syllabus, a README for students; no solutions, tests or guide")
    p.add_argument("out")
    p.add_argument("--root", **root)
    p = actions.add_parser("hand-out", help="put the release assignments/ID/ into nbgrader's exchange, where "
                                            "students fetch it (on the course's hub)")
    p.add_argument("assignment")
    p.add_argument("--root", **root)
    p = actions.add_parser("collect", help="copy each student's submission from the exchange into "
                                           "course/submitted/STUDENT/ID/")
    p.add_argument("assignment")
    p.add_argument("--root", **root)
    p = actions.add_parser("hand-back", help="put each student's feedback page into the exchange, where only that "
                                             "student fetches it (after feedback)")
    p.add_argument("assignment")
    p.add_argument("--root", **root)
    p = actions.add_parser("check", help="before handing in: same assignment, no test cell deleted, duplicated or "
                                         "edited, and the notebook runs top to bottom")
    p.add_argument("notebook")
    p.add_argument("--no-run", action="store_true", help="check the cells only, do not run the notebook")
    p.add_argument("--root", **root)


def _grade(args) -> int:
    from bnn_teach import grading
    try:
        if args.action == "release":
            print(f"released {grading.release(args.assignment, root=args.root)}")
            return 0
        if args.action == "autograde":
            if args.jobs is not None and args.jobs < 1:
                raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
            from bnn_teach.grading.sandbox import unavailable

            if unavailable():
                print(f"{unavailable()}: grading without it; each result is marked unsandboxed", file=sys.stderr)
            results = grading.autograde(args.assignment, students=args.student, root=args.root,
                                        timeout=args.timeout, progress=not args.no_progress, jobs=args.jobs)
            width = max(len(r.student) for r in results)
            for r in results:
                print(f"{r.student:<{width}}  {r.score:g}/{r.max_score:g}  {r.status}"
                      + "".join(f"\n  {p}" for p in r.problems))
            failed = sum(r.status != "ok" for r in results)
            print(f"{len(results)} graded, {failed} with problems" if failed else f"{len(results)} graded, all ok")
            by_hand = sum(results[0].manual.values()) if results else 0
            if by_hand:
                print(f"and {by_hand:g} points a student of written answers ({', '.join(results[0].manual)}) to grade "
                      "by hand in the Formgrader (make lab, then Nbgrader > Formgrader)")
            return 0
        if args.action == "hand-out":
            grading.hand_out(args.assignment, root=args.root)
            print(f"{args.assignment} is in the exchange: students fetch it from the Assignments tab")
            return 0
        if args.action == "collect":
            students = grading.collect(args.assignment, root=args.root)
            print(f"{len(students)} submissions of {args.assignment} in course/submitted/: {', '.join(students)}"
                  if students else f"no submission of {args.assignment} in the exchange yet")
            return 0
        if args.action == "hand-back":
            students = grading.hand_back(args.assignment, root=args.root)
            print(f"feedback for {args.assignment} handed back to {len(students)} students: {', '.join(students)}")
            return 0
        if args.action == "feedback":
            print(f"feedback in {grading.feedback(args.assignment, root=args.root)}/")
            return 0
        if args.action == "publish":
            from bnn_teach.grading.publish import publish

            try:
                out = publish(args.out, root=args.root)
            except (FileExistsError, ValueError) as err:
                raise UsageError(str(err)) from None
            print(f"the students' repository is in {out}/ (git init there, commit and push it for them)")
            return 0
        if args.action == "scores":
            rows = grading.scores(root=args.root)
            print(grading.format_scores(rows) if rows else "no graded submissions yet")
            if args.csv:
                print(f"wrote {grading.write_scores_csv(rows, args.csv)}")
            if args.plot:
                print(f"wrote {grading.plot_scores(rows, args.plot)}")
            return 0
        problems = grading.check_submission(args.notebook, root=args.root, run=not args.no_run)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{Path(args.notebook).name}: ready to hand in")
    return 1 if problems else 0


def _hub(args) -> int:
    from bnn_teach import hub
    try:
        if args.hub_action == "add-instructor":
            course = hub.add_instructor(args.name)
            print(f"{args.name}: account ready, the course in {course}; set a password with `passwd {args.name}`")
            return 0
        if args.hub_action == "add-students":
            hub.add_students(args.names, group=args.group)
            print(f"{len(args.names)} students in the group {args.group}; set their passwords with passwd")
            return 0
        if not 0 < args.port < 65536:
            raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
        return hub.main(state=args.state, instructor=args.instructor, group=args.group, ip=args.ip, port=args.port)
    except hub.HubError as err:
        raise UsageError(str(err)) from None
    except subprocess.CalledProcessError as err:
        raise UsageError(f"{' '.join(err.cmd)} failed: {(err.stderr or '').strip()}") from None


def _run(args) -> int:
    if args.command == "check":
        return check(course=args.course, download=args.download)
    if args.command == "lab":
        from bnn_teach import lab

        if args.port is not None and not 0 < args.port < 65536:
            raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
        try:
            return lab.main(port=args.port, open_browser=not args.no_browser)
        except FileNotFoundError as err:
            raise UsageError(str(err)) from None
    if args.command == "hub":
        return _hub(args)
    if args.command == "reproduce":
        return _reproduce(args)
    if args.command == "gallery":
        out = Path(args.out_dir)
        if out.exists() and not out.is_dir():
            raise UsageError(f"{out} is a file; give a folder for the PNG files")
        problem = folder_problem(out)
        if problem:
            raise UsageError(f"{out}: {problem}; give a folder you can write to")
        from bnn_teach.viz.gallery import main as gallery_main

        return gallery_main([args.out_dir])
    if args.command == "site":
        from bnn_teach.site import build_site

        index = build_site(args.out, executed=args.executed, fast=not args.full, timeout=args.timeout)
        print(f"the course's site: {index}")
        return 0
    if args.command in ("notebooks", "run"):
        return _notebooks(args)
    if args.command == "grade":
        return _grade(args)
    raise UsageError(f"unknown command {args.command}")  # pragma: no cover - argparse refuses first


def _reproduce(args) -> int:
    from bnn_teach.reproduce import record, run

    out = args.out if args.out is not None else str(Path("runs") / args.experiment)
    run(args.experiment, epochs=args.epochs, device=args.device, out=out, restart=args.restart,
        progress=not args.no_progress, seed=args.seed, lr=args.lr, lr_floor=args.lr_floor,
        train_size=args.train_size, workers=args.workers)
    if args.record:
        print(f"  recorded for the lectures in {record(args.experiment, out)}/")
    return 0


def _notebooks(args) -> int:
    from bnn_teach import notebooks
    try:
        found = notebooks.sources(args.targets, notebooks=args.command == "run")
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if not found:
        print(f"bnn-teach {args.command}: no notebook sources in {', '.join(args.targets or notebooks.FOLDERS)}")
        return 0
    if args.command == "notebooks" and args.check:
        out_of_date = notebooks.stale(found)
        for path in out_of_date:
            print(f"{path} differs from its source {path.with_suffix('.py').name}")
        if out_of_date:
            print("run `make notebooks` and commit the .ipynb files", file=sys.stderr)
        return 1 if out_of_date else 0
    if args.command == "notebooks":
        for path in notebooks.sync(found):
            print(f"wrote {path}")
        return 0
    if args.timeout <= 0:
        raise UsageError(f"--timeout: must be a positive number of seconds, got {args.timeout}")
    if args.save:
        try:
            Path(args.save).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--save: cannot write to {args.save}: {err.strerror}") from None
    results = notebooks.run_notebooks(found, fast=args.fast, timeout=args.timeout, progress=not args.no_progress,
                                      check_answers=args.check_answers, save=args.save)
    print(notebooks.format_results(results))
    return 0 if all(r.status == "ok" for r in results) else 1


def main(argv=None) -> int:
    """The ``bnn-teach`` command. Returns the exit status: 0 done, 1 a failure, 2 a usage error,
    130 stopped by Ctrl-C. Every error is one line on stderr; ``BNN_TEACH_DEBUG=1`` shows tracebacks."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command=next((a for a in argv if not a.startswith("-")), None))
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed in one line
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 2)
    prog = f"bnn-teach {args.command}"
    try:
        return _run(args)
    except RunInterrupted as stop:
        print(f"{prog}: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: stopped (Ctrl-C) outside training; saved checkpoints are kept; run the same command to "
              "resume or start again", file=sys.stderr)
        return 130
    except UsageError as err:
        print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a student sees one line; BNN_TEACH_DEBUG=1 for the traceback
        if env_flag("BNN_TEACH_DEBUG"):
            raise
        print(f"{prog}: failed: {type(err).__name__}: {_one_line(err)} (BNN_TEACH_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
