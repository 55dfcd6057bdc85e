package lab

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// Django's CSRF protection (4.x): the csrftoken cookie holds a 32-character
// secret; forms carry it masked (64 characters: mask + cipher), so the token
// in the page changes on every render while the cookie stays.
const (
	csrfCookieName = "csrftoken"
	csrfFormField  = "csrfmiddlewaretoken"
	csrfHeader     = "X-CSRFToken"
	csrfSecretLen  = 32
)

// Django's rejection reasons, logged as "Forbidden (REASON): PATH".
const (
	reasonNoCSRFCookie     = "CSRF cookie not set."
	reasonCSRFTokenMissing = "CSRF token missing."
	reasonBadCookieLen     = "CSRF cookie has incorrect length."
	reasonBadCookieChars   = "CSRF cookie has invalid characters."
	reasonBadOrigin        = "Origin checking failed - %s does not match any trusted origins."
)

func validCSRFChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(saltChars, s[i]) < 0 {
			return false
		}
	}
	return true
}

// maskCSRF masks secret with a fresh mask, as Django's _mask_cipher_secret.
func maskCSRF(secret string) string {
	mask := randomString(csrfSecretLen)
	n := len(saltChars)
	out := make([]byte, csrfSecretLen)
	for i := range csrfSecretLen {
		out[i] = saltChars[(strings.IndexByte(saltChars, secret[i])+strings.IndexByte(saltChars, mask[i]))%n]
	}
	return mask + string(out)
}

// unmaskCSRF reverses maskCSRF; an unmasked 32-character token is returned as is.
func unmaskCSRF(token string) string {
	if len(token) == csrfSecretLen {
		return token
	}
	mask, cipher := token[:csrfSecretLen], token[csrfSecretLen:]
	n := len(saltChars)
	out := make([]byte, csrfSecretLen)
	for i := range csrfSecretLen {
		x := strings.IndexByte(saltChars, cipher[i]) - strings.IndexByte(saltChars, mask[i])
		out[i] = saltChars[(x+n)%n]
	}
	return string(out)
}

// checkCSRF returns Django's reason for rejecting the unsafe request r, or "".
func checkCSRF(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		return strings.Replace(reasonBadOrigin, "%s", o, 1)
	}
	c, err := r.Cookie(csrfCookieName)
	if err != nil || c.Value == "" {
		return reasonNoCSRFCookie
	}
	if len(c.Value) != csrfSecretLen {
		return reasonBadCookieLen
	}
	if !validCSRFChars(c.Value) {
		return reasonBadCookieChars
	}
	tok := r.PostFormValue(csrfFormField)
	src := "POST"
	if tok == "" {
		tok, src = r.Header.Get(csrfHeader), "the 'X-Csrftoken' HTTP header"
	}
	if tok == "" {
		return reasonCSRFTokenMissing
	}
	if len(tok) != csrfSecretLen && len(tok) != 2*csrfSecretLen {
		return "CSRF token from " + src + " has incorrect length."
	}
	if !validCSRFChars(tok) {
		return "CSRF token from " + src + " has invalid characters."
	}
	if subtle.ConstantTimeCompare([]byte(unmaskCSRF(tok)), []byte(c.Value)) != 1 {
		return "CSRF token from " + src + " incorrect."
	}
	return ""
}
