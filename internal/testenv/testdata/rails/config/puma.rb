# Puma 5.6 settings of the reference target, from the environment (the
# names of Rails' own template): WEB_CONCURRENCY worker processes of
# RAILS_MAX_THREADS threads each, forked from a master that loaded the app.
# Puma's own messages go to its stdout and stderr (puma.log).
workers Integer(ENV.fetch("WEB_CONCURRENCY", "2"))
max_threads = Integer(ENV.fetch("RAILS_MAX_THREADS", "4"))
threads max_threads, max_threads
bind ENV.fetch("PUMA_BIND", "tcp://127.0.0.1:3000")
environment ENV.fetch("RAILS_ENV", "production")
worker_timeout Integer(ENV.fetch("PUMA_WORKER_TIMEOUT", "60"))
# Puma's request log (`quiet false`): a common-log line per request with its
# status and the seconds Puma spent on it, whatever answered — rack-attack's
# 429s too, which never reach Rails' own log.
log_requests ENV.fetch("PUMA_LOG_REQUESTS", "true") == "true"
preload_app!
