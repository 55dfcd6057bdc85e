//go:build !linux

package evloop

import (
	"context"
	"errors"
	"runtime"
)

// errUnsupported is New on a system without epoll.
var errUnsupported = errors.New("evloop: not supported on " + runtime.GOOS)

// sys is empty where the loop is not implemented.
type sys struct{}

func (sys) wake() {}

// New returns an error: the event loop is implemented on Linux only, and
// the caller keeps its FastClient goroutines elsewhere.
func New(cfg Config) (*Loop, error) {
	if _, err := cfg.validate(); err != nil {
		return nil, err
	}
	return nil, errUnsupported
}

// Run returns an error: see New.
func (l *Loop) Run(ctx context.Context) error { return errUnsupported }

// destSys is empty where the loop is not implemented.
type destSys struct{}

// Dest returns an error: see New.
func (l *Loop) Dest(addr string) (*Dest, error) { return nil, errUnsupported }
