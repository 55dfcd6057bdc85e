package har

import (
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"
)

// The groups of entries a scenario leaves out, as the output counts them.
const (
	LeftStatic         = "static assets"
	LeftThirdParty     = "third-party"
	LeftPreflight      = "preflights"
	LeftBeacon         = "beacons and analytics"
	LeftServiceWorker  = "service worker"
	LeftFavicon        = "favicons"
	LeftWebSocket      = "websockets"
	LeftNotAnswered    = "not answered (blocked, cancelled or failed)"
	LeftNotHTTP        = "not HTTP (data:, blob:, extensions)"
	LeftAfterLogout    = "the logout and what followed it"
	LeftBeforeDocument = "before the first page"
)

// FilterOptions say what to keep. The zero value is valid.
type FilterOptions struct {
	// Origin is the target's origin (scheme://host[:port]); "" picks the
	// origin of the recording's pages.
	Origin string
	// KeepStatic keeps the target's own static assets (as a browser
	// would load them) instead of leaving them out.
	KeepStatic bool
}

// Filtered is what a load needs of a recording.
type Filtered struct {
	// Origin is the target's origin.
	Origin string
	// Kept are the entries a scenario is made of, in order.
	Kept []*Entry
	// All are the recording's entries on the target's origin, kept or
	// not, in order: the correlation looks for values in their responses
	// too.
	All []*Entry
	// LeftOut counts the entries left out by group (LeftStatic, ...).
	LeftOut map[string]int
	// ThirdParty counts the third-party requests by host.
	ThirdParty map[string]int
}

// OriginsError says that the recording's pages come from several origins,
// any of which could be the target.
type OriginsError struct {
	// Origins are the candidate origins with their request counts, most
	// requests first.
	Origins []OriginCount
}

// OriginCount is an origin and how many requests the recording made to it.
type OriginCount struct {
	Origin   string
	Requests int
}

func (e *OriginsError) Error() string {
	parts := make([]string, len(e.Origins))
	for i, o := range e.Origins {
		parts[i] = fmt.Sprintf("%s (%d requests)", o.Origin, o.Requests)
	}
	return "the recording's pages come from several origins: " + strings.Join(parts, ", ") + "; say which is the target with --origin"
}

// Filter keeps the entries a load needs: the requests to the target's
// origin that a person's browser made for the application, leaving out
// (and counting) static assets, third-party hosts, preflights, beacons and
// analytics, service workers, favicons, websockets and requests that got
// no answer.
func Filter(l *Log, o FilterOptions) (*Filtered, error) {
	f := &Filtered{LeftOut: map[string]int{}, ThirdParty: map[string]int{}}
	if o.Origin != "" {
		u, err := url.Parse(o.Origin)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://shop.example.com", o.Origin)
		}
		f.Origin = Origin(u)
	} else {
		origin, err := pickOrigin(l)
		if err != nil {
			return nil, err
		}
		f.Origin = origin
	}
	seenTarget := false
	for _, e := range l.Entries {
		group := leaveOut(e, f.Origin, o.KeepStatic)
		if Origin(e.Request.URL) == f.Origin {
			f.All = append(f.All, e)
		}
		switch {
		case group == LeftThirdParty:
			f.ThirdParty[strings.ToLower(e.Request.URL.Hostname())]++
			f.LeftOut[group]++
		case group != "":
			f.LeftOut[group]++
		default:
			if !seenTarget && !IsDocument(e) && len(f.Kept) == 0 && hasDocument(l, f.Origin) {
				// A request before the first page (a prefetch, a
				// service worker's update) is no part of the visit.
				f.LeftOut[LeftBeforeDocument]++
				continue
			}
			seenTarget = true
			f.Kept = append(f.Kept, e)
		}
	}
	if len(f.Kept) == 0 {
		return f, fmt.Errorf("no request to %s is left once static assets, third parties and the browser's own requests are left out (is --origin right? --keep-static keeps the assets)", f.Origin)
	}
	return f, nil
}

func hasDocument(l *Log, origin string) bool {
	for _, e := range l.Entries {
		if IsDocument(e) && Origin(e.Request.URL) == origin {
			return true
		}
	}
	return false
}

