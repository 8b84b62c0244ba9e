# shardlog's build, test and benchmark entry points. See README.md.

GO ?= go
# The race detector's pointer checks trip over spaolacci/murmur3's unsafe
# word reads; they stay on for everything else.
RACEFLAGS = -race -gcflags=github.com/spaolacci/murmur3=-d=checkptr=0

.PHONY: build test demo bench bench-go

build:
	$(GO) build -o bin/shardlog ./cmd/shardlog

# test is what CI runs: formatting, vet, and every test under the race detector.
test:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test $(RACEFLAGS) -count=1 ./...

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

# bench times shardlog against cat and the baselines in ../shared/bench on
# 1M lines (~180 MB) through a pipe, at N=16 and N=1024.
bench: build
	cd ../shared/bench && ./compare.sh -n 16 'shardlog=$(CURDIR)/bin/shardlog run -n 16 -d {out}'
	cd ../shared/bench && ./compare.sh -n 1024 'shardlog=$(CURDIR)/bin/shardlog run -n 1024 -d {out}'
