# rack-attack 6.6, counting in Redis (the sessions' server, database 2).
# LOGIN_THROTTLE_LIMIT > 0 throttles the sign-in POSTs per client IP:
# beyond LIMIT in LOGIN_THROTTLE_PERIOD seconds rack-attack answers 429
# "Retry later" before Rails sees the request; the instrumentation below
# writes a line to Rails' log for each one.
limit = Reftarget::Env.int("LOGIN_THROTTLE_LIMIT", 0)
if limit > 0
  Rack::Attack.cache.store = ActiveSupport::Cache::RedisCacheStore.new(
    url: Reftarget::Env.str("RACK_ATTACK_REDIS_URL", "redis://127.0.0.1:6379/2"),
    pool_size: Reftarget::Env.int("RAILS_MAX_THREADS", 4)
  )
  Rack::Attack.throttle("logins/ip", limit: limit, period: Reftarget::Env.int("LOGIN_THROTTLE_PERIOD", 60)) do |req|
    req.ip if req.post? && req.path == "/users/sign_in"
  end
  ActiveSupport::Notifications.subscribe("throttle.rack_attack") do |_name, _start, _finish, _id, payload|
    req = payload[:request]
    Rails.logger.warn("Rack::Attack throttled #{req.env["rack.attack.matched"]} discriminator=#{req.env["rack.attack.match_discriminator"]} #{req.request_method} #{req.path}")
  end
else
  Rack::Attack.enabled = false
end
