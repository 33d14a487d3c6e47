# Thin aliases: the logic lives in `cargo xtask` (xtask/).
CARGO ?= cargo

.PHONY: tools verify test run bench stack e2e reconcile cluster-up cluster-down

## Build or install every pinned external tool into the cache.
tools:
	$(CARGO) xtask tools

## Validate manifests, workflows and negative fixtures with the upstream tools.
verify:
	$(CARGO) xtask verify

## Everything CI checks: tools, formatting, lints, tests, verification.
test:
	$(CARGO) xtask test

## The workload locally (filled by the demo-app work).
run:
	$(CARGO) xtask run

## Benchmarks: demo-app vs podinfo, a FastAPI baseline and bare hyper (docs/benchmarks.md).
bench:
	$(CARGO) xtask bench

## The local observability stack (Collector, Jaeger, Prometheus, demo-app) until Ctrl-C.
stack:
	$(CARGO) xtask stack

## End-to-end test of traces, metrics and logs across frontend and backend.
e2e:
	$(CARGO) xtask e2e

## An environment reconciled by Flux on a loopback control plane (ENV=dev|staging|production|all).
ENV ?= dev
reconcile:
	$(CARGO) xtask reconcile --env $(ENV)

## dev on a local kind cluster, reconciled by Flux from the working tree (needs docker, kind, flux, kubectl).
cluster-up:
	$(CARGO) xtask cluster-up

## Delete the local kind cluster and its registry.
cluster-down:
	$(CARGO) xtask cluster-down
