// Package probe samples server-side sources (PostgreSQL, PgBouncer, Redis,
// the host) while a run goes on. A Probe reads one source; a Sampler reads
// every probe once per interval and emits the readings in time order. A
// source that cannot be read yields a Sample with Err set, because a refusal
// is evidence too, and is retried with exponential backoff; the run goes on.
//
// The probes live in subpackages, one per outside dependency: probe/postgres,
// probe/pgbouncer, probe/redis, probe/host and probe/prometheus (exporters'
// metrics standing in for the others when the servers are out of reach).
// Their metric keys are the contract of docs/run-directory.md. A probe whose
// one reading covers several sources (a Prometheus endpoint exporting a
// host's and PostgreSQL's metrics) implements MultiProbe.
package probe

import (
	"context"
	"strings"
	"time"

	"github.com/stampede-load/stampede"
)

// Probe reads one source. Sample is called by one goroutine at a time;
// Close is called once, after the last Sample.
type Probe interface {
	// Name is the source name written in Sample.Source ("postgres").
	Name() string
	// Sample takes one reading at now. Counters that only make sense as
	// deltas are reported from the second successful reading on. An error
	// means the source could not be read; it must not contain secrets.
	Sample(ctx context.Context, now time.Time) (stampede.Sample, error)
	// Close releases the probe's connections.
	Close() error
}

// MultiProbe is a Probe whose one reading covers several sources. The
// Sampler calls SampleAll instead of Sample and emits every sample it
// returns, in order.
type MultiProbe interface {
	Probe
	// SampleAll takes one reading at now and returns one Sample per
	// source, each with its Source set; a sample whose Err is already set
	// says that source could not be read while the others could (no
	// backoff). On error the samples returned name the sources the
	// failure stands for (the Sampler sets their Err); with none, the
	// failure is reported under Name().
	SampleAll(ctx context.Context, now time.Time) ([]stampede.Sample, error)
}

// ErrText returns err's message with every DSN/URL password and every
// secret given replaced by "xxxxx", for Sample.Err.
func ErrText(err error, secrets ...string) string {
	s := err.Error()
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "xxxxx")
		}
	}
	// Redact handles one URL; an error may quote several.
	var b strings.Builder
	for i, w := range strings.Split(s, " ") {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(stampede.Redact(w))
	}
	return b.String()
}

// Redacted returns err with the message of ErrText(err, secrets...), still
// wrapping err so that errors.Is and errors.As (a *pgconn.PgError's SQLSTATE)
// see through it. It returns nil for a nil err.
func Redacted(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return &redacted{msg: ErrText(err, secrets...), err: err}
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Delta returns cur-prev for a cumulative counter, or cur when the counter
// went backwards (the server restarted or its statistics were reset).
func Delta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}
