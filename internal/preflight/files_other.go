//go:build !unix

package preflight

import "errors"

// readFiles returns nil: there is no RLIMIT_NOFILE.
func readFiles() *Files { return nil }

// RaiseFiles is not supported here.
func RaiseFiles() (uint64, error) { return 0, errors.New("no open-files limit on this system") }
