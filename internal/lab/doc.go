// Package lab is stampede's reference target: the seed's Django/allauth
// application (construction unit-price analysis behind PgBouncer, PostgreSQL
// and Redis sessions) rebuilt in Go, with every failure of the seed a knob.
//
// It imports nothing else of stampede, so the diagnosis has to find its
// faults from the outside: from HTTP answers, from its logs (written in the
// real software's formats with the real software's error texts) and from the
// services' probes.
//
// Pages: /accounts/login/ (allauth's form: hidden csrfmiddlewaretoken, a
// csrftoken cookie, fields login and password; 302 to /dashboard/ or next on
// success, 200 with <ul class="errorlist nonfield"> on failure),
// /accounts/logout/, /dashboard/, /pekerjaan/, /rincian-ahsp/<id>/,
// /rekap-rab/ (the heavy aggregate), /audit-trail/ (writes a row per view),
// /export/ (a CSV paced over Config.ExportHold, holding its connection),
// /healthz and /metrics. Pages other than login, healthz and metrics
// redirect anonymous users to /accounts/login/?next=PATH as Django does.
//
// Like a Django request with CONN_MAX_AGE=0, a request takes its database
// connection at its first query and holds it to the end; the login holds it
// across the password hash, the hot row and the session save. On the
// postgres store that connection goes to PgBouncer (or PostgreSQL); on the
// embedded store to an in-process pool with PgBouncer's semantics whose
// errors read as pgx shows PgBouncer's (FATAL: query_wait_timeout (SQLSTATE
// 08P01)) and which writes PgBouncer's log lines to pgbouncer.log.
//
// Security as a real app: CSRF enforced with Django's masked tokens and
// reasons, the session key and CSRF secret rotated at login, a dummy hash
// checked for unknown users, parameterized SQL, and no password or session
// key in any log.
package lab
