package main

import (
	"reflect"
	"testing"

	"github.com/spf13/pflag"

	"github.com/shardlog/shardlog/config"
)

// TestFlagDefaultsMatchConfig: the default a flag shows in --help is the
// value shardlog uses when the flag is not given (the configuration's
// default), for every flag of run that sets a key.
func TestFlagDefaultsMatchConfig(t *testing.T) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	runFlags(fs)
	want, err := config.Load("", fs)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if _, ok := config.Flags[f.Name]; !ok || f.DefValue == "" || f.DefValue == "[]" {
			return
		}
		t.Run(f.Name, func(t *testing.T) {
			given := pflag.NewFlagSet("run", pflag.ContinueOnError)
			runFlags(given)
			if err := given.Set(f.Name, f.DefValue); err != nil {
				t.Fatal(err)
			}
			got, err := config.Load("", given)
			if err != nil {
				t.Fatalf("--%s %s: %v", f.Name, f.DefValue, err)
			}
			// Whether the listen address was given is recorded, and
			// meant to differ.
			got.NATS.EmbeddedListenSet = want.NATS.EmbeddedListenSet
			if !reflect.DeepEqual(got, want) {
				t.Errorf("--%s shows default %q, but without the flag the configuration differs", f.Name, f.DefValue)
			}
		})
		checked++
	})
	if checked < 10 {
		t.Fatalf("checked only %d flags", checked)
	}
}
