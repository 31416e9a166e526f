# Two commands for a new user: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ppnas-installed
# paddledet/paddleseg depend on the deprecated `sklearn` package, whose build refuses without this.
export SKLEARN_ALLOW_DEPRECATED_SKLEARN_PACKAGE_INSTALL := True

.PHONY: install test demo seg-demo lint clean

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(PY) tools/make_demo_data.py --out data/demo_wider
	$(PY) tools/train_nas.py -c configs/demo/blazeface_demo.yml

clean:
	rm -rf output data/demo_wider data/demo_cityscapes
