package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures StartRedis. The zero value is valid: Redis'
// defaults (maxclients 10000) without persistence.
type RedisOptions struct {
	// MaxClients sets maxclients; 0 keeps the default (10000).
	MaxClients int
	// Settings are further options (name → value), passed as --name value.
	Settings map[string]string
	// Dir is where the log file goes; empty means the server's private
	// temporary directory, removed by Close.
	Dir string
	// Port is the port to listen on, to start a server again where a
	// stopped one listened; 0 picks a free port.
	Port int
}

// RedisServer is a running redis-server.
type RedisServer struct {
	// Host is always 127.0.0.1.
	Host string
	// Port is the TCP port.
	Port int
	// LogPath is the server's log.
	LogPath string
	// PID is the process id.
	PID int

	d      daemon
	closer closer
}

// URL returns the server's URL, database 0 ("redis://127.0.0.1:PORT/0").
func (r *RedisServer) URL() string { return "redis://" + r.Addr() + "/0" }

// Addr returns host:port.
func (r *RedisServer) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// Close stops the server and removes its private directory. It is safe to
// call more than once.
func (r *RedisServer) Close() error { return r.closer.close() }

// Kill kills redis-server with SIGKILL: every connection drops and, with
// persistence off, every key is lost. It waits until the process has
// exited. Restart starts it again.
func (r *RedisServer) Kill() error { return r.d.signal(syscall.SIGKILL, 10*time.Second) }

// Restart starts redis-server again after Kill, on the same port with the
// same settings, appending to the same log, and waits until it answers
// PING. It starts empty. PID is the new process's.
func (r *RedisServer) Restart(ctx context.Context) error {
	pid, err := r.d.restart(ctx)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	r.PID = pid
	return nil
}

// StartRedis starts redis-server on a free loopback port, with no RDB or AOF
// persistence. The caller must Close it.
func StartRedis(ctx context.Context, opts RedisOptions) (_ *RedisServer, err error) {
	bin, err := findBinary("redis-server", "/usr/bin", "/usr/local/bin")
	if err != nil {
		return nil, err
	}
	r := &RedisServer{Host: "127.0.0.1"}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	priv, err := os.MkdirTemp("", "stampede-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	r.closer.add(func() error { return os.RemoveAll(priv) })
	logs, err := logDir(opts.Dir, priv)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	r.LogPath = filepath.Join(logs, "redis.log")
	// Redis runs as whoever starts it, root included.
	me := osUser{uid: os.Getuid(), gid: os.Getgid()}
	err = retryBind(func() error {
		port := opts.Port
		if port == 0 {
			if port, err = FreePort(); err != nil {
				return err
			}
		}
		r.Port = port
		args := []string{
			"--port", strconv.Itoa(port), "--bind", r.Host,
			"--save", "", "--appendonly", "no",
			"--dir", priv, "--logfile", r.LogPath, "--daemonize", "no",
		}
		if opts.MaxClients > 0 {
			args = append(args, "--maxclients", strconv.Itoa(opts.MaxClients))
		}
		for _, k := range sortedKeys(opts.Settings) {
			args = append(args, "--"+k, opts.Settings[k])
		}
		// stdout/stderr catch what happens before the logfile is opened.
		proc, err := startProcess("redis-server", me, filepath.Join(priv, "stderr.log"), bin, args...)
		if err != nil {
			return err
		}
		proc.logPath = r.LogPath
		r.d.ready = func(ctx context.Context) error {
			c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DisableIdentity: true, Protocol: 2})
			defer c.Close()
			return c.Ping(ctx).Err()
		}
		if err := proc.waitReady(ctx, r.d.ready); err != nil {
			proc.stop(syscall.SIGKILL, 5*time.Second)
			return err
		}
		r.d.proc = proc
		r.PID = proc.PID()
		// SIGTERM: Redis exits (it would save first, but saving is off).
		r.closer.add(func() error { return r.d.signal(syscall.SIGTERM, 10*time.Second) })
		return nil
	}, bindErr)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return r, nil
}
