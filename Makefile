# The two commands of the README:
#   make lab    set everything up, check it, and open the course in JupyterLab
#   make test   set everything up and run the whole test suite
# Both create .venv on first use and are safe to run again (setup is skipped when up to date).

PYTHON     ?= python3
VENV       ?= .venv
# torch: on Linux torch==2.13.0 from PyTorch's CPU wheel index (a CPU build, ~200 MB, not the multi-GB CUDA
# build an ordinary `pip install torch` gives), and from the default registry when that index cannot be reached
# (tools/install_torch.py tries them in that order). Elsewhere (macOS) the newest torch the platform has in the
# tested range, 2.2 (an Intel Mac's newest) to 2.13.0. On a CUDA box: make setup TORCH_BUILD=cuda, which installs
# the registry's (CUDA) build and replaces a CPU build already installed. TORCH_SPEC=... installs another torch
# (without the CPU index); TORCH_INDEX= (empty) skips the index. Setup keeps an installed torch that satisfies
# TORCH_SPEC, and pip keeps it when it installs the rest ($(VENV)/constraints.txt).
UNAME      := $(shell uname -s)
ifeq ($(UNAME),Linux)
TORCH_SPEC ?= torch==2.13.0
else
TORCH_SPEC ?= torch>=2.2,<=2.13.0
endif
TORCH_BUILD ?= cpu
TORCH_INDEX ?= $(if $(filter command line environment,$(origin TORCH_SPEC)),,$(if $(filter cpu,$(TORCH_BUILD)),$(if $(filter Linux,$(UNAME)),https://download.pytorch.org/whl/cpu,),))
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.bnn_teach-installed
# nbgrader calls `alembic` through the shell, so the environment's bin/ goes first on PATH.
RUN        := PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

.PHONY: setup lab test test-torch-lowest check clean peers notebooks site hub hub-setup

ENSURE_TORCH = $(PYTHON) tools/install_torch.py --ensure --python $(PY) --spec "$(TORCH_SPEC)" --index "$(TORCH_INDEX)" --build $(if $(filter cuda,$(TORCH_BUILD)),cuda,any) --constraints $(VENV)/constraints.txt

# Every time: a TORCH_SPEC or TORCH_BUILD given now is honoured in an environment set up before (a no-op otherwise).
setup: $(STAMP)
	@$(ENSURE_TORCH) >> $(SETUP_LOG) 2>&1 || { tail -n 25 $(SETUP_LOG); echo "make: installing torch failed; the whole log: $(SETUP_LOG)"; exit 1; }

# Quiet unless it fails: pip's output goes to $(VENV)/setup.log, and its last lines are shown on a failure.
SETUP_LOG  := $(VENV)/setup.log
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "make: installing the course's packages into $(VENV) (a few minutes the first time; log: $(SETUP_LOG))"
	@$(ENSURE_TORCH) > $(SETUP_LOG) 2>&1 || { tail -n 25 $(SETUP_LOG); echo "make: installing torch failed; the whole log: $(SETUP_LOG)"; exit 1; }
	@$(PY) -m pip install -c $(VENV)/constraints.txt -e ".[course,dev]" >> $(SETUP_LOG) 2>&1 || { tail -n 25 $(SETUP_LOG); echo "make: pip install failed; the whole log: $(SETUP_LOG)"; exit 1; }
	@touch $(STAMP)
	@echo "make: set up ($(VENV))"

check: setup
	$(RUN) $(VENV)/bin/bnn-teach check

# Each lectures/*.py and solutions/*.py (jupytext py:percent) writes the .ipynb beside it, without outputs.
notebooks: setup
	$(RUN) $(VENV)/bin/bnn-teach notebooks

lab: setup
	@$(RUN) $(VENV)/bin/bnn-teach check --course
	@$(RUN) $(VENV)/bin/bnn-teach lab $(LAB_ARGS)

# A class on JupyterHub (INSTRUCTORS.md: "A class on JupyterHub"), as root: JupyterHub (the [hub] extra) and
# configurable-http-proxy (npm, Node from the distribution: apt-get install nodejs npm) into $(VENV)/node, then
# `make hub` runs `bnn-teach hub start $(HUB_ARGS)` (create the accounts first: bnn-teach hub add-instructor/add-students).
PROXY := $(VENV)/node/node_modules/.bin/configurable-http-proxy
hub-setup: setup
	@$(PY) -m pip install -c $(VENV)/constraints.txt -e ".[course,hub]" >> $(SETUP_LOG) 2>&1 || { tail -n 25 $(SETUP_LOG); echo "make: pip install failed; the whole log: $(SETUP_LOG)"; exit 1; }
	@test -x $(PROXY) || { command -v npm >/dev/null || { echo "make: npm is missing (Debian: apt-get install nodejs npm)"; exit 1; }; \
	  npm install --prefix $(VENV)/node configurable-http-proxy >> $(SETUP_LOG) 2>&1 || { tail -n 25 $(SETUP_LOG); echo "make: npm install configurable-http-proxy failed"; exit 1; }; }
	@echo "make: JupyterHub and configurable-http-proxy ready ($(PROXY))"

hub: hub-setup
	$(RUN) $(VENV)/bin/bnn-teach hub start $(HUB_ARGS)

# The course to read on the web: every lecture executed (FAST mode; SITE_ARGS=--full with the data) with its
# figures, as HTML in build/site/ (open build/site/index.html).
site: setup
	$(RUN) $(VENV)/bin/bnn-teach site $(SITE_ARGS)

# The linter (ruff, settings in pyproject.toml) and then the tests; both must pass.
# The tests run in parallel (pytest-xdist), one worker per core, at most 8; TEST_WORKERS=0 runs them in one
# process. --dist load --maxschedchunk 1: each worker holds at most two tests, and an idle one takes the next in
# order; tests/conftest.py orders the long ones first (without the chunk limit a worker gets a quarter of its
# share at the start: the long tests would all go to the first worker).
# pytest exits 5 when it collected no tests; that is not a failure of the build.
TEST_WORKERS ?= auto
test: setup
	$(RUN) $(VENV)/bin/ruff check .; lint=$$?; \
	$(RUN) $(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses 8 --dist load --maxschedchunk 1 $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; \
	if [ $$lint -ne 0 ]; then echo "make test: ruff found the problems listed above"; rc=1; fi; exit $$rc

# The library's tests on the lowest torch of the tested range (CI runs it after make test): a second environment,
# $(LOWEST_VENV), with torch 2.2.2 (numpy<2 beside it) and the library with pytest; the course's tools are not
# needed there, nor full MNIST (the embedded subset is used). On Linux torch 2.2.2 comes from the CPU index, else
# from the registry (a CUDA build, ~2.5 GB).
LOWEST_VENV  ?= .venv-torch-lowest
LOWEST_TORCH ?= torch==2.2.2
LOWEST_LOG   := $(LOWEST_VENV)/setup.log
LIBRARY_TESTS ?= tests/test_kl.py tests/test_layers.py tests/test_vi.py tests/test_sgmcmc.py \
	tests/test_predict_metrics.py tests/test_sparsity.py tests/test_train.py tests/test_utils.py \
	tests/test_selfcheck.py tests/test_doctests.py
test-torch-lowest:
	@test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	@echo "make: $(LOWEST_TORCH) and the library into $(LOWEST_VENV) (log: $(LOWEST_LOG))"
	@$(PYTHON) tools/install_torch.py --ensure --python $(LOWEST_VENV)/bin/python --spec "$(LOWEST_TORCH)" --index "$(TORCH_INDEX)" --constraints $(LOWEST_VENV)/constraints.txt > $(LOWEST_LOG) 2>&1 || { tail -n 25 $(LOWEST_LOG); echo "make: installing $(LOWEST_TORCH) failed"; exit 1; }
	@$(LOWEST_VENV)/bin/python -m pip install -c $(LOWEST_VENV)/constraints.txt -e . pytest pytest-xdist scipy scikit-learn >> $(LOWEST_LOG) 2>&1 || { tail -n 25 $(LOWEST_LOG); echo "make: pip install failed"; exit 1; }
	@$(LOWEST_VENV)/bin/python -c "import torch, numpy; print(f'make: testing the library on torch {torch.__version__}, numpy {numpy.__version__}')"
	env -u BNN_TEACH_DATA $(LOWEST_VENV)/bin/python -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --maxprocesses 8 --dist load --maxschedchunk 1 $(LIBRARY_TESTS)

# The peer libraries of benchmarks/peers.py (the [peers] extra), without their declared dependencies:
# unpinned, those pull a CUDA torch, torchvision and tensorboard in place of the CPU torch. None of
# the three imports torchvision or tensorboard when its layers are imported; what they do import
# (numpy) is already here. The check fails if torch changed.
PEERS_SPEC ?= bayesian-torch==0.5.0 torchbnn==1.2 blitz-bayesian-pytorch==0.2.8

peers: setup
	@before=$$($(PY) -c "import torch; print(torch.__version__)"); \
	$(PY) -m pip install --no-deps $(PEERS_SPEC) && \
	after=$$($(PY) -c "import torch; print(torch.__version__)") && \
	$(PY) -c "import bayesian_torch.layers, torchbnn, blitz.modules" && \
	echo "peers installed; torch $$before -> $$after" && test "$$before" = "$$after"

clean:
	rm -rf $(VENV) $(LOWEST_VENV) .pytest_cache build *.egg-info
