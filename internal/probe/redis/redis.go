// Package redis is the probe of a Redis server: clients, refusals, traffic
// and memory from INFO, and the round trip of a PING.
//
// The probe keeps one connection (CLIENT SETNAME stampede-probe, unless the
// URL names it with client_name), opened by New, so it can still read INFO
// when the server is at maxclients and refuses everyone else; if that
// connection is lost while the server is full, the refusal
// ("max number of clients reached") is the sample's error.
//
// A server that does not answer within the reading's deadline (the
// Sampler's Timeout; paused by CLIENT PAUSE, stopped, swapping) or that
// refuses connections (down, restarting) yields an error at once, without
// retries: the Sampler records it and reads again after its backoff. A
// connection that timed out is dropped; while the server refuses, a new
// one is tried about once a second in the background, so the probe reads
// again within a second or two of the server's return.
//
// Metric keys (source "redis"), as in docs/run-directory.md:
//
//	connected_clients, blocked_clients, maxclients
//	rejected_connections               cumulative
//	rejected_connections_delta         since the previous reading
//	total_connections_received_delta   since the previous reading
//	instantaneous_ops_per_sec, used_memory
//	ping_ms                            round trip of a PING sent after INFO
//	                                   on the same connection, milliseconds
package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-load/stampede"
	"github.com/stampede-load/stampede/internal/probe"
)

var _ probe.Probe = (*Probe)(nil)

// Probe reads a Redis server's INFO. Create it with New.
type Probe struct {
	client   *redis.Client
	password string

	mu   sync.Mutex
	prev map[string]float64 // counters of the last reading
}

// New returns a probe of the server at url ("redis://[:password@]host:port/db").
// Its single connection is dialled at once, in the background, so that it
// exists before a load can fill the server.
func New(url string) (*Probe, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis probe: invalid URL %s", stampede.Redact(url))
	}
	opt.PoolSize = 1
	opt.MinIdleConns = 1 // dialled by NewClient, kept open
	opt.MaxRetries = -1  // a refusal is evidence: report it, do not hide it
	opt.DialerRetries = 1
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.PoolTimeout = 2 * time.Second
	opt.ConnMaxIdleTime = -1 // sampled every second; never idle-closed
	opt.DisableIdentity = true
	if opt.ClientName == "" {
		// As the PostgreSQL probe's application_name: CLIENT LIST shows
		// the probe's connection as name=stampede-probe.
		opt.ClientName = "stampede-probe"
	}
	opt.Dialer = dialRefusal
	opt.ContextTimeoutEnabled = true
	return &Probe{client: redis.NewClient(opt), password: opt.Password}, nil
}

// refusalWait is how long a new connection is watched for a refusal.
const refusalWait = 50 * time.Millisecond

// dialRefusal dials, then waits briefly for a greeting a Redis server never
// sends unless it refuses the client: at maxclients it writes
// "-ERR max number of clients reached" and closes at once. Without this
// the probe's first write would fail with a bare "broken pipe" and the
// reason, which is the evidence, would be lost.
func dialRefusal(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := c.SetReadDeadline(time.Now().Add(refusalWait)); err != nil {
		c.Close()
		return nil, err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if n > 0 {
		c.Close()
		line := strings.TrimSpace(string(buf[:n]))
		if strings.HasPrefix(line, "-") {
			return nil, fmt.Errorf("redis refused the connection: %s", line[1:])
		}
		return nil, fmt.Errorf("redis sent %q before any command", line)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.Close()
		return nil, fmt.Errorf("redis closed the connection at once: %w", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Name returns "redis".
func (p *Probe) Name() string { return "redis" }

// Close closes the connection.
func (p *Probe) Close() error { return p.client.Close() }

// counters are reported as deltas as well.
var counters = []string{"rejected_connections", "total_connections_received"}

// gauges are copied as they are.
var gauges = []string{
	"connected_clients", "blocked_clients", "maxclients", "rejected_connections",
	"instantaneous_ops_per_sec", "used_memory",
}

// Sample runs INFO (its default sections include clients, stats and
// memory).
func (p *Probe) Sample(ctx context.Context, now time.Time) (stampede.Sample, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text, err := p.client.Info(ctx).Result()
	if err != nil {
		return stampede.Sample{}, fmt.Errorf("redis probe: %w", probe.Redacted(err, p.password))
	}
	// INFO made sure the connection exists: the PING's time is the
	// server's round trip, not a dial.
	start := time.Now()
	if err := p.client.Ping(ctx).Err(); err != nil {
		return stampede.Sample{}, fmt.Errorf("redis probe: ping: %w", probe.Redacted(err, p.password))
	}
	ping := time.Since(start)
	info := ParseInfo(text)
	v := map[string]float64{"ping_ms": float64(ping.Microseconds()) / 1000}
	for _, k := range gauges {
		if f, ok := number(info[k]); ok {
			v[k] = f
		}
	}
	cur := map[string]float64{}
	for _, k := range counters {
		if f, ok := number(info[k]); ok {
			cur[k] = f
		}
	}
	if p.prev != nil {
		for k, c := range cur {
			if prev, ok := p.prev[k]; ok {
				v[k+"_delta"] = probe.Delta(c, prev)
			}
		}
	}
	p.prev = cur
	return stampede.Sample{Time: now, Source: "redis", Values: v}, nil
}

// ParseInfo parses the text of INFO: "key:value" lines, grouped under
// "# Section" headers, with CRLF or LF line ends. Headers, blank lines
// and lines without a colon are skipped; for a repeated key, the last wins.
func ParseInfo(text string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		k, val, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		m[k] = val
	}
	return m
}

// number parses a numeric INFO value.
func number(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}
