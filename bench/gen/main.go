// Command gen writes deterministic log-like lines (about 165 bytes each)
// for shardlog's benchmarks, in logfmt or, with -json, as JSON objects
// with the same fields (the user in "user", for --key json:user):
//
//	go run ./bench/gen -lines 1000000 > /tmp/input.log
//	go run ./bench/gen -json -lines 2000000 > /tmp/input.json
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
)

func main() {
	lines := flag.Int("lines", 1_000_000, "lines to write")
	json := flag.Bool("json", false, "write JSON objects instead of logfmt")
	flag.Parse()
	format := "2026-11-25T%02d:%02d:%02d.%06dZ %-5s svc=api-%d req=%016x user=u%05d method=GET path=%s status=%d bytes=%d dur_ms=%d msg=\"request completed\"\n"
	if *json {
		format = `{"ts":"2026-11-25T%02d:%02d:%02d.%06dZ","level":"%s","svc":"api-%d","req":"%016x","user":"u%d","method":"GET","path":"%s","status":%d,"bytes":%d,"dur_ms":%d}` + "\n"
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	levels := []string{"INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR"}
	paths := []string{"/api/v1/orders", "/api/v1/users", "/health", "/api/v2/search", "/static/app.js"}
	x := uint64(88172645463325252)
	for i := range *lines {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		fmt.Fprintf(w, format,
			i/3600000%24, i/60000%60, i/1000%60, i%1000*1000, levels[x%6], x>>8%8, x, x>>16%50000, paths[x>>24%5],
			[]int{200, 200, 200, 404, 500}[x>>32%5], x>>40%65536, x>>48%1000)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
