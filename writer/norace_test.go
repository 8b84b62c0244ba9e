//go:build !race

package writer

// raceBuild says whether the tests run under the race detector.
const raceBuild = false
