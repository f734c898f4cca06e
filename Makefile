# The two commands of the README: `make demo` and `make test`. Both set up the
# project's virtual environment first (idempotent; a second run is quick).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The stamp changes whenever a requirements file or setup.py changes, so an edit
# re-runs the install and an unchanged tree skips it.
REQ_FILES := requirements/torch.txt requirements/build.txt requirements/mminstall.txt \
             requirements/runtime.txt requirements/tests.txt requirements/constraints.txt \
             requirements/lock.txt setup.py
# LOCKED=1 (the default): every install is held to requirements/lock.txt, the
# exact set the tests passed with, and the result is checked against it.
# `make lock` sets up a scratch environment with LOCKED=0 (newest versions the
# loose requirements admit) and writes its set to the lock.
LOCKED ?= 1
ifeq ($(LOCKED),1)
PIN := -c requirements/constraints.txt -c requirements/lock.txt
SETUPTOOLS := setuptools==69.5.1
else
PIN := -c requirements/constraints.txt
SETUPTOOLS := setuptools<70
endif
STAMP := $(VENV)/.mmstructkd-setup-$(shell cat $(REQ_FILES) 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup demo test data clean lock

setup: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned: any unpinned spec would pull several GB of CUDA packages.
	$(PIP) install $(PIN) -r requirements/torch.txt
	$(PIP) install $(PIN) -r requirements/build.txt
	@# mmcv 2.1.0 with its C++ ops (mmseg imports mmcv.ops; mmdet needs nms/RoIAlign).
	@# pip caches the built wheel, so this is minutes only the first time on a machine.
	$(PIP) install $(PIN) mmengine==0.10.7
	MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install $(PIN) --no-build-isolation mmcv==2.1.0
	$(PIP) install $(PIN) -r requirements/mminstall.txt -r requirements/runtime.txt -r requirements/tests.txt
	@# Last, because resolving torch's metadata (setuptools>=77) upgrades it:
	@# pkg_resources (mmcv, mmengine's `pkg::` configs) needs setuptools<70.
	$(PIP) install "$(SETUPTOOLS)"
	$(PIP) install $(PIN) --no-build-isolation --no-deps -e .
	@if [ "$(LOCKED)" = 1 ]; then $(PY) tools/lock_requirements.py check; fi
	@rm -f $(VENV)/.mmstructkd-setup-*
	@touch $@

data: setup
	$(PY) tools/make_toy_data.py

demo: setup
	$(PY) tools/demo.py

# -n auto (pytest-xdist): one test process per core, each on one thread
# (OMP_NUM_THREADS=1, inherited by the tools the tests launch): the tests'
# thin models use one thread per process better than two threads in one
# process (11.5 vs 19.4 minutes on the 2-core machine). --dist worksteal: a
# worker that runs out of tests takes some of the other's, so the run does
# not end on one worker with a queue of long tests. --durations: the
# slowest tests are named at the end of every run, so the suite's time budget
# can be kept without a separate profiling run.
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -q -n auto --dist worksteal --durations=25

# Refresh requirements/lock.txt from a scratch environment (.venv-lock), then
# run `make test`: the changed lock re-runs `make setup` in .venv.
lock:
	rm -rf .venv-lock
	$(MAKE) setup LOCKED=0 VENV=.venv-lock
	.venv-lock/bin/python tools/lock_requirements.py write

clean:
	rm -rf work_dirs
