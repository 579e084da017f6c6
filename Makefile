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
# The chart runs localhost/plugin-operator:<appVersion> by default; the images targets load
# the operator under that tag too, so the chart's defaults work on the local cluster.
APP_VERSION := $(shell sed -n 's/^appVersion: "\(.*\)"$$/\1/p' charts/plugin-operator/Chart.yaml)
.PHONY: image
image: ## Build the operator statically; load it into the node (IMAGE=localhost/plugin-operator:dev)
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile image --target x86_64-unknown-linux-gnu --bin plugin-operator
	cluster/image.sh --binary $(IMAGE_DIR)/plugin-operator --name $(IMAGE) --entrypoint /plugin-operator
	cluster/image.sh --binary $(IMAGE_DIR)/plugin-operator --name localhost/plugin-operator:$(APP_VERSION) --entrypoint /plugin-operator

KUBECONFIG_PATH := $(CURDIR)/build/cluster/kubeconfig

.PHONY: generate
generate: ## Regenerate the CRD (crds/, the chart) and deploy/ from the Rust types
	cargo run --quiet -- crd > crds/plugins.chat.dev.yaml
	cargo run --quiet -- crd --kind PluginPolicy > crds/pluginpolicies.plugins.chat.dev.yaml
	cargo run --quiet -- crd --kind ScopeCatalog > crds/scopecatalogs.plugins.chat.dev.yaml
	cargo run --quiet -- sample-scope-catalog > $(CHART)/files/sample-scope-catalog.yaml
	@$(MAKE) --no-print-directory manifests
	@$(MAKE) --no-print-directory chart-readme

.PHONY: lint
lint: ## cargo fmt --check, clippy with warnings as errors, cargo deny (licenses, bans, sources)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@$(MAKE) --no-print-directory deny

# cargo-deny, installed from crates.io into the tools cache on first use (a few minutes).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/plugin-operator/tools/cargo-deny-$(CARGO_DENY_VERSION)/bin/cargo-deny
.PHONY: deny
deny: ## cargo deny check licenses bans sources (deny.toml); advisories need GitHub
	@test -x $(CARGO_DENY) || { echo "== installing cargo-deny $(CARGO_DENY_VERSION) into $(dir $(CARGO_DENY)) (first use only)"; \
	  cargo install --quiet --locked --root $(dir $(CARGO_DENY)).. cargo-deny@$(CARGO_DENY_VERSION); }
	$(CARGO_DENY) check licenses bans sources

.PHONY: test
test: ## Every test: unit, integration (real API server), end-to-end (real pods); starts the cluster
	@echo "== [1/4] lint (cargo fmt --check, cargo clippy -D warnings)"
	@$(MAKE) --no-print-directory lint
	@echo "== [2/4] local cluster with a node (make cluster-up NODE=1)"
	@NODE=1 cluster/up.sh
	@echo "== [3/4] images and tools for the end-to-end tests (make images prometheus)"
	@$(MAKE) --no-print-directory images
	@$(MAKE) --no-print-directory prometheus
	@echo "== [4/4] cargo test against the local cluster (KUBECONFIG=$(KUBECONFIG_PATH))"
	KUBECONFIG=$(KUBECONFIG_PATH) cargo test --workspace

# The images' binaries: static, with the `image` profile (Cargo.toml: release settings,
# thin LTO) so a cold build stays short; the benchmarks build with --release.
IMAGE_DIR := $(or $(CARGO_TARGET_DIR),target)/x86_64-unknown-linux-gnu/image
.PHONY: images
TAG ?= dev
images: ## Build the operator and the sample chat API and plugin statically; load them into the node (TAG=dev)
	@echo "== building static binaries (profile image; the first build takes several minutes)"
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile image --target x86_64-unknown-linux-gnu \
	  --package plugin-operator --bin plugin-operator \
	  --package plugin-operator-samples --bin sample-chat-api --bin sample-plugin
	@echo "== loading images into the node's containerd"
	cluster/image.sh --binary $(IMAGE_DIR)/plugin-operator --name localhost/plugin-operator:$(TAG) --entrypoint /plugin-operator
	cluster/image.sh --binary $(IMAGE_DIR)/plugin-operator --name localhost/plugin-operator:$(APP_VERSION) --entrypoint /plugin-operator
	cluster/image.sh --binary $(IMAGE_DIR)/sample-chat-api --name localhost/sample-chat-api:dev --entrypoint /sample-chat-api
	cluster/image.sh --binary $(IMAGE_DIR)/sample-plugin --name localhost/sample-plugin:$(TAG) --entrypoint /sample-plugin

# --- chart: the Helm chart and the plain manifests rendered from it (docs/helm.md) ---
CHART := charts/plugin-operator

.PHONY: helm
helm: ## Print the path of the pinned helm binary (built from cluster/tools/helm on first use)
	@bash -c 'source cluster/lib.sh && ensure_helm >&2 && printf "%s\n" "$$HELM_BIN/helm"'

.PHONY: prometheus
prometheus: ## Print the folder of the pinned prometheus and promtool (built from cluster/tools/prometheus on first use)
	@bash -c 'source cluster/lib.sh && ensure_prometheus >&2 && printf "%s\n" "$$PROMETHEUS_BIN"'

.PHONY: manifests
manifests: ## Copy the CRD into the chart and render deploy/plugin-operator.yaml from it
	cp crds/plugins.chat.dev.yaml $(CHART)/crds/plugins.chat.dev.yaml
	cp crds/pluginpolicies.plugins.chat.dev.yaml $(CHART)/crds/pluginpolicies.plugins.chat.dev.yaml
	cp crds/scopecatalogs.plugins.chat.dev.yaml $(CHART)/crds/scopecatalogs.plugins.chat.dev.yaml
	HELM="$$($(MAKE) -s --no-print-directory helm | tail -n 1)" deploy/render.sh > deploy/plugin-operator.yaml.tmp
	mv deploy/plugin-operator.yaml.tmp deploy/plugin-operator.yaml
	deploy/gitops/render.sh > deploy/gitops/argocd-cm-patch.yaml

.PHONY: chart-readme
chart-readme: ## Write charts/plugin-operator/README.md from the comments in values.yaml
	UPDATE_CHART_README=1 cargo test --quiet --test chart readme

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
