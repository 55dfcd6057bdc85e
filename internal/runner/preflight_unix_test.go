//go:build unix

package runner

import (
	"bytes"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// A soft open-files limit below the run's need is raised to the hard
// limit, in one line.
func TestCheckMachineRaisesFiles(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Skip(err)
	}
	if orig.Max < 2000 {
		t.Skipf("hard limit %d", orig.Max)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = 500
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	var notes bytes.Buffer
	if err := checkMachine(quick(t, "http://127.0.0.1:1/", 1000, ""), Options{}, &notes); err != nil {
		t.Fatal(err)
	}
	var now syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &now); err != nil || now.Cur != orig.Max {
		t.Errorf("soft limit %d after the preflight, want the hard limit %d (%v)", now.Cur, orig.Max, err)
	}
	want := fmt.Sprintf("stampede: open files: soft limit raised from 500 to %d (the hard limit); this run may hold 1064\n", orig.Max)
	if notes.String() != want {
		t.Errorf("notes %q, want %q", notes.String(), want)
	}
	// Under the soft limit: nothing said.
	notes.Reset()
	if err := checkMachine(quick(t, "http://127.0.0.1:1/", 10, ""), Options{}, &notes); err != nil || strings.TrimSpace(notes.String()) != "" {
		t.Errorf("10 users: %v, notes %q", err, notes.String())
	}
}
