package session

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// loginPage is a login page as stampede-target serves it.
const loginPage = `<!doctype html><html><head><title>Sign In</title></head><body>
<h1>Sign In</h1>
<form class="login" method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="6be6606f17931e8375b366160455b8cd">

<p><label for="id_login">Login:</label> <input type="text" name="login" id="id_login" required></p>
<p><label for="id_password">Password:</label> <input type="password" name="password" id="id_password" required></p>
<input type="hidden" name="next" value="/dashboard/">
<button type="submit">Sign In</button>
</form></body></html>
`

// formPages are pages as frameworks and hand-written templates serve
// them, and the corners of the Tokenizer's rules that scanFormsFast
// follows: each must give the forms x/net/html's Tokenizer gives.
var formPages = map[string]string{
	"stampede-target": loginPage,
	"django allauth": `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign In</title>
<link rel="stylesheet" href="/static/css/site.css">
<script>window.dataLayer = window.dataLayer || []; if (a < b && c > d) { x = "</div>"; }</script>
<style>form > input { color: red } /* <form> */</style>
</head><body>
<!-- <form action="/commented/"><input name="no"></form> -->
<nav><a href="/">Home</a> | <a href="/accounts/signup/?next=%2F&amp;x=1">Sign up</a></nav>
<form class="login" method="POST" action="/accounts/login/?next=/dashboard/&amp;src=nav">
  <input type="hidden" name="csrfmiddlewaretoken" value="Xy9&#43;abc">
  <p><label for="id_login">Login:</label> <input type="text" name="login" placeholder="Username or e-mail" autocomplete="username" maxlength="150" required id="id_login"></p>
  <p><label for="id_password">Password:</label> <input type="password" name="password" placeholder="Password" autocomplete="current-password" required id="id_password"></p>
  <p><label for="id_remember">Remember Me:</label> <input type="checkbox" name="remember" id="id_remember" checked></p>
  <button class="primaryAction" type="submit">Sign In</button>
</form>
<footer><form action="/i18n/setlang/" method="post"><select name="language"><option value="en" selected>English</option><option value="fr">Français</option></select></form></footer>
</body></html>`,
	"rails": "<!DOCTYPE html>\r\n<html>\r\n<head>\r\n<meta name=\"csrf-token\" content=\"a+b/c==\" />\r\n</head>\r\n<body>\r\n" +
		"<form class=\"new_user\" id=\"new_user\" action=\"/users/sign_in\" accept-charset=\"UTF-8\" method=\"post\"><input type=\"hidden\" name=\"authenticity_token\" value=\"Qm9/Zz+1==\" autocomplete=\"off\" />\r\n" +
		"<input autofocus=\"autofocus\" autocomplete=\"email\" type=\"email\" value=\"\" name=\"user[email]\" id=\"user_email\" />\r\n" +
		"<input autocomplete=\"current-password\" type=\"password\" name=\"user[password]\" id=\"user_password\" />\r\n" +
		"<input name=\"user[remember_me]\" type=\"hidden\" value=\"0\" autocomplete=\"off\" /><input type=\"checkbox\" value=\"1\" name=\"user[remember_me]\" id=\"user_remember_me\" />\r\n" +
		"<textarea name=\"note\">line one\r\nline &amp; two\r</textarea>\r\n" +
		"<input type=\"submit\" name=\"commit\" value=\"Log in\" data-disable-with=\"Log in\" />\r\n</form>\r\n</body>\r\n</html>\r\n",
	"laravel": `<html><body><form method="POST" action="https://example.test/login"><input type="hidden" name="_token" value="kR0fDq6e"><input id=email type=email name=email value=old@example.test required autofocus><input id=password type=password name=password><input type=radio name=r value=a><input type=radio name=r value=b checked><button>Log in</button></form></body></html>`,
	"aspnet":  `<form method="post" action="/Account/Login?ReturnUrl=%2F"><input name="Input.Email" type="email"/><input name="Input.Password" type="password"/><input name="__RequestVerificationToken" type="hidden" value="CfDJ8N_x-y" /></form>`,
	"select and textarea": `<form action=/s method=get><select name=a><option>  First  </option><option selected>Second &amp; more</option></select>` +
		`<select name=b><option value="">none</option><option>x</option></select><select name=c></select>` +
		`<textarea name=t>a <b>not a tag</b> &lt;</textarea><textarea>no name</textarea></form>`,
	"two forms, second with password": `<form action="/search"><input name="q"></form><form action="/login" method="post"><input name="u"><input name="p" type="PASSWORD"></form>`,
	"uppercase and odd quoting":       `<FORM ACTION='/x' METHOD=Post><INPUT NAME=a VALUE='1 2'><input name = "b" value = c ><input =x name=d><input name=e value=f/></FORM>`,
	"duplicate attributes":            `<form action="/a" action="/b"><input name="x" value="1" VALUE="2" Name="y"></form>`,
	"comments":                        `<!--><form action="/1"><input name="a"></form><!---><form action="/2"></form><!-- -- --!><form action="/3"></form><!-- --!-- --><form action="/4"></form>`,
	"bogus comments and doctype":      `<?xml version="1.0"?><!DOCTYPE html><!foo <form action="/no">><form action="/yes"><input name="k"></form></ <form action="/no2">></><form action="/5"></form>`,
	"raw text":                        `<title><form action="/no"></title><xmp><form></xmp><noscript><form action=/n></noscript><iframe><form></iFrame ><form action="/ok"><input name=z></form>`,
	"script with fake end":            `<script>var s = "</scriptx>"; var t = '<form action="/no">';</SCRIPT ><form action="/ok"></form>`,
	"unterminated tag":                `<form action="/a"><input name="x" value="y`,
	"unterminated raw":                `<form action="/a"><input name=k><textarea name=t>abc</textare`,
	"option text across tokens":       `<form><select name=s><option>a<!--c-->b &amp;c</option></select></form>`,
	"lt in text":                      `<form action="/a">1 < 2 <3 <input name="n" value="v"> a<</form>`,
	"equals in attribute name":        `<form action="/a"><input ==name name="m" value="w"></form>`,
	"nested form":                     `<form action="/outer"><input name="a"><form action="/inner"><input name="b"></form><input name="c"></form>`,
	"no form":                         `<html><body><p>hello</p></body></html>`,
	"empty":                           ``,
	"lone lt":                         `<`,
	"end tag with attributes":         `<form action="/a"></form x=">"><input name="after">`,
	"entities in names":               `<form action="&#x2F;a"><input name="a&amp;b" value="&quot;q&quot;"><input name="c" value="&notit; &notin;"></form>`,
}

