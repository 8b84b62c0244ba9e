package main

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/cluster"
	"github.com/shardlog/shardlog/config"
	"github.com/shardlog/shardlog/publish"
)

// TestRouteFlagDefaults: the default each of route's flags shows in --help
// is the configuration's default, and cluster.max_pending's is the
// publisher's own default window.
func TestRouteFlagDefaults(t *testing.T) {
	fs := pflag.NewFlagSet("route", pflag.ContinueOnError)
	routeFlags(fs)
	want, err := config.Load("", fs)
	if err != nil {
		t.Fatal(err)
	}
	if want.Cluster.MaxPending != publish.DefaultWindow {
		t.Errorf("cluster.max_pending default %d, publish.DefaultWindow %d", want.Cluster.MaxPending, publish.DefaultWindow)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := config.Flags[f.Name]; !ok || f.DefValue == "" || f.DefValue == "[]" {
			return
		}
		given := pflag.NewFlagSet("route", pflag.ContinueOnError)
		routeFlags(given)
		if err := given.Set(f.Name, f.DefValue); err != nil {
			t.Fatal(err)
		}
		got, err := config.Load("", given)
		if err != nil {
			t.Fatalf("--%s %s: %v", f.Name, f.DefValue, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("route --%s shows default %q, but without the flag the configuration differs", f.Name, f.DefValue)
		}
	})
}

// TestRouteWindow checks that cluster.max_pending, given as --max-pending,
// is the window of route's publisher, and that the layout names its
// shards and subjects.
func TestRouteWindow(t *testing.T) {
	for _, w := range []string{"1", "7", "4096"} {
		fs := pflag.NewFlagSet("route", pflag.ContinueOnError)
		routeFlags(fs)
		if err := fs.Set("max-pending", w); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load("", fs)
		if err != nil {
			t.Fatal(err)
		}
		o := publishOptions(cfg, &cluster.Layout{N: 5, Prefix: "app.logs"}, nil, nil, nil)
		if got := o.Window; got != cfg.Cluster.MaxPending || got == 0 {
			t.Errorf("--max-pending %s: window %d", w, got)
		}
		if o.Shards != 5 || o.Prefix != "app.logs" {
			t.Errorf("publisher for 5 shards under app.logs: %+v", o)
		}
	}
}
