# callmesh — what CI runs is `make test` (see .ci/run).
GO        ?= go
BIN       := bin/callmesh
PKGS      := ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1x
# The call rate of the load steps profiled for `make pgo` (S1 and S2 both hold it).
PGO_RATE  ?= 3000
# The whole suite stays well under 15 minutes on 2 cores; this is a backstop.
TEST_TIMEOUT ?= 14m

.PHONY: all build deps test unit itest bench load load-register load-calls load-media pgo demo fuzz lint vet fmt tidy-check clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/callmesh

## deps: Debian packages the tests drive (SIPp, baresip), installed when missing.
deps:
	@bash .ci/deps

## test: go.mod tidy, vet, then unit and in-process integration tests with the race detector.
test: deps tidy-check vet
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## unit: the packages' own tests, without the end-to-end suite.
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /itest)

## itest: the end-to-end suite alone, verbose.
itest: deps
	$(GO) test -race -count=1 -v -timeout $(TEST_TIMEOUT) ./itest/...

# ensure,PROGRAM,PACKAGE: install the Debian PACKAGE when PROGRAM is neither
# on the PATH nor in /usr/sbin or /usr/bin (Debian puts daemons in sbin).
ensure = { command -v $(1) || test -x /usr/sbin/$(1) || test -x /usr/bin/$(1); } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  echo "installing $(2)" >&2; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(2); }

## bench: benchmarks with their figures (see BENCHMARKS.md).
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m $(PKGS)

## load-register: registrar load benchmark, SIPp against a federation node and
## against Kamailio on the same cores (itest/load); installs Kamailio when
## missing. CALLMESH_LOAD_OUT=FILE also writes the tables as Markdown.
load-register: deps
	@$(call ensure,kamailio,kamailio)
	CALLMESH_LOAD=1 $(GO) test -run '^TestLoadRegister$$' -count=1 -v -timeout 30m ./itest/load/

## load-calls: SIPp call scenarios proven against Kamailio, then the call load
## benchmark S1/S2 against Kamailio (proxy.cfg) and a callmesh node
## (itest/load); installs Kamailio when missing. CALLMESH_LOAD_OUT=FILE also
## writes the tables as Markdown.
load-calls: deps
	@$(call ensure,kamailio,kamailio)
	CALLMESH_LOAD=1 $(GO) test -run '^(TestCallScenarios|TestLoadCalls)$$' -count=1 -v -timeout 40m ./itest/load/

## load-media: relayed calls at rising counts through the callmesh relay (in
## user space, then with its kernel fast path) and rtpengine (userspace), same
## load, same cores; installs rtpengine when missing.
load-media: deps
	@$(call ensure,rtpengine,rtpengine-daemon)
	CALLMESH_LOAD=1 $(GO) test -run '^TestLoadRelay$$' -count=1 -v -timeout 30m ./itest/load/

## load: every load benchmark (registrar, calls, media).
load: load-register load-calls load-media

## pgo: profile the node under call load (S1 and S2, one step each) and
## write the merged CPU profile to cmd/callmesh/default.pgo, which every
## build of the command then uses for profile-guided optimisation.
pgo: deps
	@dir=$$(mktemp -d) && \
	CALLMESH_LOAD=1 CALLMESH_LOAD_CALL_TARGETS=callmesh-s1,callmesh-s2 CALLMESH_LOAD_CALL_RATES=$(PGO_RATE) \
		CALLMESH_LOAD_CALL_STEP=30s CALLMESH_LOAD_PROFILE=$$dir \
		$(GO) test -run '^TestLoadCalls$$' -count=1 -v -timeout 20m ./itest/load/ && \
	CALLMESH_LOAD_PGO_FROM=$$dir CALLMESH_LOAD_PGO=$(CURDIR)/cmd/callmesh/default.pgo \
		$(GO) test -run '^TestPGOProfile$$' -count=1 -v ./itest/load/; \
	rc=$$?; rm -rf $$dir; exit $$rc

## demo: a local federation on loopback, on embedded defaults.
demo: build
	./$(BIN) demo

## fuzz: each fuzz target for FUZZTIME.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## lint: formatting and vet.
lint: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## tidy-check: fail when go.mod or go.sum is not tidy.
tidy-check:
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { echo "go.mod/go.sum not tidy: run 'go mod tidy'"; $(GO) mod tidy -diff; exit 1; }

clean:
	rm -rf bin
