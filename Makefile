# l1gw — `make help` lists the targets.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN         := bin/l1gw
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOBIN       := $(shell $(GO) env GOPATH)/bin

.DEFAULT_GOAL := help
.PHONY: help build run test fuzz test-chaos test-deps redis-deps report-check report-deps bench lint loadtest bench-compare chaos docker stack stack-down vegeta

## help: list the targets
help:
	@awk '/^## /{sub(/^## /,""); i=index($$0,": "); printf "  %-14s %s\n", substr($$0,1,i-1), substr($$0,i+2)}' $(MAKEFILE_LIST)

## build: build bin/l1gw
build:
	$(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o $(BIN) ./cmd/l1gw

## run: build, then start the demo upstream and the gateway on its embedded demo config
run: build
	@$(BIN) demo-upstream --listen 127.0.0.1:8081 & up=$$!; \
	trap 'kill $$up 2>/dev/null' EXIT INT TERM; \
	echo; echo "l1gw: proxy on 127.0.0.1:8080, admin on 127.0.0.1:9090 (Ctrl-C stops both). Try:"; \
	echo "  curl -i -H 'X-API-Key: demo-key' localhost:8080/hello      # admitted: upstream answer + rate-limit headers"; \
	echo "  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' -H 'X-API-Key: demo-key' localhost:8080/; done; echo   # 429 past 5/s"; \
	echo "  curl -i localhost:8080/hello                                   # 401: no key"; \
	echo "  curl -s localhost:9090/metrics | grep l1gw_                    # metrics"; \
	echo; $(BIN)

## test: install redis-server, redis-sentinel, nodejs and promtool if missing, then run every test with -race: the unit and contract tests, the allocation guards, a short fuzz run, the short chaos suite, the Kubernetes manifests' offline validation, and the dashboard and alert rules against a running gateway
test: test-deps
	$(GO) test -race -count=1 ./...
	cd loadtest && $(GO) test -race -count=1 ./... # the load runner, chaos suite, bench-compare and stack (a module of its own: vegeta stays out of the gateway's go.mod)
	cd deploy && $(GO) test -count=1 ./... # deploy/kubernetes, rendered and checked offline (a module of its own)
	$(GO) test -count=1 -run 'DoesNotAllocate|DoNotAllocate' ./internal/app/ ./internal/gateway/ ./degrade/ ./internal/rawio/ # allocation guards count nothing under -race
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-chaos
	cd deploy/observability && $(GO) test -count=1 ./... # a module of its own: the Prometheus parsers stay out of the gateway's go.mod

# A count, not a duration: Go 1.26's fuzz coordinator can fail a run with
# "context deadline exceeded" as a duration ends (go.dev/issue/75804).
FUZZTIME ?= 50000x
FUZZ := FuzzAmbiguousPath:./internal/gateway/ FuzzFlatRule:./limiter/ FuzzKeyFrom:./tenants/ FuzzQueryKey:./tenants/ FuzzBasicKey:./tenants/ FuzzKeyPlaces:./internal/gateway/ FuzzRoute:./upstream/ FuzzForwardedHeaders:./upstream/ FuzzClientIP:./upstream/ FuzzPrepareSkipsOnlyWhatIsNotThere:./internal/gateway/ FuzzStripResponseSkipsOnlyWhatIsNotThere:./upstream/ FuzzReplyReaders:./limiter/ FuzzChunkSizeOK:./upstream/
## fuzz: each fuzz target for FUZZTIME runs (50000x; make test runs it): path canonicalisation, rule JSON, key extraction (header, query, Basic), routing, forwarded headers, client IPs, the header work's shortcuts against doing every deletion, Redis replies, chunk-size lines
fuzz:
	@for t in $(FUZZ); do \
		echo "$(GO) test -run '^$$' -fuzz '^$${t%%:*}$$' -fuzztime $(FUZZTIME) $${t#*:}"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}\$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; \
	done

## test-chaos: the chaos suite in its short form, as TestChaos (build tag chaos); make test runs it
test-chaos: redis-deps
	cd loadtest && $(GO) test -race -count=1 -tags chaos -run '^TestChaos$$' ./chaos/

# test-deps installs the Redis binaries the tests start, node (which
# checks the k6 scripts, loadtest/k6) and promtool (the alert rules' unit
# tests, deploy/observability; Debian's prometheus package, without the
# node exporter it recommends), as root, from Debian's packages
# (RUNLEVEL=1 keeps the packages from starting a service).
test-deps:
	@if command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null && command -v node >/dev/null && command -v promtool >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "The tests need redis-server, redis-sentinel, node and promtool. Install them with:"; \
		echo "  sudo apt-get install -y redis-server redis-sentinel nodejs && sudo apt-get install -y --no-install-recommends prometheus"; exit 1; \
	fi; \
	pkgs="redis-server redis-sentinel"; command -v node >/dev/null || pkgs="$$pkgs nodejs"; \
	echo "installing $$pkgs"; \
	apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkgs >/dev/null && \
	if ! command -v promtool >/dev/null; then echo "installing prometheus (promtool)"; \
		RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; fi

