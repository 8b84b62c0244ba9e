//go:build race

package shard

// raceEnabled reports a build with the race detector, which does not see
// the reads of assembly: sum32x8 then reads its lines in Go as well.
const raceEnabled = true
