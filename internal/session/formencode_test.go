package session

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// encodeCases are forms and overrides as a scenario's submit_form gives
// them: repeated names, overrides of a repeated name, overrides the form
// lacks, names and values that need escaping.
var encodeCases = []struct {
	fields    []Field
	overrides []Field
}{
	{nil, nil},
	{nil, []Field{{"login", "bench"}}},
	{[]Field{{"csrfmiddlewaretoken", "c2092893afe07b893eb4fb64e1f4ce5b"}, {"login", ""}, {"password", ""}, {"next", "/dashboard/"}},
		[]Field{{"password", "s3cr3t &=+"}, {"login", "bench"}}},
	{[]Field{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", ""}, {"a", "4"}}, []Field{{"a", "x"}}},
	{[]Field{{"b", "2"}, {"a", "1"}, {"b", "3"}}, []Field{{"z", "last"}, {"0", "first"}, {"b", "B"}}},
	{[]Field{{"ü ñ", "日本 語"}, {"q", "a/b?c#d%e"}, {"", ""}, {"~-_.", "$&+,/:;=?@"}}, []Field{{"", "empty name"}}},
	{[]Field{{"user[name]", "x y"}, {"user[name]", "z"}, {"tags[]", "1"}, {"tags[]", "2"}}, nil},
}

func TestPairsEncodeAsValues(t *testing.T) {
	for i, c := range encodeCases {
		f := &Form{Fields: c.fields}
		over := map[string]string{}
		for _, o := range c.overrides {
			over[o.Name] = o.Value
		}
		want := f.Values(over).Encode()
		got := string(AppendQuery(nil, f.Pairs(nil, c.overrides)))
		if got != want {
			t.Errorf("case %d: Pairs+AppendQuery %q, Values.Encode %q", i, got, want)
		}
		// Appending after what dst holds leaves it alone.
		pre := []Field{{"keep", "me"}}
		if p := f.Pairs(pre, c.overrides); p[0] != (Field{"keep", "me"}) || len(p) != 1+len(f.Pairs(nil, c.overrides)) {
			t.Errorf("case %d: Pairs changed or miscounted what dst held: %v", i, p)
		}
	}
}

func FuzzAppendQueryEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "a b", "$&+,/:;=?@", "ü", "\x00\xff", "-_.~", "%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(appendQueryEscape(nil, s)), url.QueryEscape(s); got != want {
			t.Errorf("appendQueryEscape(%q) = %q, url.QueryEscape %q", s, got, want)
		}
	})
}

// FuzzPairs holds Pairs+AppendQuery to Values(...).Encode() on forms and
// overrides built from the fuzzer's text ("name=value" pairs split at ";";
// the overrides after "|").
func FuzzPairs(f *testing.F) {
	f.Add("a=1;b=2;a=3|a=x;c=y")
	f.Add("csrf=t;login=;password=|password=p;login=u")
	f.Add("=;=|=")
	f.Fuzz(func(t *testing.T, spec string) {
		form, over, _ := strings.Cut(spec, "|")
		split := func(s string) []Field {
			var fs []Field
			for _, kv := range strings.Split(s, ";") {
				if kv == "" {
					continue
				}
				k, v, _ := strings.Cut(kv, "=")
				fs = append(fs, Field{k, v})
			}
			return fs
		}
		fm := &Form{Fields: split(form)}
		m := map[string]string{}
		var overrides []Field
		for _, o := range split(over) {
			if _, dup := m[o.Name]; dup {
				continue // overrides have distinct names
			}
			m[o.Name] = o.Value
			overrides = append(overrides, o)
		}
		if got, want := string(AppendQuery(nil, fm.Pairs(nil, overrides))), fm.Values(m).Encode(); got != want {
			t.Errorf("form %v overrides %v: Pairs+AppendQuery %q, Values.Encode %q", fm.Fields, overrides, got, want)
		}
	})
}

// resolveSlow is resolve without its fast path.
func resolveSlow(base *url.URL, ref string) string {
	u, err := base.Parse(strings.TrimSpace(ref))
	if err != nil {
		return base.String()
	}
	return u.String()
}

func TestResolvePlainPath(t *testing.T) {
	bases := []string{"http://127.0.0.1:8000/accounts/login/", "https://Example.COM/a/b?q=1#f", "http://[::1]:8080/x", "http://u:p@h/x", "HTTP://h/x", "ftp://h/x", "http://h"}
	refs := []string{"/accounts/login/", "/", "/a.b/c", "/a/./b", "/a/../b", "//evil/x", "/a//b", "/.hidden", "/a b", "/a?b=1", "/a#f", "/%41", "/ü", "relative", "/a/.."}
	for _, b := range bases {
		base, err := url.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range refs {
			if got, want := resolve(base, r), resolveSlow(base, r); got != want {
				t.Errorf("resolve(%q, %q) = %q, base.Parse(ref).String() = %q", b, r, got, want)
			}
		}
	}
	base, _ := url.Parse("http://127.0.0.1:8000/accounts/login/")
	if _, ok := resolvePlainPath(base, "/accounts/login/"); !ok {
		t.Error("the common action did not take the fast path")
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("http://127.0.0.1:8000/accounts/login/", "/accounts/login/")
	f.Add("https://h:1/a", "/a/./b")
	f.Add("http://[::1]/", "//x/y")
	f.Fuzz(func(t *testing.T, b, ref string) {
		base, err := url.Parse(b)
		if err != nil || ref == "" {
			return
		}
		if got, want := resolve(base, ref), resolveSlow(base, ref); got != want {
			t.Errorf("resolve(%q, %q) = %q, base.Parse(ref).String() = %q", b, ref, got, want)
		}
	})
}

// FuzzParseSetCookie holds parseSetCookie to http.ParseSetCookie.
func FuzzParseSetCookie(f *testing.F) {
	for _, l := range []string{
		"csrftoken=c2092893afe07b893eb4fb64e1f4ce5b; Path=/; SameSite=Lax",
		"sessionid=abc; expires=Mon, 21 Dec 2026 09:00:00 GMT; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax",
		`q="quoted value"; Domain=.example.com; Secure; Partitioned; SameSite=none`,
		"a=b; Expires=Wed, 09-Jun-2021 10:18:14 GMT; max-age=0; samesite=Strict; unknown=1; flag",
		"  x=y ;; ; Path ; max-age=007; SameSite=Bogus; pAtH=/a\x01b",
		"", ";", "=", "noequals", "bad name=v", "n=v\"; Path=/", "n=ü; Path=/", "n=v; ÿattr=1", "n=v; Same\tSite=Lax",
	} {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var got http.Cookie
		ok := parseSetCookie(line, &got)
		want, err := http.ParseSetCookie(line)
		if ok != (err == nil) {
			t.Fatalf("%q: parseSetCookie ok %v, ParseSetCookie error %v", line, ok, err)
		}
		if ok && !reflect.DeepEqual(&got, want) {
			t.Errorf("%q:\n got %#v\nwant %#v", line, got, *want)
		}
	})
}
