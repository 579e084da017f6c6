# plugin-operator: the entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE ?= 0

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: cluster-up
cluster-up: ## Start a local control plane (NODE=1 adds a real node)
	@NODE=$(NODE) cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove what it made
	@cluster/down.sh

.PHONY: cluster-status
cluster-status: ## Show what the local cluster runs (processes, node, pods)
	@cluster/status.sh

IMAGE ?= localhost/plugin-operator:dev
.PHONY: image
image: ## Build the operator statically; load it into the node (IMAGE=localhost/plugin-operator:dev)
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu --bin plugin-operator
	cluster/image.sh --binary $(RELEASE_DIR)/plugin-operator --name $(IMAGE) --entrypoint /plugin-operator

KUBECONFIG_PATH := $(CURDIR)/build/cluster/kubeconfig

.PHONY: generate
generate: ## Regenerate the CRD (crds/, the chart) and deploy/ from the Rust types
	cargo run --quiet -- crd > crds/plugins.chat.dev.yaml
	@$(MAKE) --no-print-directory manifests

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: test
test: ## Every test: unit, integration (real API server), end-to-end (real pods); starts the cluster
	@echo "== [1/4] lint (cargo fmt --check, cargo clippy -D warnings)"
	@$(MAKE) --no-print-directory lint
	@echo "== [2/4] local cluster with a node (make cluster-up NODE=1)"
	@NODE=1 cluster/up.sh
	@echo "== [3/4] images for the end-to-end tests (make images)"
	@$(MAKE) --no-print-directory images
	@echo "== [4/4] cargo test against the local cluster (KUBECONFIG=$(KUBECONFIG_PATH))"
	KUBECONFIG=$(KUBECONFIG_PATH) cargo test

RELEASE_DIR := $(or $(CARGO_TARGET_DIR),target)/x86_64-unknown-linux-gnu/release
.PHONY: images
TAG ?= dev
images: ## Build the operator and the sample chat API and plugin statically; load them into the node (TAG=dev)
	@echo "== building static binaries (release; the first build takes several minutes)"
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu \
	  --bin plugin-operator --example sample-chat-api --example sample-plugin
	@echo "== loading images into the node's containerd"
	cluster/image.sh --binary $(RELEASE_DIR)/plugin-operator --name localhost/plugin-operator:$(TAG) --entrypoint /plugin-operator
	cluster/image.sh --binary $(RELEASE_DIR)/examples/sample-chat-api --name localhost/sample-chat-api:dev --entrypoint /sample-chat-api
	cluster/image.sh --binary $(RELEASE_DIR)/examples/sample-plugin --name localhost/sample-plugin:$(TAG) --entrypoint /sample-plugin

# --- chart: the Helm chart and the plain manifests rendered from it (docs/helm.md) ---
CHART := charts/plugin-operator

.PHONY: helm
helm: ## Print the path of the pinned helm binary (built from cluster/tools/helm on first use)
	@bash -c 'source cluster/lib.sh && ensure_helm >&2 && printf "%s\n" "$$HELM_BIN/helm"'

.PHONY: manifests
manifests: ## Copy the CRD into the chart and render deploy/plugin-operator.yaml from it
	cp crds/plugins.chat.dev.yaml $(CHART)/crds/plugins.chat.dev.yaml
	HELM="$$($(MAKE) -s --no-print-directory helm | tail -n 1)" deploy/render.sh > deploy/plugin-operator.yaml.tmp
	mv deploy/plugin-operator.yaml.tmp deploy/plugin-operator.yaml

.PHONY: chart-lint
chart-lint: ## helm lint --strict on the chart
	"$$($(MAKE) -s --no-print-directory helm | tail -n 1)" lint --strict $(CHART)

.PHONY: demo
demo: ## The main job: local cluster, operator, sample chat API and plugin, until the plugin is Ready
	@scripts/demo.sh

.PHONY: chaos
chaos: ## Fault injection: operator SIGKILL, clock skew, rollout pace, API server/etcd/node restarts (docs/reliability.md); starts the cluster
	@chaos/run.sh

.PHONY: bench
bench: ## Benchmarks: broker vs direct/HAProxy/nginx, operator vs floor at 1,000 Plugins (docs/benchmarks.md)
	@bench/run.sh
