package lab

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sessionData is what a session holds: the logged-in user.
type sessionData struct {
	UserID   int64
	Username string
}

// sessions stores sessions under 32-character random keys (Django's
// session_key). get returns nil, nil for a missing or expired key.
type sessions interface {
	get(ctx context.Context, key string) (*sessionData, error)
	create(ctx context.Context, d sessionData) (string, error)
	delete(ctx context.Context, key string) error
	count() int
}

func sessionKey() string { return strings.ToLower(randomString(32)) }

// memSessions is Django's cache backend on LocMemCache.
type memSessions struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]memSession
}

type memSession struct {
	d   sessionData
	exp time.Time
}

func newMemSessions(ttl time.Duration) *memSessions {
	return &memSessions{ttl: ttl, m: map[string]memSession{}}
}

func (s *memSessions) get(_ context.Context, key string) (*sessionData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	if time.Now().After(v.exp) {
		delete(s.m, key)
		return nil, nil
	}
	d := v.d
	return &d, nil
}

func (s *memSessions) create(_ context.Context, d sessionData) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sessionKey()
	s.m[k] = memSession{d: d, exp: time.Now().Add(s.ttl)}
	return k, nil
}

func (s *memSessions) delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memSessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// redisSessions is Django's cache session backend on django-redis: one key
// per session with the session's lifetime as TTL.
type redisSessions struct {
	rdb *redis.Client
	ttl time.Duration
}

const redisSessionPrefix = "lab:session:"

func (s redisSessions) get(ctx context.Context, key string) (*sessionData, error) {
	v, err := s.rdb.Get(ctx, redisSessionPrefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("session load: %w", redisErr(err))
	}
	id, name, ok := strings.Cut(v, "|")
	uid, err := strconv.ParseInt(id, 10, 64)
	if !ok || err != nil {
		return nil, nil
	}
	return &sessionData{UserID: uid, Username: name}, nil
}

func (s redisSessions) create(ctx context.Context, d sessionData) (string, error) {
	k := sessionKey()
	v := strconv.FormatInt(d.UserID, 10) + "|" + d.Username
	// SET NX, like Django's cache backend create(), which retries on a clash.
	ok, err := s.rdb.SetNX(ctx, redisSessionPrefix+k, v, s.ttl).Result()
	if err != nil {
		return "", fmt.Errorf("session save: %w", redisErr(err))
	}
	if !ok {
		return "", errors.New("session save: key collision")
	}
	return k, nil
}

func (s redisSessions) delete(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, redisSessionPrefix+key).Err(); err != nil {
		return fmt.Errorf("session delete: %w", err)
	}
	return nil
}

func (s redisSessions) count() int { return -1 }

// redisErr names Redis in a network error of its client, as redis-py's
// exceptions do ("redis.exceptions.TimeoutError"): go-redis returns the bare
// net error ("read tcp …: i/o timeout"), which does not say what timed out.
func redisErr(err error) error {
	if strings.HasPrefix(err.Error(), "redis: ") {
		return err
	}
	return fmt.Errorf("redis: %w", err)
}
