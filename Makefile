# Archipelago in Go. `make run` starts a host, `make test` runs every test;
# both install what is missing first.

GO        ?= go
BIN       := bin
CEPH_TAGS := ceph pacific
# radosd and the RADOS tests need librados-dev and libradospp-dev.
HAVE_RADOS := $(shell test -e /usr/include/rados/librados.hpp && echo yes)

COMMANDS := xseg=./tools/xseg xseg-bench=./bench/xseg-bench ipc-baseline=./bench/baseline filed=./peers/filed mapperd=./peers/mapperd vlmcd=./peers/vlmcd nbdd=./kernel-bridge/nbdd archipelago=./tools/archipelago vlmc=./tools/vlmc

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
	$(GO) test -count=1 -timeout 10m -tags '$(CEPH_TAGS)' ./drivers/rados/... ./peers/e2e/...
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

# run starts the embedded default host (segment, filed, mapperd, vlmcd,
# nbdd; or the host ARCHIPELAGO_CONF describes), a demo volume exported
# over NBD, and says how to use them.
CONF_FLAG := $(if $(ARCHIPELAGO_CONF),--config $(ARCHIPELAGO_CONF))

run: build
	@$(BIN)/archipelago $(CONF_FLAG) status >/dev/null 2>&1 || $(BIN)/archipelago $(CONF_FLAG) start
	@$(BIN)/vlmc $(CONF_FLAG) info demo >/dev/null 2>&1 || $(BIN)/vlmc $(CONF_FLAG) create demo --size 10G
	@echo
	@$(BIN)/archipelago $(CONF_FLAG) status
	@echo
	@URI=$$($(BIN)/vlmc $(CONF_FLAG) map demo | head -1) && \
	echo "A 10 GiB thin volume named demo is exported over NBD at" && \
	echo "  $$URI" && \
	echo "Try:" && \
	echo "  qemu-img info '$$URI'" && \
	echo "  nbdinfo --map '$$URI'" && \
	echo "  qemu-img convert -n -f qcow2 -O raw DISK.qcow2 '$$URI'" && \
	echo "  qemu-system-x86_64 -m 1G -drive file=$$URI,format=raw,if=virtio,cache=none" && \
	echo "  $(BIN)/vlmc snapshot demo snap1 && $(BIN)/vlmc clone snap1 vm1 --size 20G && $(BIN)/vlmc map vm1" && \
	echo "  $(BIN)/vlmc list    $(BIN)/vlmc info demo    $(BIN)/vlmc export demo OUT.raw    $(BIN)/vlmc showmapped" && \
	echo "Stop it all:  make stop"

stop:
	@$(BIN)/archipelago $(CONF_FLAG) stop

clean:
	rm -rf $(BIN) .cache
