# Sluice — the two commands a new user needs are `make run` and `make test`.
SHELL   := /usr/bin/env bash
GO      ?= go
BIN     := bin/sluice
DEMO    := .sluice-demo
ROWS    ?= 100000
BENCH_ROWS ?= 1000000,10000000

.PHONY: run test deps build lint bench bench-duckdb bench-aws bench-micro clean help

help:
	@echo "make run    - generate $(ROWS) demo rows and run them through the embedded pipeline"
	@echo "make test   - install what the tests need, lint, run every test"
	@echo "make bench  - benchmarks: Sluice vs DuckDB, the AWS path and its cost, micro-benchmarks (BENCHMARKS.md)"
	@echo "make chaos  - kill -9 random services during a 1M-row batch, both backends (docs/chaos.md)"
	@echo "make lint   - go vet + gofmt check"
	@echo "make up / make down / make test-localstack - the AWS services on LocalStack (Docker)"

build:
	$(GO) build -o $(BIN) ./cmd/sluice

# The main job on the embedded default: no cloud account, no set-up.
run: build
	$(BIN) gen --rows $(ROWS) --seed 1 --out $(DEMO)/input
	$(BIN) run --data $(DEMO)/data --reference $(DEMO)/input/financials.csv $(DEMO)/input/orders.csv

# Everything the tests need that Go does not fetch by itself: the AWS
# emulators (npm), Chromium for the console's browser test and Prometheus
# for the dashboards test (Debian packages).
APT_PKGS := chromium prometheus
deps:
	@if [ -f package-lock.json ]; then \
	  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi; \
	fi
	@# DuckDB reads the Parquet outputs back in the format tests (an independent reader).
	@if [ ! -d bench/duckdb/node_modules ] || [ bench/duckdb/package-lock.json -nt bench/duckdb/node_modules/.package-lock.json ]; then \
	  npm ci --prefix bench/duckdb --no-audit --no-fund; \
	fi
	@missing=""; for p in $(APT_PKGS); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "the tests need:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

lint:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi

test: deps lint
	$(GO) test -count=1 -timeout 20m ./...

# Sluice against DuckDB on 1M and 10M generated rows, checked against the
# oracle (bench/cmd/sluicebench; BENCH_FLAGS=-skip-duckdb etc.), then the Go
# micro-benchmarks. Data and results go to bench/out/. See BENCHMARKS.md.
bench: bench-duckdb
	@$(MAKE) --no-print-directory bench-aws
	@$(MAKE) --no-print-directory bench-micro

# Only the side-by-side with DuckDB (plain join = headline, ordered = second
# row), on BENCH_ROWS rows with full-size references.
bench-duckdb: build
	@if [ ! -d bench/duckdb/node_modules ] || [ bench/duckdb/package-lock.json -nt bench/duckdb/node_modules/.package-lock.json ]; then \
	  npm ci --prefix bench/duckdb --no-audit --no-fund; \
	fi
	$(GO) run ./bench/cmd/sluicebench -bin $(BIN) -out bench/out -sizes $(BENCH_ROWS) $(BENCH_FLAGS)

# The AWS path: 1M and 10M rows through the four services as processes on
# the emulators (S3: s3rver, which does UploadPartCopy), once with the seed's
# copied chunks and once with the default layout; wall time, every AWS call
# priced, and S3 requests and bytes by operation counted on the wire, per 1M
# rows. The reference stays at 100k keys: loading dynalite is the slow part.
bench-aws: deps
	$(GO) run ./bench/cmd/awsbench -rows 1000000 -ref-rows 100000 -out bench/out/aws
	$(GO) run ./bench/cmd/awsbench -rows 10000000 -ref-rows 100000 -layouts copy-chunks,default -timeout 45m -out bench/out/aws10m

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

clean:
	rm -rf bin $(DEMO) .sluice

# --- Docker: the four AWS services on LocalStack (see localstack/README.md) ---
# For people with Docker; nothing else in this Makefile needs it.
SLUICE_IMAGE ?= sluice:dev

.PHONY: up down images test-localstack

# LocalStack, the four services (two workers), Prometheus on :9090 and
# Grafana on :3000, built from the Dockerfile.
up:
	docker compose up -d --build

# Stops everything and drops LocalStack's data.
down:
	docker compose down -v

# The one image with the four services and the sluice CLI (docker-compose.yml
# uses the same SLUICE_IMAGE tag).
images:
	docker build -t $(SLUICE_IMAGE) .

# The AWS adapter and service tests against LocalStack on localhost:4566
# instead of the emulators they start by default. Needs LocalStack running
# first: `make up`, or LocalStack alone (`docker compose up -d localstack`).
test-localstack:
	SLUICE_TEST_ENDPOINT=http://localhost:4566 $(GO) test -count=1 -timeout 20m ./pkg/s3blob/ ./pkg/sqsqueue/ ./pkg/dynamoledger/ ./pkg/sesmail/ ./services/

# kill -9 a random service 20 times while a 1M-row batch runs through the
# four services as processes, on the local backend and on the AWS emulators;
# checks the output equals a clean run's, one email, nothing left queued
# (cmd/sluice-chaos, docs/chaos.md).
.PHONY: chaos
chaos: deps
	$(GO) run ./cmd/sluice-chaos -backend both -rows 1000000 -kills 20
