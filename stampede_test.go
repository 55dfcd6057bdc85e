package stampede

import "testing"

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@127.0.0.1:6432/app":            "postgres://app:xxxxx@127.0.0.1:6432/app",
		"redis://:hunter2@127.0.0.1:6379/0":                   "redis://:xxxxx@127.0.0.1:6379/0",
		"postgres://app@h/db?sslmode=disable&password=s3cret": "postgres://app@h/db?sslmode=disable&password=xxxxx",
		"host=127.0.0.1 user=app password=s3cret dbname=app":  "host=127.0.0.1 user=app password=xxxxx dbname=app",
		`host=h password='it\'s secret' dbname=app`:           "host=h password=xxxxx dbname=app",
		"postgres://app@127.0.0.1/app":                        "postgres://app@127.0.0.1/app",
		"http://lab.test:8000/accounts/login/?next=/x":        "http://lab.test:8000/accounts/login/?next=/x",
		"user=app oldpassword=keep":                           "user=app oldpassword=keep",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