// pickOrigin returns the origin of the recording's pages; several are an
// *OriginsError.
func pickOrigin(l *Log) (string, error) {
	counts := map[string]int{}
	for _, e := range l.Entries {
		if isHTTP(e.Request.URL) {
			counts[Origin(e.Request.URL)]++
		}
	}
	cands := map[string]bool{}
	for _, e := range l.Entries {
		if isHTTP(e.Request.URL) && IsDocument(e) && e.Response.Status != 0 && !isFrame(e) {
			cands[Origin(e.Request.URL)] = true
		}
	}
	if len(cands) == 0 {
		// No page: an API recording. Its origins are those of its
		// requests that are not static assets.
		for _, e := range l.Entries {
			if isHTTP(e.Request.URL) && !isStatic(e) && e.Response.Status != 0 && !isBeacon(e, "") {
				cands[Origin(e.Request.URL)] = true
			}
		}
	}
	switch len(cands) {
	case 0:
		return "", fmt.Errorf("no HTTP request in the recording")
	case 1:
		for o := range cands {
			return o, nil
		}
	}
	oe := &OriginsError{}
	for o := range cands {
		oe.Origins = append(oe.Origins, OriginCount{o, counts[o]})
	}
	sort.Slice(oe.Origins, func(i, j int) bool {
		a, b := oe.Origins[i], oe.Origins[j]
		if a.Requests != b.Requests {
			return a.Requests > b.Requests
		}
		return a.Origin < b.Origin
	})
	return "", oe
}

func isHTTP(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return (s == "http" || s == "https") && u.Host != ""
}

// leaveOut returns the group an entry is left out in, "" to keep it.
func leaveOut(e *Entry, origin string, keepStatic bool) string {
	u := e.Request.URL
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "ws" || scheme == "wss" || e.ResourceType == "websocket" ||
		strings.EqualFold(e.Request.Headers.Get("Upgrade"), "websocket") || e.Response.Status == 101:
		return LeftWebSocket
	case !isHTTP(u):
		return LeftNotHTTP
	case e.Response.Status == 0:
		return LeftNotAnswered
	case e.Request.Method == "OPTIONS" && (e.Request.Headers.Get("Access-Control-Request-Method") != "" ||
		e.Initiator == "preflight" || e.ResourceType == "preflight"):
		return LeftPreflight
	case Origin(u) != origin:
		if isBeacon(e, "") {
			return LeftBeacon
		}
		return LeftThirdParty
	case isBeacon(e, origin):
		return LeftBeacon
	case isServiceWorker(e):
		return LeftServiceWorker
	case isFavicon(u):
		return LeftFavicon
	case isStatic(e) && !keepStatic:
		return LeftStatic
	}
	return ""
}

// analyticsHosts are hosts (and their subdomains) that only take beacons.
var analyticsHosts = []string{"google-analytics.com", "analytics.google.com", "googletagmanager.com", "doubleclick.net",
	"stats.g.doubleclick.net", "segment.io", "segment.com", "api.segment.io", "mixpanel.com", "hotjar.com", "hotjar.io",
	"sentry.io", "ingest.sentry.io", "plausible.io", "newrelic.com", "nr-data.net", "datadoghq.com", "browser-intake-datadoghq.com",
	"clarity.ms", "fullstory.com", "amplitude.com", "heapanalytics.com", "intercom.io", "facebook.net", "connect.facebook.net",
	"bat.bing.com", "px.ads.linkedin.com", "analytics.tiktok.com", "cloudflareinsights.com", "static.cloudflareinsights.com"}

// beaconPaths are last path segments of beacon endpoints.
var beaconPaths = map[string]bool{"beacon": true, "collect": true, "g/collect": true, "j/collect": true, "analytics": true,
	"track": true, "telemetry": true, "rum": true, "matomo.php": true, "piwik.php": true, "ping": true, "csp-report": true,
	"cdn-cgi/rum": true}

// isBeacon reports whether an entry is a beacon: a ping or report the
// browser sends by itself, a request to an analytics host, or (on the
// target's origin) to an analytics endpoint.
func isBeacon(e *Entry, origin string) bool {
	switch e.ResourceType {
	case "ping", "beacon", "cspviolationreport", "csp_report":
		return true
	}
	if d := strings.ToLower(e.Request.Headers.Get("Sec-Fetch-Dest")); d == "report" {
		return true
	}
	host := strings.ToLower(e.Request.URL.Hostname())
	if origin == "" {
		for _, h := range analyticsHosts {
			if host == h || strings.HasSuffix(host, "."+h) {
				return true
			}
		}
		return false
	}
	p := strings.Trim(strings.ToLower(e.Request.URL.Path), "/")
	last := path.Base(p)
	return beaconPaths[last] || beaconPaths[p] || strings.HasPrefix(p, "cdn-cgi/rum")
}