# redis-deps installs only the Redis binaries, for the targets that start
# Redis but run no test needing node or promtool (stack, chaos,
# bench-compare).
redis-deps:
	@if command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "This needs redis-server and redis-sentinel. Install them with:"; \
		echo "  sudo apt-get install -y redis-server redis-sentinel"; exit 1; \
	fi; \
	echo "installing redis-server redis-sentinel"; \
	apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel >/dev/null

REPORT ?=
## report-check: install chromium if missing, then screenshot an HTML report at 1280 px in headless Chromium and check the PNG (REPORT=loadtest/out/chaos.html, or else a synthetic one); not in make test (a large install, seconds a run)
report-check: report-deps
	cd loadtest && L1GW_REPORT_CHECK=1 L1GW_REPORT_HTML=$(if $(REPORT),$(abspath $(REPORT))) $(GO) test -count=1 -v -run '^TestChromiumRenders$$' ./internal/timeline/

# report-deps installs Debian's chromium for report-check, as test-deps
# installs Redis.
report-deps:
	@if command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "make report-check needs chromium. Install it with:"; \
		echo "  sudo apt-get install -y chromium"; exit 1; \
	fi; \
	echo "installing chromium"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

## bench: the gateway's benchmarks with allocations (the README's numbers)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

LOADTEST_ARGS ?=
## loadtest: build, then run the load scenarios against bin/l1gw (LOADTEST_ARGS="-rate 500 -duration 3s"); results in loadtest/out/
loadtest: build
	$(GO) build -C loadtest -o $(CURDIR)/bin/loadtest .
	bin/loadtest -bin $(BIN) $(LOADTEST_ARGS)

BENCH_COMPARE_ARGS ?=
## bench-compare: build, then measure upstream, bare and naive forwarders and bin/l1gw (memory, exact, replica, window, quota) side by side on pinned CPUs (BENCH_COMPARE_ARGS="-runs 1 -duration 3s"); report in loadtest/out/bench-compare.md
bench-compare: build redis-deps
	$(GO) build -C loadtest -o $(CURDIR)/bin/benchcompare ./benchcompare
	bin/benchcompare -bin $(BIN) $(BENCH_COMPARE_ARGS)

CHAOS_ARGS ?=
## chaos: build, then the chaos suite at full length: Redis faults under 300 req/s through bin/l1gw (CHAOS_ARGS="-rate 500 -scenario 1-primary-stall"); report in loadtest/out/chaos.md
chaos: build redis-deps
	$(GO) build -C loadtest -o $(CURDIR)/bin/chaos ./chaos
	bin/chaos -bin $(BIN) $(CHAOS_ARGS)

## stack: build, then run a local stack on loopback until Ctrl-C: Redis primary, 2 replicas, 3 sentinels, the demo upstream, two Sentinel-mode gateways (proxies :18080 :18082); state and keys in .stack/
stack: build redis-deps
	$(GO) build -C loadtest -o $(CURDIR)/bin/stack ./stack
	bin/stack -bin $(BIN) -dir .stack

## stack-down: stop the stack make stack started (SIGTERM to the pid in .stack/pid)
stack-down:
	@if [ ! -f .stack/pid ]; then echo "no stack running (.stack/pid not found)"; exit 0; fi; \
	pid=$$(cat .stack/pid); \
	if ! tr '\0' ' ' </proc/$$pid/cmdline 2>/dev/null | grep -q 'bin/stack'; then echo "stack $$pid not running (pid file left by a killed stack)"; rm -f .stack/pid .stack/state.json; exit 0; fi; \
	if ! kill -TERM $$pid 2>/dev/null; then echo "stack $$pid not running"; rm -f .stack/pid .stack/state.json; exit 0; fi; \
	for i in $$(seq 150); do kill -0 $$pid 2>/dev/null || { echo "stack $$pid stopped"; exit 0; }; sleep 0.2; done; \
	echo "stack $$pid still running 30 s after SIGTERM"; exit 1

SCENARIO ?= steady
## vegeta: against a running make stack, one scenario with the vegeta CLI (SCENARIO=steady|abuser|burst|failover, RATE=, DURATION=); go install github.com/tsenart/vegeta/v12@v12.12.0 first
vegeta:
	loadtest/vegeta/run.sh $(SCENARIO)

## lint: gofmt, go vet, staticcheck (from the Go module proxy; here, in loadtest/, deploy/ and deploy/observability/), dockerfilelint (from npm)
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install $(STATICCHECK)
	$(GOBIN)/staticcheck ./...
	cd loadtest && $(GO) vet ./... && $(GO) vet -tags chaos ./chaos/ && $(GOBIN)/staticcheck ./... && $(GOBIN)/staticcheck -tags chaos ./chaos/
	cd deploy && $(GO) vet ./... && $(GOBIN)/staticcheck ./...
	cd deploy/observability && $(GO) vet ./... && $(GOBIN)/staticcheck ./...
	@if command -v npx >/dev/null; then npx --yes dockerfilelint@1.8.0 Dockerfile; else echo "npx not found: Dockerfile not linted"; fi

## docker: build the container image (needs a Docker engine)
docker:
	docker build --build-arg VERSION=$(VERSION) -t l1gw:$(VERSION) .
