package session

import (
	"context"
	"net/http/httptrace"
	"time"
)

// requestCtx is the context of a Browser's request over a UserTransport:
// the caller's context, the request's deadline and where its phases are
// timed, in one allocation (of 80 bytes) where context.WithTimeout and
// httptrace.WithClientTrace cost six (a timer, a child registered with the
// parent and removed, the trace and its closures) and a lock of the
// parent's a request.
//
// It does not end at its deadline by itself (Done and Err are the
// caller's): UserTransport holds a request to the deadline through the
// connection's deadline, the dialer's and the TLS handshake's, all taken
// from Deadline, and reports one that passed as the context's
// (context.DeadlineExceeded, see userErr). Any other transport gets a
// context.WithTimeout and a trace instead (Browser.Do).
type requestCtx struct {
	context.Context
	deadline time.Time
	ph       directPhases
}

// directPhasesKey is the key of a request's *directPhases.
type directPhasesKey struct{}

// Deadline is the request's, or the caller's when that comes first.
func (c *requestCtx) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Value gives the phases under directPhasesKey, the caller's values else.
func (c *requestCtx) Value(key any) any {
	if key == (directPhasesKey{}) {
		return &c.ph
	}
	return c.Context.Value(key)
}

// directPhases are the phases of a request, as phases, timed by the
// UserTransport on the goroutine of the request itself (so without
// atomics): 0 is a phase not reached.
type directPhases struct {
	dialStart, connDone, wrote, firstByte int64 // unix nanos
	reused                                bool
}

// phasesOf returns the phases to time for a request's context, or nil.
func phasesOf(ctx context.Context) *directPhases {
	ph, _ := ctx.Value(directPhasesKey{}).(*directPhases)
	return ph
}

// now is the time of a phase.
func now() int64 { return time.Now().UnixNano() }

// dialTrace returns ctx with a trace timing the start of a dial's connect
// into ph, as the ConnectStart of phases does (after the name is
// resolved), or ctx as it is when ph is nil.
func dialTrace(ctx context.Context, ph *directPhases) context.Context {
	if ph == nil {
		return ctx
	}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{ConnectStart: func(_, _ string) { ph.dialStart = now() }})
}
