# The README's quick start: `make run` (the main job) and `make test` (the tests).
# Each sets itself up on a fresh clone: a virtual environment with the CPU build of
# torch 2.13.0 (pinned: a bare `torch` would pull several GB of CUDA packages),
# the package with the extras its tests use, and Debian's Fashion-MNIST where apt is usable.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
SUITE  ?= fashion-mnist-91
ARGS   ?=
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup setup-test data browser run test gate perf reports docs

# `make run` installs what the main job needs: torch (where none imports) and the package. `make test`
# adds every extra the tests use: DALI (a 199 MB wheel), Ray with its Client and submitit (80 MB),
# triton, Optuna (bench tune), pytest. `--no-compile`: pip's byte-compiling of everything it installs took half of the
# 70 s set-up here (three calls, compiled: 70 s; one, not compiled: 37 s). Python compiles what is
# imported instead, once, into the venv: for that the recipes below run with PYTHONDONTWRITEBYTECODE
# unset, which this CI machine sets, and which with --no-compile alone made every process recompile
# torch (imports 3 s -> 6 s; tests 337 -> 469 s).
unexport PYTHONDONTWRITEBYTECODE
EXTRAS := test,dali,cluster,tune
TEST_STAMP := $(VENV)/.test-extras
# the Makefile too: a venv set up by an older Makefile gets what this one installs
$(BIN)/bench: pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile $$($(BIN)/python -c "import torch" 2>/dev/null || echo "$(TORCH)") -e .
	touch $@

$(TEST_STAMP): $(BIN)/bench
	$(BIN)/pip install -q --no-compile -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/bench

setup-test: $(TEST_STAMP)

# Fashion-MNIST comes from Debian's package when apt can install it; otherwise bench
# downloads it from the official URL on first use (and says where to put the files).
data:
	@test -d $(FMNIST) || (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1) \
	  || echo "note: could not install dataset-fashion-mnist with apt; bench will try to download it")

# Headless Chromium renders the comparison report in tests/test_report_browser.py (Debian's
# `chromium`; its recommends bring fonts-liberation). Without it that test is skipped, saying so.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) \
	  || echo "note: could not install chromium with apt; the browser test will be skipped")

run: setup data
	$(BIN)/bench run $(SUITE) $(ARGS)

test: setup-test data browser
	# the functional tests in 2 worker processes of one thread each (one per core of the 2-core CI
	# machine; a test file stays in one worker, so a file's shared fixtures are made once)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile tests -m "not long" \
	  --ignore=tests/perf --ignore=tests/test_ray_cluster.py
	# the speed gate (tests/perf, the chosen policy against a plain step) alone on the machine, all threads
	$(BIN)/python -m pytest -q tests/perf -m "not long"
	# the multi-node Ray tests after the others, never beside them: tried among the xdist tests, the
	# node-loss test saw no retry, and a local sweep joined their cluster (a bench bug, fixed since:
	# a local Ray sweep now starts its own, tests/test_ray_cluster.py)
	$(BIN)/python -m pytest -q tests/test_ray_cluster.py -m "not long"
	$(MAKE) --no-print-directory gate
	$(MAKE) --no-print-directory docs

# The regression gate: a fresh fashion-mnist-smoke invocation against the committed baseline.
# The time floor is wide (50%) because the baseline was measured on another day's machine;
# accuracy is compared exactly (fp32). Fine speed gates are ratios, in tests/perf.
# A busy machine (other jobs on the CI runner) makes the time inconclusive, not a regression:
# check reruns the smoke suite up to twice while it is, and a final inconclusive (exit 5) is not a
# failure of CI, which says why; a regression (exit 1) or anything else still fails.
GATE_DIR := .gate-results
gate: setup data
	rm -rf $(GATE_DIR)
	$(BIN)/bench run fashion-mnist-smoke --device cpu --results $(GATE_DIR)
	$(BIN)/bench check results/baselines $(GATE_DIR) --time-floor 0.5 --rerun 2; code=$$?; \
	  if [ $$code -eq 5 ]; then echo "gate: time inconclusive (the machine was busy: see the load above); accuracy and status were judged; not a failure"; \
	  else exit $$code; fi

perf: setup-test data
	$(BIN)/python -m pytest -q tests/perf --benchmark-only

# Every committed report (leaderboard, compare/, each study's report and figures) rewritten from the
# committed result files; trains nothing and needs no data set. tests/test_reports_fresh.py fails
# while a committed report differs from what this writes.
reports: setup
	$(BIN)/python scripts/regenerate_reports.py --results results

# The documentation site (mkdocs.yml, docs/), built with --strict: a broken link, a missing anchor or a
# page left out of the navigation fails. The site goes to .site/ (ignored by git); `mkdocs serve` to read.
docs: setup-test  # mkdocs and its theme are in the test extra
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir .site
