package lab

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// rate is one allauth rate: amount per duration, per ip, key or user.
type rate struct {
	amount   int
	duration time.Duration
	per      string
}

// parseRates parses allauth's syntax: "10/m/ip,5/300s/key". The duration is
// s, m, h, d or a number with one of those units (300s, 5m).
func parseRates(spec string) ([]rate, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	var rates []rate
	for _, part := range strings.Split(spec, ",") {
		f := strings.Split(strings.TrimSpace(part), "/")
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("rate %q: want AMOUNT/DURATION/PER", part)
		}
		amount, err := strconv.Atoi(f[0])
		if err != nil || amount < 0 {
			return nil, fmt.Errorf("rate %q: bad amount", part)
		}
		d, err := parseRateDuration(f[1])
		if err != nil {
			return nil, fmt.Errorf("rate %q: %w", part, err)
		}
		per := "ip"
		if len(f) == 3 {
			per = f[2]
		}
		switch per {
		case "ip", "key", "user":
		default:
			return nil, fmt.Errorf("rate %q: per %q: want ip, key or user", part, per)
		}
		rates = append(rates, rate{amount: amount, duration: d, per: per})
	}
	return rates, nil
}

func parseRateDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}
	u, ok := units[s[len(s)-1]]
	if !ok {
		return 0, fmt.Errorf("duration %q: unit must be s, m, h or d", s)
	}
	n := 1
	if len(s) > 1 {
		v, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || v <= 0 {
			return 0, fmt.Errorf("duration %q: bad number", s)
		}
		n = v
	}
	return time.Duration(n) * u, nil
}

// history is where rate-limit usage lives: allauth keeps, per cache key, the
// times of the attempts within the rate's duration.
type history interface {
	// add records an attempt under key unless amount attempts already lie
	// within d; it returns an id for remove and whether the attempt was allowed.
	add(ctx context.Context, key string, amount int, d time.Duration) (id string, ok bool, err error)
	// remove takes a recorded attempt back.
	remove(ctx context.Context, key, id string) error
}

// limiter applies allauth's actions.
type limiter struct {
	h     history
	rates map[string][]rate
}

// usage is what one consume call recorded, for rollback after a success.
type usage struct {
	l       *limiter
	entries [][2]string
}

// consume charges one attempt of action for the client ip and key, rate by
// rate in order as allauth does (a failed rate leaves the earlier ones
// charged). It reports whether every rate allowed it.
func (l *limiter) consume(ctx context.Context, action, ip, key string) (*usage, bool, error) {
	u := &usage{l: l}
	for _, r := range l.rates[action] {
		var subject string
		switch r.per {
		case "ip":
			subject = ip
		default: // key, user
			if key == "" {
				continue
			}
			subject = key
		}
		k := "allauth:rl:" + action + ":" + r.per + ":" + r.duration.String() + ":" + subject
		id, ok, err := l.h.add(ctx, k, r.amount, r.duration)
		if err != nil {
			return u, false, fmt.Errorf("rate limit %s: %w", action, err)
		}
		if !ok {
			return u, false, nil
		}
		u.entries = append(u.entries, [2]string{k, id})
	}
	return u, true, nil
}

// rollback takes back what consume charged, as allauth does for
// login_failed after a successful login.
func (u *usage) rollback(ctx context.Context) error {
	for _, e := range u.entries {
		if err := u.l.h.remove(ctx, e[0], e[1]); err != nil {
			return fmt.Errorf("rate limit rollback: %w", err)
		}
	}
	u.entries = nil
	return nil
}

// memHistory keeps the histories in process (Django's LocMemCache).
type memHistory struct {
	mu   sync.Mutex
	seq  int64
	hist map[string][]memEntry
}

type memEntry struct {
	id string
	at time.Time
}

func newMemHistory() *memHistory { return &memHistory{hist: map[string][]memEntry{}} }

func (m *memHistory) add(_ context.Context, key string, amount int, d time.Duration) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	h := m.hist[key]
	kept := h[:0]
	for _, e := range h {
		if now.Sub(e.at) < d {
			kept = append(kept, e)
		}
	}
	if len(kept) >= amount {
		m.hist[key] = kept
		return "", false, nil
	}
	m.seq++
	id := strconv.FormatInt(m.seq, 10)
	m.hist[key] = append(kept, memEntry{id: id, at: now})
	return id, true, nil
}

func (m *memHistory) remove(_ context.Context, key, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hist[key]
	for i, e := range h {
		if e.id == id {
			m.hist[key] = append(h[:i], h[i+1:]...)
			break
		}
	}
	return nil
}

// redisHistory keeps the histories in Redis sorted sets, so every login
// attempt is a Redis round trip as with allauth on a Redis cache.
type redisHistory struct{ rdb *redis.Client }

var rateScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local dur = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - dur)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], dur)
return 1`)

func (r redisHistory) add(ctx context.Context, key string, amount int, d time.Duration) (string, bool, error) {
	id := randomString(16)
	n, err := rateScript.Run(ctx, r.rdb, []string{key}, time.Now().UnixMilli(), d.Milliseconds(), amount, id).Int()
	if err != nil {
		return "", false, err
	}
	return id, n == 1, nil
}

func (r redisHistory) remove(ctx context.Context, key, id string) error {
	return r.rdb.ZRem(ctx, key, id).Err()
}
