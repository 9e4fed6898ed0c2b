# Herald — two commands: `make run` and `make test` (see README.md).
SHELL := /bin/bash
GO ?= go
BIN := bin/herald
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

# Debian packages: what the gateway needs at run time, and what tests add.
RUN_PKGS := libvips-tools ffmpeg
TEST_PKGS := $(RUN_PKGS) mosquitto chromium awscli procps libjpeg-turbo-progs pngquant docker-compose

GO_SOURCES := $(shell find . -name '*.go' -not -path './node_modules/*' 2>/dev/null)
UI_SOURCES := $(wildcard web/ui/* client/*.js client/src/*) package.json package-lock.json client/package.json
STATIC_FILES := $(shell find web/static -type f -not -path 'web/static/dist/*' 2>/dev/null)

.PHONY: run test build deps-run deps-test bundle vet gotest fuzz jstest bench bench-big bench-upload clean

## run: install what is needed, build, and run the whole gateway locally with the demo page.
run: deps-run build
	./$(BIN) serve

## test: install what tests need and run every test.
test: deps-test bundle vet gotest fuzz jstest

build: $(BIN)

$(BIN): $(GO_SOURCES) go.mod go.sum web/static/dist/app.js $(STATIC_FILES)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/herald

deps-run:
	@scripts/apt-ensure.sh $(RUN_PKGS)

deps-test:
	@scripts/apt-ensure.sh $(TEST_PKGS)

node_modules/.package-lock.json: package.json package-lock.json
	@npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

bundle: web/static/dist/app.js

web/static/dist/app.js: node_modules/.package-lock.json $(UI_SOURCES)
	@npm run --silent build

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

gotest:
	$(GO) test -count=1 -timeout 600s ./...
	HERALD_TEST_WEBSOCKET_IO=goroutine $(GO) test -count=1 ./broker

## fuzz: every fuzz target for a short budget (seed corpora always run in gotest).
fuzz:
	@scripts/fuzz-all.sh $${FUZZTIME:-2000x}

jstest: build
	HERALD_BIN=$(CURDIR)/$(BIN) node --test --test-concurrency=1 client/test/ web/e2e/

## bench: Go benchmarks, then the 10k-session Herald vs Mosquitto load test (report in docs/bench/).
bench: deps-test build
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...
	HERALD_BIN=$(CURDIR)/$(BIN) scripts/bench-loadtest.sh

## bench-big: adds the 19,500-session single-process run and 100k sessions over 6 gateways.
bench-big: deps-test build
	HERALD_BENCH_BIG=1 HERALD_BIN=$(CURDIR)/$(BIN) scripts/bench-loadtest.sh

## bench-upload: a 2 GiB WAV through the whole pipeline (resumable upload, conversion); gateway RSS vs `aws s3 cp` (docs/benchmarks-uploads.md).
bench-upload: deps-test build
	HERALD_BIN=$(CURDIR)/$(BIN) HERALD_BENCH_UPLOAD_BYTES=$${HERALD_BENCH_UPLOAD_BYTES:-2147483648} \
		$(GO) test -run '^$$' -bench BigUpload -benchtime 1x -timeout 60m -v ./cmd/herald

clean:
	rm -rf bin web/static/dist test-output
