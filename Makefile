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
