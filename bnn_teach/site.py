"""The course to read on the web: a static HTML site of the executed lectures (Sphinx with MyST-NB).

``bnn-teach site`` (``make site``) runs every lecture (FAST mode unless ``--full``) with figures, then builds
``build/site/index.html``: a front page listing L00–L08 with each lecture's question, and one page per lecture
with its text, code, outputs and figures. The pages are made from executed notebooks; nothing is executed
again while the site is built (``nb_execution_mode = "off"``). Needs the ``[site]`` extra (sphinx, myst-nb).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["build_site", "lecture_title"]

_CONF = '''\
project = "bnn_teach: Bayesian deep learning"
extensions = ["myst_nb"]
nb_execution_mode = "off"       # the notebooks arrive executed
nb_output_stderr = "remove"     # progress bars and warnings are not part of the text
myst_enable_extensions = ["dollarmath", "amsmath"]
html_title = "Bayesian deep learning with bnn_teach"
html_theme = "alabaster"
html_theme_options = {"page_width": "1100px", "sidebar_width": "240px"}
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header", "misc.highlighting_failure"]
'''


def lecture_title(notebook) -> str:
    """The lecture's title: the first ``# `` heading of its first markdown cell."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "untitled"


def _index(pages: list[tuple[str, str]], fast: bool) -> str:
    rows = "\n".join(f"- [{title}]({name}.ipynb)" for name, title in pages)
    mode = ("FAST mode (small data and few epochs: the same code, smaller numbers)" if fast
            else "full mode (the full data and the epochs of the lectures)")
    return (f"# Bayesian deep learning with bnn_teach\n\nThe course's lectures, executed in {mode}, with "
            f"their figures. Run them yourself with `make lab`.\n\n{rows}\n\n"
            "```{toctree}\n:hidden:\n:maxdepth: 1\n\n" + "\n".join(f"{name}.ipynb" for name, _ in pages)
            + "\n```\n")


def build_site(out, lectures=None, executed=None, fast: bool = True, timeout: int = 600,
               progress: bool = True) -> Path:
    """Build the site into ``out`` and return its ``index.html``. ``lectures``: the lecture sources (default:
    every ``lectures/L*.py``); ``executed``: a folder of already executed notebooks (``<name>.ipynb``) to
    use instead of running them (a lecture not there is run). Raises RuntimeError naming any lecture that
    failed to run (its page is not made from a broken notebook) or Sphinx's first error."""
    import nbformat

    from bnn_teach import notebooks

    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError as missing:
        raise RuntimeError(f"the site needs sphinx and myst-nb ({missing.name} is missing): "
                           "pip install 'bnn_teach[site]'") from None
    sources = [Path(p) for p in (lectures or notebooks.sources(["lectures"]))]
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="bnn-teach-site-") as tmp:
        project = Path(tmp) / "src"
        project.mkdir()
        have = {p.stem: p for p in Path(executed).glob("*.ipynb")} if executed else {}
        missing = [s for s in sources if s.stem not in have]
        if missing:
            results = notebooks.run_notebooks(missing, fast=fast, timeout=timeout, progress=progress,
                                              save=Path(tmp) / "executed")
            failed = [r for r in results if r.status != "ok"]
            if failed:
                raise RuntimeError("lectures failed to run, no site made: "
                                   + "; ".join(f"{r.path.name}: {r.error.splitlines()[-1] if r.error else ''}"
                                               for r in failed))
            have.update({r.path.stem: Path(tmp) / "executed" / f"{r.path.stem}.ipynb" for r in results})
        pages = []
        for source in sources:
            shutil.copy2(have[source.stem], project / f"{source.stem}.ipynb")
            pages.append((source.stem, lecture_title(nbformat.read(have[source.stem], as_version=4))))
        (project / "conf.py").write_text(_CONF)
        (project / "index.md").write_text(_index(pages, fast))
        shutil.rmtree(out, ignore_errors=True)
        done = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", str(project), str(out)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "ERROR" in line or "Error" in line]
            raise RuntimeError(f"sphinx could not build the site: {(errors or done.stderr.splitlines() or ['?'])[0]}")
    return out / "index.html"
