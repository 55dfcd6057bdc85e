package evidence_test

import (
	"fmt"
	"time"

	"github.com/stampede-load/stampede/internal/evidence"
)

func ExampleParseText() {
	log := `2026-01-11 12:59:17,123 ERROR django.request Internal Server Error: /accounts/login/
Traceback (most recent call last):
  File "/app/views.py", line 12, in login
    user = authenticate(request, **credentials)
psycopg.errors.ProtocolViolation: query_wait_timeout
2023-12-18 18:58:03.882 UTC [1] WARNING C-0x7fbcc4faabe0: app/app@10.0.0.5:50574 pooler error: query_wait_timeout
`
	for _, ev := range evidence.ParseText("app", "errors.log", log, nil, time.UTC) {
		fmt.Println(ev.Ref, ev.Class, ev.Signature)
		if ev.Exception != "" {
			fmt.Println("  ", ev.Exception, ev.Stack)
		}
	}
	// Output:
	// errors.log:1 db-pool-wait-timeout psycopg-query-wait-timeout
	//    psycopg.errors.ProtocolViolation: query_wait_timeout [login (/app/views.py:12)]
	// errors.log:6 db-pool-wait-timeout pgbouncer-pooler-error-query-wait-timeout
}

func ExampleCatalog_Classify() {
	s, _ := evidence.DefaultCatalog().Classify("login page returned: Too many failed login attempts. Try again later.")
	fmt.Println(s.ID, s.Class)
	// Output: allauth-too-many-login-attempts login-rate-limit
}
