package config

import "github.com/shardlog/shardlog/shard"

// StdinModes returns the values of stdin.
func StdinModes() []StdinMode { return []StdinMode{StdinAuto, StdinOn, StdinOff} }

// SyncModes returns the values of sync.
func SyncModes() []SyncMode { return []SyncMode{SyncNone, SyncInterval, SyncBatch} }

// Compressions returns the values of rotate.compress.
func Compressions() []Compression { return []Compression{CompressNone, CompressGzip, CompressZstd} }

// LogFormats returns the values of log.format.
func LogFormats() []LogFormat { return []LogFormat{LogText, LogJSON} }

// LogLevels returns the values of log.level, most verbose first.
func LogLevels() []LogLevel { return []LogLevel{"debug", "info", "warn", "error"} }

// Choices returns the values key takes when it takes one of a few (for
// routing.key, its forms, such as "json:" to which a field name is
// added), for shell completion and documentation; nil for other keys.
// Load accepts exactly these, so the two cannot drift apart.
func Choices(key string) []string {
	switch key {
	case "stdin":
		return strs(StdinModes())
	case "sync":
		return strs(SyncModes())
	case "rotate.compress":
		return strs(Compressions())
	case "log.format":
		return strs(LogFormats())
	case "log.level":
		return strs(LogLevels())
	case "routing.key":
		return shard.KeyForms()
	}
	return nil
}

// strs converts values of a string type to strings.
func strs[T ~string](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}
