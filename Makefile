# Archipelago in Go. `make run` starts a host, `make test` runs every test;
# both install what is missing first.

GO        ?= go
BIN       := bin
CEPH_TAGS := ceph pacific
# radosd and the RADOS tests need librados-dev and libradospp-dev.
HAVE_RADOS := $(shell test -e /usr/include/rados/librados.hpp && echo yes)
RUN_DIR   ?= $(CURDIR)/.cache/run
SEGMENT   ?= archipelago

COMMANDS := xseg=./tools/xseg xseg-bench=./bench/xseg-bench ipc-baseline=./bench/baseline filed=./peers/filed mapperd=./peers/mapperd vlmcd=./peers/vlmcd archipelago=./tools/archipelago vlmc=./tools/vlmc

.PHONY: all build deps test test-short bench lint install run stop clean

all: build

build:
	@mkdir -p $(BIN)
	@for c in $(COMMANDS); do \
		echo "go build $${c#*=} -> $(BIN)/$${c%%=*}"; \
		$(GO) build -o $(BIN)/$${c%%=*} $${c#*=} || exit 1; \
	done
ifeq ($(HAVE_RADOS),yes)
	@echo "go build -tags '$(CEPH_TAGS)' ./peers/radosd -> $(BIN)/radosd"
	@$(GO) build -tags '$(CEPH_TAGS)' -o $(BIN)/radosd ./peers/radosd
else
	@echo "SKIP $(BIN)/radosd: it needs librados-dev (make deps as root installs it)"
endif

# deps installs the packages the tests use (root and apt), and Go modules.
deps:
	@tools/install-deps.sh
	$(GO) mod download

test: deps build
	$(GO) test -race -count=1 -timeout 15m ./...
ifeq ($(HAVE_RADOS),yes)
	$(GO) test -count=1 -timeout 10m -tags '$(CEPH_TAGS)' ./drivers/rados/...
else
	@echo "SKIP RADOS tests: librados-dev is not installed (make deps as root installs it)"
endif

test-short: build
	$(GO) test -short -count=1 ./...

# bench runs the XSEG IPC benchmark beside its two baselines, in one run.
bench: build
	bench/ipc.sh

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

install: build
	install -d $(DESTDIR)/usr/local/bin
	install -m 0755 $(BIN)/* $(DESTDIR)/usr/local/bin/

# run starts a segment and a null peer on port 0, then prints its report.
run: build
	@mkdir -p $(RUN_DIR)
	@$(BIN)/xseg report $(SEGMENT) >/dev/null 2>&1 || $(BIN)/xseg create $(SEGMENT)
	@if [ -f $(RUN_DIR)/null.pid ] && kill -0 $$(cat $(RUN_DIR)/null.pid) 2>/dev/null; then \
		echo "null peer already running (pid $$(cat $(RUN_DIR)/null.pid))"; \
	else \
		nohup $(BIN)/xseg-bench serve --segment $(SEGMENT) --port 0 >$(RUN_DIR)/null.log 2>&1 & echo $$! >$(RUN_DIR)/null.pid; \
		sleep 0.3; echo "started the null peer on port 0 of segment $(SEGMENT) (pid $$(cat $(RUN_DIR)/null.pid))"; \
	fi
	@echo
	@$(BIN)/xseg report $(SEGMENT)
	@echo
	@echo "Measure a round trip:  $(BIN)/xseg-bench ipc --segment $(SEGMENT) --port 0 --iodepth 16 --duration 3s"
	@echo "Stop it all:           make stop"

stop:
	@if [ -f $(RUN_DIR)/null.pid ]; then kill $$(cat $(RUN_DIR)/null.pid) 2>/dev/null; rm -f $(RUN_DIR)/null.pid; fi
	@$(BIN)/xseg destroy $(SEGMENT) 2>/dev/null && echo "destroyed segment $(SEGMENT)" || true

clean:
	rm -rf $(BIN) .cache
