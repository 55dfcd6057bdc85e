package lab

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// hasher makes and checks passwords in Django's encodings:
//
//	pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte key>
//	argon2$argon2id$v=19$m=<KiB>,t=<time>,p=<parallelism>$<salt b64>$<hash b64>
type hasher struct {
	algo                   string
	iterations             int
	argonT, argonM, argonP int
}

func newHasher(c Config) hasher {
	return hasher{algo: c.Hasher, iterations: c.PBKDF2Iterations,
		argonT: c.Argon2Time, argonM: c.Argon2MemoryKiB, argonP: c.Argon2Parallelism}
}

const saltChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// salt returns 22 random alphanumerics, like Django's get_random_string(22).
func salt() string {
	b := make([]byte, 22)
	for i := range b {
		b[i] = saltChars[randIndex(len(saltChars))]
	}
	return string(b)
}

// make hashes password with a fresh salt.
func (h hasher) make(password string) (string, error) {
	switch h.algo {
	case HasherArgon2:
		s := []byte(salt())
		key := argon2.IDKey([]byte(password), s, uint32(h.argonT), uint32(h.argonM), uint8(h.argonP), 32)
		return fmt.Sprintf("argon2$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.argonM, h.argonT, h.argonP,
			base64.RawStdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(key)), nil
	default:
		return pbkdf2Encode(password, salt(), h.iterations)
	}
}

func pbkdf2Encode(password, salt string, iterations int) (string, error) {
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("pbkdf2: %w", err)
	}
	return fmt.Sprintf("pbkdf2_sha256$%d$%s$%s", iterations, salt, base64.StdEncoding.EncodeToString(key)), nil
}

var errUnknownHash = errors.New("hash: unknown algorithm or malformed encoding")

// verify checks password against encoded, whatever algorithm encoded names,
// using the work factor stored in it (as Django does).
func verify(password, encoded string) (bool, error) {
	switch {
	case strings.HasPrefix(encoded, "pbkdf2_sha256$"):
		parts := strings.Split(encoded, "$")
		if len(parts) != 4 {
			return false, errUnknownHash
		}
		iter, err := strconv.Atoi(parts[1])
		if err != nil || iter <= 0 {
			return false, errUnknownHash
		}
		again, err := pbkdf2Encode(password, parts[2], iter)
		if err != nil {
			return false, err
		}
		return subtle.ConstantTimeCompare([]byte(again), []byte(encoded)) == 1, nil
	case strings.HasPrefix(encoded, "argon2$argon2id$"):
		parts := strings.Split(encoded, "$")
		if len(parts) != 6 {
			return false, errUnknownHash
		}
		var m, t, p int
		if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m <= 0 || t <= 0 || p <= 0 || p > 255 {
			return false, errUnknownHash
		}
		s, err1 := base64.RawStdEncoding.DecodeString(parts[4])
		want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
		if err1 != nil || err2 != nil || len(want) == 0 {
			return false, errUnknownHash
		}
		got := argon2.IDKey([]byte(password), s, uint32(t), uint32(m), uint8(p), uint32(len(want)))
		return subtle.ConstantTimeCompare(got, want) == 1, nil
	}
	return false, errUnknownHash
}

// randIndex returns a uniform random index below n from crypto/rand.
func randIndex(n int) int {
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("lab: crypto/rand: " + err.Error())
		}
		// Reject the top of the byte range so every index is equally likely.
		if int(b[0]) < 256-256%n {
			return int(b[0]) % n
		}
	}
}

// randomString returns n random alphanumerics.
func randomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = saltChars[randIndex(len(saltChars))]
	}
	return string(b)
}
