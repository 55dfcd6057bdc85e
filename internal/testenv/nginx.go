package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NginxLimitReq is an nginx limit_req on one path and method, keyed on the
// client's address: requests beyond Rate (plus Burst, served at once:
// nodelay) are refused with 503, and nginx's error log says "limiting
// requests, excess: ... by zone".
type NginxLimitReq struct {
	// Path is an exact location ("/login"); Method the method limited
	// ("POST"); the location's other methods pass unlimited.
	Path, Method string
	// Rate is limit_req_zone's rate, e.g. "2r/s" or "30r/m".
	Rate string
	// Burst is limit_req's burst.
	Burst int
}

// NginxOptions configures StartNginx. Upstream is required.
type NginxOptions struct {
	// Upstream is the app server's host:port.
	Upstream string
	// Protocol is how nginx speaks to it: "uwsgi" (uwsgi_pass) or "http"
	// (proxy_pass); empty means http.
	Protocol string
	// ConnectTimeout and ReadTimeout set uwsgi_/proxy_connect_timeout and
	// _read_timeout; 0 keeps nginx's defaults (60 s each).
	ConnectTimeout, ReadTimeout time.Duration
	// LimitReq, when set, rate-limits one path and method.
	LimitReq *NginxLimitReq
	// Dir is where access.log and nginx-error.log go; empty means the
	// server's private temporary directory, removed by Close.
	Dir string
}

// Nginx is a running nginx (Debian's) in front of one app server, with its
// own prefix, configuration, pid file and temporary directories.
type Nginx struct {
	// Host is always 127.0.0.1; Port the port it listens on.
	Host string
	Port int
	// AccessLog is the access log: nginx's combined format followed by
	// rt=$request_time uct=$upstream_connect_time
	// urt=$upstream_response_time (seconds; "-" when nginx answered
	// itself). ErrorLog is the error log, at level warn.
	AccessLog, ErrorLog string
	// ConfigPath is the generated nginx.conf.
	ConfigPath string
	// PID is the master process's id.
	PID int

	closer closer
}

// URL returns http://127.0.0.1:PORT.
func (n *Nginx) URL() string { return "http://" + net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

// Close stops nginx (SIGTERM, its fast shutdown) and removes its private
// directory. It is safe to call more than once.
func (n *Nginx) Close() error { return n.closer.close() }

// NginxInstalled reports whether Debian's nginx is there; the error wraps
// ErrNotInstalled.
func NginxInstalled() error {
	_, err := nginxBinary()
	return err
}

func nginxBinary() (string, error) {
	p, err := findBinary("nginx", "/usr/sbin", "/usr/local/sbin")
	if err != nil {
		return "", fmt.Errorf("nginx: %w (apt-get install nginx)", ErrNotInstalled)
	}
	return p, nil
}

// StartNginx starts nginx on a free loopback port, passing every request to
// opts.Upstream, and returns once it answers (any status: the upstream may
// not be up yet). The caller must Close it.
func StartNginx(ctx context.Context, opts NginxOptions) (_ *Nginx, err error) {
	if opts.Upstream == "" {
		return nil, fmt.Errorf("nginx: no upstream")
	}
	switch opts.Protocol {
	case "", "http", "uwsgi":
	default:
		return nil, fmt.Errorf("nginx: protocol %q (want http or uwsgi)", opts.Protocol)
	}
	bin, err := nginxBinary()
	if err != nil {
		return nil, err
	}
	n := &Nginx{Host: "127.0.0.1"}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	priv, err := os.MkdirTemp("", "stampede-nginx-")
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	n.closer.add(func() error { return os.RemoveAll(priv) })
	// Run as root, nginx's workers run as nobody and must reach the
	// temporary directories (request bodies, buffered responses) in here.
	if err := os.Chmod(priv, 0o755); err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	logs, err := logDir(opts.Dir, priv)
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	n.AccessLog = filepath.Join(logs, "access.log")
	n.ErrorLog = filepath.Join(logs, "nginx-error.log")
	n.ConfigPath = filepath.Join(priv, "nginx.conf")
	// The logs exist before the first line, so a run can follow them from
	// its start.
	for _, p := range []string{n.AccessLog, n.ErrorLog} {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("nginx: %w", err)
		}
		f.Close()
	}
	me := osUser{uid: os.Getuid(), gid: os.Getgid()}
	err = retryBind(func() error {
		port, err := FreePort()
		if err != nil {
			return err
		}
		n.Port = port
		if err := os.WriteFile(n.ConfigPath, []byte(nginxConf(n, priv, opts)), 0o644); err != nil {
			return err
		}
		// -e: the error log from the start, before the configuration is
		// read (else nginx opens its compiled-in /var/log/nginx/error.log).
		proc, err := startProcess("nginx", me, filepath.Join(priv, "nginx.out"), bin,
			"-p", priv, "-c", n.ConfigPath, "-e", n.ErrorLog)
		if err != nil {
			return err
		}
		proc.logPath = n.ErrorLog
		url := n.URL() + "/"
		if err := proc.waitReady(ctx, func(ctx context.Context) error { return answers(ctx, url) }); err != nil {
			proc.stop(syscall.SIGKILL, 5*time.Second)
			return err
		}
		n.PID = proc.PID()
		n.closer.add(func() error {
			if err := proc.stop(syscall.SIGTERM, 10*time.Second); err != nil {
				// The master was killed; its workers share its group.
				_ = syscall.Kill(-n.PID, syscall.SIGKILL)
			}
			return nil
		})
		return nil
	}, bindErr)
	if err != nil {
		return nil, fmt.Errorf("nginx: %w", err)
	}
	return n, nil
}

