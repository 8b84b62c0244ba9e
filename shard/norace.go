//go:build !race

package shard

// raceEnabled reports a build with the race detector (see race.go).
const raceEnabled = false
