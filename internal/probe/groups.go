package probe

import "strings"

// The process groups of the "cpu_pct:GROUP" keys: who burns the CPU. The
// host probe puts every process of /proc in exactly one; the Prometheus
// probe maps process-exporter's groups onto them (docs/run-directory.md).
const (
	GroupPostgres  = "postgres"  // the postmaster and every backend
	GroupPgBouncer = "pgbouncer" // PgBouncer
	GroupRedis     = "redis"     // redis-server (and Valkey, KeyDB)
	GroupNginx     = "nginx"     // proxies in front of the application
	GroupHAProxy   = "haproxy"
	GroupEnvoy     = "envoy"
	GroupApp       = "app"      // the application: its server and runtime
	GroupStampede  = "stampede" // stampede itself and its children
	GroupOther     = "other"    // everything else
	// GroupBackground is the processes of no other group running at a
	// lower priority (nice > 0: a build, a backup, a batch job): they
	// take only the cycles nobody else wants, so they never compete with
	// the target for the CPU.
	GroupBackground = "background"
)

// Groups lists every group, in the order reports show them.
var Groups = []string{GroupPostgres, GroupPgBouncer, GroupRedis, GroupNginx, GroupHAProxy, GroupEnvoy,
	GroupApp, GroupStampede, GroupOther, GroupBackground}

// commRule matches a command name: name itself, or name followed by a
// separator (" ", ":", "[", "(", "/": "puma 6.4.2 (tcp", "unicorn worker[0"),
// or with prefix set name followed by anything ("python3.11", "php-fpm8.2",
// "PassengerAgent").
type commRule struct {
	name, group string
	prefix      bool
}

// commRules are the command names CommGroup knows. A command name (the
// comm of /proc/PID/stat) is the executable's base name, or a script's for
// a "#!" script (gunicorn, uvicorn, bundle), at most 15 bytes, unless the
// process renamed itself (Ruby's $0, PostgreSQL's backends do not).
var commRules = []commRule{
	{name: "postgres", group: GroupPostgres},
	{name: "postmaster", group: GroupPostgres},
	{name: "pgbouncer", group: GroupPgBouncer},
	{name: "redis-server", group: GroupRedis},
	{name: "redis-sentinel", group: GroupRedis},
	{name: "valkey-server", group: GroupRedis},
	{name: "keydb-server", group: GroupRedis},
	{name: "nginx", group: GroupNginx},
	{name: "openresty", group: GroupNginx},
	{name: "haproxy", group: GroupHAProxy},
	{name: "envoy", group: GroupEnvoy},

	// Application servers and the runtimes they run in. Apache's httpd
	// runs the application itself under mod_php or mod_wsgi.
	{name: "gunicorn", group: GroupApp},
	{name: "uwsgi", group: GroupApp},
	{name: "uvicorn", group: GroupApp},
	{name: "hypercorn", group: GroupApp},
	{name: "daphne", group: GroupApp},
	{name: "granian", group: GroupApp},
	{name: "waitress-serve", group: GroupApp},
	{name: "manage.py", group: GroupApp},
	{name: "celery", group: GroupApp},
	{name: "python", group: GroupApp, prefix: true},
	{name: "puma", group: GroupApp},
	{name: "unicorn", group: GroupApp},
	{name: "passenger", group: GroupApp, prefix: true},
	{name: "ruby", group: GroupApp, prefix: true},
	{name: "bundle", group: GroupApp},
	{name: "rails", group: GroupApp},
	{name: "rackup", group: GroupApp},
	{name: "thin", group: GroupApp},
	{name: "falcon", group: GroupApp},
	{name: "sidekiq", group: GroupApp},
	{name: "node", group: GroupApp},
	{name: "nodejs", group: GroupApp},
	{name: "deno", group: GroupApp},
	{name: "bun", group: GroupApp},
	{name: "java", group: GroupApp},
	{name: "dotnet", group: GroupApp},
	{name: "php-fpm", group: GroupApp, prefix: true},
	{name: "php", group: GroupApp, prefix: true},
	{name: "frankenphp", group: GroupApp},
	{name: "httpd", group: GroupApp},
	{name: "apache2", group: GroupApp},
	{name: "beam.smp", group: GroupApp},
	{name: "perl", group: GroupApp},
	{name: "starman", group: GroupApp},
	{name: "plackup", group: GroupApp},
}

// CommGroup returns the group of a process by its command name, compared
// without case: GroupPostgres for "postgres" and "postmaster",
// GroupPgBouncer, GroupRedis for "redis-server", GroupNginx, GroupHAProxy
// and GroupEnvoy for the proxies, GroupApp for a known application server
// or language runtime (gunicorn, uwsgi, puma, unicorn, passenger, ruby,
// python3, node, java, php-fpm, dotnet, uvicorn, ...), and GroupOther for
// anything else. Whether a process is the target's or stampede's is the
// caller's to know.
func CommGroup(comm string) string {
	for _, r := range commRules {
		if len(comm) < len(r.name) || !strings.EqualFold(comm[:len(r.name)], r.name) {
			continue
		}
		if r.prefix || len(comm) == len(r.name) {
			return r.group
		}
		switch comm[len(r.name)] {
		case ' ', ':', '[', '(', '/':
			return r.group
		}
	}
	return GroupOther
}