func isServiceWorker(e *Entry) bool {
	if e.ResourceType == "serviceworker" || e.Request.Headers.Get("Service-Worker") != "" ||
		e.Request.Headers.Get("Service-Worker-Navigation-Preload") != "" {
		return true
	}
	base := strings.ToLower(path.Base(e.Request.URL.Path))
	return base == "sw.js" || base == "service-worker.js" || base == "serviceworker.js" || base == "ngsw-worker.js" || base == "ngsw.json"
}

func isFavicon(u *url.URL) bool {
	base := strings.ToLower(path.Base(u.Path))
	return strings.HasPrefix(base, "favicon") || strings.HasPrefix(base, "apple-touch-icon") ||
		base == "browserconfig.xml" || base == "mstile-150x150.png"
}

// staticTypes are Chromium's resource types of static assets.
var staticTypes = map[string]bool{"stylesheet": true, "script": true, "image": true, "font": true, "media": true,
	"manifest": true, "texttrack": true, "img": true, "imageset": true}

// staticExt are the file extensions of static assets.
var staticExt = map[string]bool{".css": true, ".js": true, ".mjs": true, ".map": true, ".png": true, ".jpg": true,
	".jpeg": true, ".gif": true, ".svg": true, ".webp": true, ".avif": true, ".ico": true, ".bmp": true, ".woff": true,
	".woff2": true, ".ttf": true, ".otf": true, ".eot": true, ".mp4": true, ".webm": true, ".mp3": true, ".ogg": true,
	".wav": true, ".wasm": true, ".webmanifest": true, ".vtt": true}

// isStatic reports whether an entry is a static asset: by Chromium's
// resource type, the Sec-Fetch-Dest header, the URL's extension or the
// response's media type.
func isStatic(e *Entry) bool {
	if staticTypes[e.ResourceType] {
		return true
	}
	switch strings.ToLower(e.Request.Headers.Get("Sec-Fetch-Dest")) {
	case "script", "style", "image", "font", "audio", "video", "track", "manifest", "worker", "sharedworker", "audioworklet", "paintworklet":
		return true
	}
	if staticExt[strings.ToLower(path.Ext(e.Request.URL.Path))] && e.Request.Method == "GET" {
		return true
	}
	mt := e.Response.MimeType
	return e.Request.Method == "GET" && !IsDocument(e) && (strings.HasPrefix(mt, "image/") || strings.HasPrefix(mt, "font/") ||
		strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/") || mt == "text/css" ||
		strings.Contains(mt, "javascript") || mt == "application/wasm" || strings.Contains(mt, "font"))
}

// IsDocument reports whether an entry is a top-level navigation: a page
// the browser loaded (a link, a typed URL, a submitted form, a redirect),
// not a request the page's script made.
func IsDocument(e *Entry) bool {
	if isFrame(e) {
		return false
	}
	switch e.ResourceType {
	case "document":
		return true
	case "":
	default:
		return false
	}
	h := e.Request.Headers
	if m := strings.ToLower(h.Get("Sec-Fetch-Mode")); m != "" {
		return m == "navigate"
	}
	if strings.EqualFold(h.Get("X-Requested-With"), "XMLHttpRequest") {
		return false
	}
	accept := strings.ToLower(h.Get("Accept"))
	if strings.HasPrefix(accept, "text/html") || strings.Contains(accept, "application/xhtml+xml") {
		return true
	}
	if accept == "" && (e.Response.MimeType == "text/html" || (e.Response.Status >= 300 && e.Response.Status < 400)) {
		return e.Request.Method == "GET" || e.Request.Body.Kind() == BodyForm || e.Request.Body.Kind() == BodyMultipart
	}
	return false
}

// isFrame reports whether an entry is an iframe's document.
func isFrame(e *Entry) bool {
	d := strings.ToLower(e.Request.Headers.Get("Sec-Fetch-Dest"))
	return d == "iframe" || d == "frame" || d == "embed" || d == "object"
}