// answers GETs url and wants any HTTP response.
func answers(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// nginxConf is the whole configuration: one worker, one server on Host:Port
// answering any name, every location passed to the upstream.
func nginxConf(n *Nginx, priv string, o NginxOptions) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Generated by stampede's testenv for one test run.")
	w("daemon off;")
	w("master_process on;")
	w("worker_processes 1;")
	w("pid %s;", filepath.Join(priv, "nginx.pid"))
	w("error_log %s warn;", n.ErrorLog)
	w("events { worker_connections 1024; }")
	w("http {")
	w("    log_format timed '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent '")
	w("                     '\"$http_referer\" \"$http_user_agent\" rt=$request_time uct=$upstream_connect_time urt=$upstream_response_time';")
	w("    access_log %s timed;", n.AccessLog)
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		w("    %s_temp_path %s;", t, filepath.Join(priv, t+"_temp"))
	}
	w("    server_tokens on;")
	w("    keepalive_timeout 65;")
	w("    upstream app { server %s; }", o.Upstream)
	if l := o.LimitReq; l != nil {
		// An empty key is not counted: only the limited method is.
		w("    map $request_method $limited_addr { %s $binary_remote_addr; default \"\"; }", l.Method)
		w("    limit_req_zone $limited_addr zone=login:1m rate=%s;", l.Rate)
	}
	w("    server {")
	w("        listen %s;", net.JoinHostPort(n.Host, strconv.Itoa(n.Port)))
	w("        server_name _;")
	pass := func(indent string) {
		if o.Protocol == "uwsgi" {
			for _, p := range uwsgiParams {
				w("%suwsgi_param %s %s;", indent, p[0], p[1])
			}
			w("%suwsgi_pass app;", indent)
		} else {
			w("%sproxy_set_header Host $host;", indent)
			w("%sproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", indent)
			w("%sproxy_pass http://app;", indent)
		}
		prefix := "proxy"
		if o.Protocol == "uwsgi" {
			prefix = "uwsgi"
		}
		if o.ConnectTimeout > 0 {
			w("%s%s_connect_timeout %dms;", indent, prefix, o.ConnectTimeout.Milliseconds())
		}
		if o.ReadTimeout > 0 {
			w("%s%s_read_timeout %dms;", indent, prefix, o.ReadTimeout.Milliseconds())
		}
	}
	w("        location / {")
	pass("            ")
	w("        }")
	if l := o.LimitReq; l != nil {
		w("        location = %s {", l.Path)
		w("            limit_req zone=login burst=%d nodelay;", l.Burst)
		pass("            ")
		w("        }")
	}
	w("    }")
	w("}")
	return b.String()
}

// uwsgiParams are Debian's /etc/nginx/uwsgi_params, written out so the
// configuration depends on no file outside its prefix.
var uwsgiParams = [][2]string{
	{"QUERY_STRING", "$query_string"},
	{"REQUEST_METHOD", "$request_method"},
	{"CONTENT_TYPE", "$content_type"},
	{"CONTENT_LENGTH", "$content_length"},
	{"REQUEST_URI", "$request_uri"},
	{"PATH_INFO", "$document_uri"},
	{"DOCUMENT_ROOT", "$document_root"},
	{"SERVER_PROTOCOL", "$server_protocol"},
	{"REQUEST_SCHEME", "$scheme"},
	{"HTTPS", "$https if_not_empty"},
	{"REMOTE_ADDR", "$remote_addr"},
	{"REMOTE_PORT", "$remote_port"},
	{"SERVER_PORT", "$server_port"},
	{"SERVER_NAME", "$server_name"},
}
