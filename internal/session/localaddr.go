package session

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// newDialer returns the dialer of a transport's connections.
func newDialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
}

// dialMapped returns a DialContext that dials with d the address hosts maps
// each address to.
func dialMapped(d *net.Dialer, hosts Hosts) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, hosts.Map(addr))
	}
}

// bindDialer makes d dial from the source address from; the zero Addr
// leaves the choice to the system.
func bindDialer(d *net.Dialer, from netip.Addr) {
	if !from.IsValid() {
		return
	}
	d.LocalAddr = &net.TCPAddr{IP: from.AsSlice(), Zone: from.Zone()}
	d.Control = bindNoPort
}

// NewTransportFrom is NewTransport with every connection dialled from the
// source address from (any when from is the zero Addr): the users given one
// address share a transport, so a kept-alive connection is only ever
// reused by a user of its address.
func NewTransportFrom(from netip.Addr, maxConns int, insecure bool, hosts Hosts) *http.Transport {
	t := NewTransport(maxConns, insecure, hosts)
	if !from.IsValid() {
		return t
	}
	d := newDialer()
	bindDialer(d, from)
	t.DialContext = dialMapped(d, hosts)
	return t
}

// BindTo makes the client dial its connections from the source address
// from; the zero Addr leaves the choice to the system. It takes effect at
// the next dial.
func (c *FastClient) BindTo(from netip.Addr) { bindDialer(&c.dialer, from) }
