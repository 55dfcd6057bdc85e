//go:build race

package lab

// raceEnabled tells load tests that the race detector slows CPU-bound work
// (PBKDF2 runs about 18 times slower), so work factors are scaled down.
const raceEnabled = true
