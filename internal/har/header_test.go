package har

import (
	"strings"
	"testing"
)

// A token an endpoint hands out in a response header (no body carries it)
// and the page's script sends back in a request header: extracted with
// `header:`, and the scenario compiles with it.
func TestCorrelateResponseHeader(t *testing.T) {
	const tok = "q8Zk2LmX0vTn5Rw7Ya1Bc3De"
	rec := `{"log": {"version": "1.2", "creator": {"name": "hand", "version": "1"}, "entries": [
 {"startedDateTime": "2026-12-06T10:00:00.000Z", "time": 20, "_resourceType": "document",
  "request": {"method": "GET", "url": "http://127.0.0.1:8000/app", "httpVersion": "HTTP/1.1", "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
  "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "headers": [{"name": "Content-Type", "value": "text/html"}], "cookies": [],
   "content": {"size": 30, "mimeType": "text/html", "text": "<html><body>app</body></html>"}, "redirectURL": "", "headersSize": -1, "bodySize": 30},
  "cache": {}, "timings": {"send": 0, "wait": 20, "receive": 0}},
 {"startedDateTime": "2026-12-06T10:00:01.000Z", "time": 10, "_resourceType": "fetch",
  "request": {"method": "GET", "url": "http://127.0.0.1:8000/api/csrf", "httpVersion": "HTTP/1.1", "headers": [], "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
  "response": {"status": 204, "statusText": "No Content", "httpVersion": "HTTP/1.1", "headers": [{"name": "x-csrf-token", "value": "` + tok + `"}], "cookies": [],
   "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1, "bodySize": 0},
  "cache": {}, "timings": {"send": 0, "wait": 10, "receive": 0}},
 {"startedDateTime": "2026-12-06T10:00:02.000Z", "time": 10, "_resourceType": "fetch",
  "request": {"method": "POST", "url": "http://127.0.0.1:8000/api/notes", "httpVersion": "HTTP/1.1",
   "headers": [{"name": "X-CSRF-Token", "value": "` + tok + `"}, {"name": "Content-Type", "value": "application/json"}], "queryString": [], "cookies": [],
   "postData": {"mimeType": "application/json", "text": "{\"text\": \"hi\"}"}, "headersSize": -1, "bodySize": 14},
  "response": {"status": 201, "statusText": "Created", "httpVersion": "HTTP/1.1", "headers": [{"name": "Content-Type", "value": "application/json"}], "cookies": [],
   "content": {"size": 9, "mimeType": "application/json", "text": "{\"id\": 7}"}, "redirectURL": "", "headersSize": -1, "bodySize": 9},
  "cache": {}, "timings": {"send": 0, "wait": 10, "receive": 0}}
]}}`
	l, err := Read(strings.NewReader(rec), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got *Correlation
	for i := range res.Correlations {
		if res.Correlations[i].Extract.Header != "" {
			got = &res.Correlations[i]
		}
	}
	if got == nil {
		t.Fatalf("no correlation from a response header: %+v\n%s", res.Correlations, res.Scenario)
	}
	if !strings.EqualFold(got.Extract.Header, "X-Csrf-Token") || got.From != "GET /api/csrf" || got.NotExpressed != "" {
		t.Errorf("correlation %+v", *got)
	}
	if !strings.Contains(string(res.Scenario), "{header: X-Csrf-Token}") || strings.Contains(string(res.Scenario), tok) {
		t.Errorf("scenario should extract the header and not hold the recorded token:\n%s", res.Scenario)
	}
}
