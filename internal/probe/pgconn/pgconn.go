// Package pgconn holds the one connection a PostgreSQL-protocol probe
// (PostgreSQL itself, PgBouncer's admin console) keeps between readings:
// made on first use and dropped after any failure, so the next reading
// connects again.
package pgconn

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Conn is a probe's lazily made connection. It is not safe for concurrent
// use: the probe serialises its readings.
type Conn struct {
	cfg  *pgx.ConnConfig
	conn *pgx.Conn
}

// New returns a Conn that will connect with cfg.
func New(cfg *pgx.ConnConfig) *Conn { return &Conn{cfg: cfg} }

// Config is the connection's configuration (its Password is what error
// texts must not show).
func (c *Conn) Config() *pgx.ConnConfig { return c.cfg }

// Get returns the open connection, connecting first if there is none.
func (c *Conn) Get(ctx context.Context) (*pgx.Conn, error) {
	if c.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, c.cfg)
		if err != nil {
			return nil, err
		}
		c.conn = conn
	}
	return c.conn, nil
}

// Reset drops the connection after a failed reading, whatever went wrong,
// so the next Get starts from a fresh one.
func (c *Conn) Reset() {
	if c.conn != nil {
		_ = c.conn.Close(context.Background())
		c.conn = nil
	}
}

// Close closes the connection, waiting at most two seconds.
func (c *Conn) Close() error {
	if c.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := c.conn.Close(ctx)
	c.conn = nil
	return err
}
