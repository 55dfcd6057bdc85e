//go:build unix

package preflight

import "syscall"

// readFiles returns the process's RLIMIT_NOFILE, nil if it cannot be read.
func readFiles() *Files {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return nil
	}
	return &Files{Cur: uint64(r.Cur), Max: uint64(r.Max)}
}

// RaiseFiles raises the soft open-files limit to the hard limit and
// returns it.
func RaiseFiles() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return uint64(r.Cur), nil
}
