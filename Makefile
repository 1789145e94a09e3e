# Two commands: `make demo` (install, write the digits data, train and test) and `make test` (lint, then tests).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: demo test install data

install:
	$(PIP) install -e ".[nifti]"

data:
	$(PYTHON) scripts/make_example_data.py data/digits

demo: install data
	biapy --config templates/classification/2d_classification_digits.yaml \
	      --result_dir results --name digits_demo --run_id 1 --overwrite

test:
	$(PIP) install -e ".[test,bmz]"
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest
