# shardlog's build, test and benchmark entry points. See README.md.

# Go: from PATH, or where the official tarball installs it.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests build the binary with the go found first on PATH: make it this one.
export PATH := $(patsubst %/,%,$(dir $(GO))):$(PATH)
GOFMT = $(dir $(shell command -v $(GO) 2>/dev/null || echo $(GO)))gofmt
# The version stamped into the binary: the nearest tag, commits since, the revision.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
LDFLAGS = -X main.stampedVersion=$(VERSION)
RACEFLAGS = -race

# Install locations. PREFIX and DESTDIR as usual; the configuration goes to
# /etc/shardlog (under DESTDIR), and is never overwritten.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
UNITDIR = $(DESTDIR)$(PREFIX)/lib/systemd/system
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
CONFDIR = $(DESTDIR)/etc/shardlog

.PHONY: build test demo bench bench-go install

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/shardlog ./cmd/shardlog

# test is what CI runs: formatting, vet, and every test under the race detector.
test:
	@test -x "$(GOFMT)" || { echo "gofmt not found at $(GOFMT)"; exit 1; }
	@test -z "$$($(GOFMT) -l .)" || { echo "gofmt needed:"; $(GOFMT) -l .; exit 1; }
	$(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./... # other architectures build too (the hash's assembly is amd64's)
	GOARCH=386 $(GO) build ./...
	$(GO) test $(RACEFLAGS) -count=1 -timeout 15m ./...
	$(GO) test -count=1 -run 'TestWriterStackStaysSmall' ./writer # stack sizes mean nothing under -race

# demo routes a million generated log lines into ./logs and shows the files.
demo: build
	rm -rf logs
	seq 1000000 | awk '{ printf "2026-11-25T00:00:%02d.%06dZ INFO api req=%d user=u%05d msg=\"request completed\"\n", $$1 % 60, $$1, $$1 * 2654435761 % 4294967296, $$1 % 50000 }' \
	  | ./bin/shardlog run -n 16 -d logs
	wc -l logs/shard-*.log | tail -n 4
	./bin/shardlog which -n 16 -d logs 'hello world'

# bench-go runs the router and writer micro-benchmarks.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./shard ./writer

# bench times shardlog against cat and the Go baselines in bench/baseline
# on BENCH_LINES generated lines (1M, ~165 MB) through a pipe, at N=16 and
# N=1024, and checks every output with bench/check (bench/compare.sh);
# beside the wall ratio it prints each command's CPU-seconds and CPU ratio.
BENCH_LINES ?= 1000000
bench: build
	bench/compare.sh -l $(BENCH_LINES) -n 16 'shardlog=$(CURDIR)/bin/shardlog run -n 16 -d {out}'
	bench/compare.sh -l $(BENCH_LINES) -n 1024 'shardlog=$(CURDIR)/bin/shardlog run -n 1024 -d {out}'

# install installs the binary, the systemd unit (running that binary), the
# example configuration (unless one is there), man pages, and bash, zsh
# and fish completions, and the unit's user (sysusers.d). Then: systemd-sysusers;
# systemctl daemon-reload; systemctl enable --now shardlog.
install: build
	install -d $(BINDIR) $(UNITDIR) $(MANDIR) $(CONFDIR) \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 bin/shardlog $(BINDIR)/shardlog
	sed 's#/usr/local/bin/shardlog#$(PREFIX)/bin/shardlog#' deploy/shardlog.service > $(UNITDIR)/shardlog.service
	chmod 0644 $(UNITDIR)/shardlog.service
	install -D -m 0644 deploy/shardlog.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/shardlog.conf
	@if [ -e $(CONFDIR)/shardlog.yaml ]; then \
	  echo "kept $(CONFDIR)/shardlog.yaml; the example is deploy/shardlog.yaml"; \
	else install -m 0644 deploy/shardlog.yaml $(CONFDIR)/shardlog.yaml; fi
	bin/shardlog man $(MANDIR)
	bin/shardlog completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/shardlog
	bin/shardlog completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_shardlog
	bin/shardlog completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/shardlog.fish