func TestScanFormsFastMatchesTokenizer(t *testing.T) {
	for name, page := range formPages {
		t.Run(name, func(t *testing.T) {
			fast, ok := scanFormsFast([]byte(page))
			if !ok {
				t.Fatal("left to the Tokenizer")
			}
			if slow := scanForms([]byte(page)); !reflect.DeepEqual(fast, slow) {
				t.Errorf("fast scan differs from the Tokenizer's\nfast: %s\nslow: %s", dumpForms(fast), dumpForms(slow))
			}
		})
	}
}

// TestScanFormsFastLeavesToTokenizer: the pages whose rules scanFormsFast
// does not follow go to the Tokenizer, and FindForm still finds their form.
func TestScanFormsFastLeavesToTokenizer(t *testing.T) {
	for name, page := range map[string]string{
		"plaintext":      `<form action="/a"><plaintext><form action="/b">`,
		"escaped script": `<script><!--<script>document.write("</script>")</script>--></script><form action="/a"><input name="k" type="password"></form>`,
		"NUL in a key":   "<form action=\"/a\"><input na\x00me=\"x\"></form>",
	} {
		if _, ok := scanFormsFast([]byte(page)); ok {
			t.Errorf("%s: scanned fast", name)
		}
		u, _ := url.Parse("http://h/p")
		if _, err := FindForm([]byte(page), u, ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func dumpForms(fs []*Form) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\n  ")
		b.WriteString(f.Method + " " + f.Action)
		if f.HasPassword {
			b.WriteString(" (password)")
		}
		for _, fl := range f.Fields {
			b.WriteString(" [" + fl.Name + "=" + fl.Value + "]")
		}
	}
	return b.String()
}

// FuzzScanFormsFast holds scanFormsFast to the Tokenizer's forms on any
// page it scans.
func FuzzScanFormsFast(f *testing.F) {
	for _, p := range formPages {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, page []byte) {
		fast, ok := scanFormsFast(page)
		if !ok {
			return
		}
		if slow := scanForms(page); !reflect.DeepEqual(fast, slow) {
			t.Errorf("fast scan differs from the Tokenizer's on %q\nfast: %s\nslow: %s", page, dumpForms(fast), dumpForms(slow))
		}
	})
}

func BenchmarkFindForm(b *testing.B) {
	for _, name := range []string{"stampede-target", "django allauth"} {
		b.Run(name, func(b *testing.B) {
			u, _ := url.Parse("http://127.0.0.1:8000/accounts/login/")
			body := []byte(formPages[name])
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FindForm(body, u, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
