//go:build race

package rawio

// raceEnabled: built with -race.
const raceEnabled = true
