package probe_test

import (
	"testing"

	"github.com/stampede-load/stampede/internal/probe"
)

func TestCommGroup(t *testing.T) {
	tests := []struct{ comm, want string }{
		{"postgres", "postgres"},
		{"postmaster", "postgres"},
		{"pgbouncer", "pgbouncer"},
		{"redis-server", "redis"},
		{"valkey-server", "redis"},
		{"nginx", "nginx"},
		{"haproxy", "haproxy"},
		{"envoy", "envoy"},
		{"gunicorn", "app"},
		{"uwsgi", "app"},
		{"python3", "app"},
		{"python3.11", "app"},
		{"puma 6.4.2 (tcp", "app"}, // Ruby's $0 renames the process
		{"unicorn worker[", "app"},
		{"PassengerAgent", "app"},
		{"Passenger core", "app"},
		{"ruby3.1", "app"},
		{"php-fpm8.2", "app"},
		{"node", "app"},
		{"java", "app"},
		{"dotnet", "app"},
		{"bundle", "app"},
		{"node_exporter", "other"}, // not node
		{"postgres_export", "other"},
		{"nginx-prometheu", "other"},
		{"redis-cli", "other"},
		{"gunicornish", "other"},
		{"bash", "other"},
		{"kworker/0:1-eve", "other"},
		{"stampede", "other"}, // stampede's own is known by pid, not name
		{"", "other"},
	}
	for _, tt := range tests {
		if got := probe.CommGroup(tt.comm); got != tt.want {
			t.Errorf("CommGroup(%q) = %q, want %q", tt.comm, got, tt.want)
		}
	}
}
