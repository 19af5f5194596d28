# CLLMH: `make lab` brings up a site appliance (+ sample camera) in local containers;
# `make test` runs every check. Both install what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(ROOT)/ansible.cfg
export CLLMH_ROOT := $(ROOT)
export CLLMH_IMAGE ?= cllmh/debian12-systemd:latest
# Where make image builds the Raspberry Pi disk image (and keeps its cached base between builds).
export CLLMH_IMAGE_DIR ?= $(ROOT)/build/image
# Bound every Molecule run: a stalled handler must not eat CI's time.
MOLECULE_TIMEOUT ?= 2400
export ANSIBLE_TASK_TIMEOUT ?= 600
# Every scenario, the longest first (molecule/run-scenarios.sh runs them in MOLECULE_LANES lanes, taking
# them in this order, so the long ones start first); scenarios not named here come last. An entry is a
# role (all its scenarios) or ROLE/molecule/SCENARIO. The arm64 scenario (firstboot/molecule/arm64: the
# Raspberry Pi image booted under emulation) is not among them: it has a lane of its own in `make test`
# (MOLECULE_EXTRA), beside these, and `make molecule-arm64` runs it alone.
ARM64_SCENARIOS := $(sort $(dir $(wildcard roles/*/molecule/arm64/molecule.yml)))
ALL_SCENARIOS := $(filter-out $(ARM64_SCENARIOS),$(sort $(dir $(wildcard roles/*/molecule/*/molecule.yml))))
LONGEST_FIRST := syslog_ng motion_recorder camera_ingest storage_guard nginx_rtmp
uniq = $(if $(1),$(firstword $(1)) $(call uniq,$(filter-out $(firstword $(1)),$(1))))
SCENARIOS := $(call uniq,$(foreach r,$(LONGEST_FIRST),$(filter roles/$(r)/%,$(ALL_SCENARIOS))) $(ALL_SCENARIOS))
export MOLECULE_LANES ?= 2
export MOLECULE_TIMEOUT
HOST_PACKAGES := ffmpeg opencv-doc python3-venv python3-gi gir1.2-gst-rtsp-server-1.0 gir1.2-gst-plugins-base-1.0 \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad nginx-light \
  chromium chromium-driver

DASHBOARD_SRC := $(ROOT)/files/dashboard
DASHBOARD_BUILD := $(ROOT)/build/dashboard
MODELS_VENV := $(ROOT)/.venv-models
MODELS_BUILD := $(ROOT)/build/models

.PHONY: help venv host-packages engine base-image molecule-arm64 image image-checked image-check lab lab-down lint pytest models models-update molecule test \
  bench-syslog bench-loki clean dashboard dashboard-test npm artifacts

help:
	@echo "make lab       bring up the lab (site appliance + sample camera) and provision it"
	@echo "make lab-down  remove the lab containers"
	@echo "make test      lint + unit tests + model rebuild check + every Molecule scenario"
	@echo "make dashboard build the head-office dashboard (Vue.js) into build/dashboard/"
	@echo "make dashboard-test  the dashboard's type check and unit tests (Vitest)"
	@echo "make image     build the Raspberry Pi 4 (arm64) disk image into $(CLLMH_IMAGE_DIR), check it, xz it"
	@echo "make molecule-arm64  build that image and boot it as a container under emulation (arm64 scenario)"
	@echo "make models    rebuild the detector models from their packages and compare with files/models"
	@echo "make artifacts fill the artifact directory for air-gapped sites (ARTIFACTS=dir, default build/artifacts)"

$(BIN)/activate: requirements.txt appliance/pyproject.toml
	@echo "==> Python venv $(VENV) (requirements.txt + appliance[dev])"
	@command -v python3 >/dev/null || { apt-get update -q && apt-get install -y -q python3 python3-venv; }
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet -e 'appliance[dev]'
	@touch $(BIN)/activate

venv: $(BIN)/activate

host-packages:
	@missing=""; for p in $(HOST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "==> installing host packages:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; fi
	@# npm (with node) runs the dashboard checker of appliance/tests/test_dashboards.py (.ci/dashboard-check).
	@command -v npm >/dev/null || { echo "==> installing npm"; DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null; }

npm:
	@command -v npm >/dev/null || { echo "==> installing npm"; DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null; }

# The dashboard's dependencies exactly as package-lock.json pins them (npm ci), again only when the
# lock changed. Node is needed only here (the controller), never on head office.
$(DASHBOARD_SRC)/node_modules/.package-lock.json: $(DASHBOARD_SRC)/package-lock.json
	@$(MAKE) --no-print-directory npm
	@echo "==> npm ci (files/dashboard)"
	cd $(DASHBOARD_SRC) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Built again only when a source changed (the central_api role runs this on every converge).
DASHBOARD_INPUTS := $(shell find $(DASHBOARD_SRC)/src $(DASHBOARD_SRC)/index.html $(DASHBOARD_SRC)/vite.config.ts \
  $(DASHBOARD_SRC)/tsconfig.json $(DASHBOARD_SRC)/package.json -type f 2>/dev/null)
$(DASHBOARD_BUILD)/index.html: $(DASHBOARD_SRC)/node_modules/.package-lock.json $(DASHBOARD_INPUTS)
	@echo "==> building the dashboard into $(DASHBOARD_BUILD)"
	cd $(DASHBOARD_SRC) && CLLMH_DASHBOARD_OUT=$(DASHBOARD_BUILD) npm run --silent build
	@touch $@

dashboard: $(DASHBOARD_BUILD)/index.html

dashboard-test: $(DASHBOARD_SRC)/node_modules/.package-lock.json
	@echo "==> dashboard: type check and Vitest"
	cd $(DASHBOARD_SRC) && npm run --silent typecheck && npm run --silent test

engine:
	@echo "==> Docker engine"
	bash molecule/bootstrap/engine.sh start

base-image: engine
	@echo "==> Base image $(CLLMH_IMAGE)"
	bash molecule/bootstrap/image.sh $(CLLMH_IMAGE)

# The flashable Raspberry Pi image (README, Raspberry Pi image): built under qemu-user emulation, then
# checked without booting (tests/test_image.py): image-checked, which `make test` runs in the background
# for the arm64 scenario (image/background.sh); then compressed (xz, SHA-256) into the file to flash.
image: image-checked
	bash image/compress.sh $(CLLMH_IMAGE_DIR)

image-checked: venv
	@start=$$(date +%s); \
	bash image/build.sh $(CLLMH_IMAGE_DIR) && \
	echo "==> make image: built in $$(( $$(date +%s) - start )) s"
	@$(MAKE) --no-print-directory image-check

image-check: venv
	@echo "==> checking the image in $(CLLMH_IMAGE_DIR) (tests/test_image.py)"
	CLLMH_IMAGE_DIR=$(CLLMH_IMAGE_DIR) $(BIN)/pytest -q -p no:cacheprovider tests/test_image.py

lab: venv host-packages base-image
	@echo "==> Lab containers and provisioning (playbooks/lab.yml)"
	@start=$$(date +%s); \
	$(BIN)/ansible-playbook playbooks/lab.yml; \
	echo "==> make lab took $$(( $$(date +%s) - start )) s after set-up"

lab-down: venv
	$(BIN)/ansible-playbook playbooks/lab_down.yml

lint: venv dashboard-test
	@echo "==> yamllint"
	$(BIN)/yamllint -s .
	@echo "==> ansible-lint (production profile)"
	$(BIN)/ansible-lint
	@echo "==> every role option documented with the default the role uses"
	$(BIN)/python .ci/check_argument_specs.py
	@echo "==> ruff"
	$(BIN)/ruff check appliance
	$(BIN)/ruff format --check appliance
	@echo "==> ruff (Molecule tests, benchmarks and role scripts, with the appliance's settings)"
	$(BIN)/ruff check --config appliance/pyproject.toml roles molecule tests image
	$(BIN)/ruff format --config appliance/pyproject.toml --check roles molecule tests image

# The browser test (tests/test_dashboard_browser.py) serves the built dashboard.
pytest: venv host-packages dashboard
	@echo "==> pytest appliance/"
	cd appliance && $(BIN)/pytest
	@echo "==> pytest tests/ (role asserts and inventory settings, on the controller)"
	@# tests/test_image.py checks a built Raspberry Pi image: make image-check runs it, not make test.
	$(BIN)/pytest -q -p no:cacheprovider tests --ignore=tests/test_image.py

# Everything an air-gapped site or head office needs, in one directory with SHA256SUMS (README,
# "Air-gapped sites"); downloads are cached in ~/.cache/cllmh/artifacts (outside the clone, so that a
# fresh clone on the same machine reuses them). Needs the Docker engine and the
# base image (the Debian packages are resolved by apt inside it) and dpkg-dev (dpkg-scanpackages).
ARTIFACTS ?= $(ROOT)/build/artifacts
# The architectures whose Debian packages are fetched (empty: all). `make molecule` needs amd64 only:
# its air-gapped scenarios run amd64 containers, and resolving arm64 too costs minutes on a fresh machine.
ARTIFACT_ARCHES ?=
artifacts: venv base-image
	@command -v dpkg-scanpackages >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends dpkg-dev >/dev/null; }
	@start=$$(date +%s); \
	$(BIN)/python appliance/tools/make_artifacts.py --out $(ARTIFACTS) $(foreach a,$(ARTIFACT_ARCHES),--arch $(a)); \
	echo "==> make artifacts took $$(( $$(date +%s) - start )) s"

# The conversion tool runs in its own TensorFlow environment (build machine only).
$(MODELS_VENV)/bin/activate: appliance/tools/requirements-models.txt
	@echo "==> model conversion venv $(MODELS_VENV) (TensorFlow, build time only)"
	python3 -m venv $(MODELS_VENV)
	$(MODELS_VENV)/bin/pip install --quiet --upgrade pip
	$(MODELS_VENV)/bin/pip install --quiet -r appliance/tools/requirements-models.txt
	@touch $(MODELS_VENV)/bin/activate

models: venv host-packages $(MODELS_VENV)/bin/activate
	@command -v npm >/dev/null || { echo "==> installing npm"; DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null; }
	@echo "==> converting the detector models into $(MODELS_BUILD)"
	rm -rf $(MODELS_BUILD)
	$(MODELS_VENV)/bin/python appliance/tools/convert_models.py --out $(MODELS_BUILD) --cache $(ROOT)/build/model-sources
	@echo "==> comparing with files/models"
	cd appliance && $(BIN)/python tools/compare_models.py $(ROOT)/files/models $(MODELS_BUILD)

# After reviewing a `make models` whose output differs: ship the rebuilt files.
models-update:
	cp $(MODELS_BUILD)/*.tflite $(MODELS_BUILD)/*.npy $(MODELS_BUILD)/SHA256SUMS files/models/

# Wide lines: Molecule's boxed output wraps pytest's lines at the terminal width otherwise.
molecule: export COLUMNS := 200
molecule: ARTIFACT_ARCHES = amd64
# The motion_recorder (a site) and syslog_ng (head office) scenarios run air-gapped from the artifact
# directory (make artifacts, cached).
molecule: venv host-packages base-image artifacts
	bash molecule/run-scenarios.sh $(SCENARIOS)

# The Raspberry Pi image booted under emulation, alone: the arm64 scenario (its before.sh runs make
# image-checked, then imports the image: image/box.py).
molecule-arm64: export COLUMNS := 200
molecule-arm64: MOLECULE_TIMEOUT = 5400
molecule-arm64: venv host-packages base-image
	MOLECULE_LANES=1 bash molecule/run-scenarios.sh $(ARM64_SCENARIOS)

# Every check. The Raspberry Pi image is built and checked in the background from the start (niced:
# emulation computes while the other checks mostly wait); the arm64 scenario, in a Molecule lane of its
# own (MOLECULE_EXTRA, bounded by MOLECULE_EXTRA_TIMEOUT), waits for it and boots it.
test: export MOLECULE_EXTRA = $(ARM64_SCENARIOS)
test: export MOLECULE_EXTRA_TIMEOUT = 3600
test: venv host-packages
	bash image/background.sh start
	@rc=0; $(MAKE) --no-print-directory lint pytest models molecule || rc=$$?; \
	bash image/background.sh stop; \
	if [ $$rc != 0 ]; then echo "!! make test failed"; exit $$rc; fi
	@echo "==> all checks passed"

# Benchmarks print figures on demand; they are not part of `make test`. Both converge the syslog_ng
# scenario, which is air-gapped (the artifact directory, amd64 only as for make molecule).
bench-syslog bench-loki: ARTIFACT_ARCHES = amd64
bench-syslog: venv base-image artifacts
	cd roles/syslog_ng && molecule -c $(ROOT)/molecule/base.yml converge
	$(BIN)/python molecule/benchmarks/syslog_throughput.py
	cd roles/syslog_ng && molecule -c $(ROOT)/molecule/base.yml destroy

bench-loki: venv base-image artifacts
	cd roles/syslog_ng && molecule -c $(ROOT)/molecule/base.yml converge
	$(BIN)/python molecule/benchmarks/loki_throughput.py
	cd roles/syslog_ng && molecule -c $(ROOT)/molecule/base.yml destroy

clean:
	rm -rf $(VENV) $(MODELS_VENV) build appliance/build
