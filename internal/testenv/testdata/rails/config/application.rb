# The reference Rails target: Devise's login, a dashboard, a paginated list
# of work items, a cost recap and a cost report over the analysis lines,
# with ActiveRecord on PostgreSQL (through PgBouncer), sessions in Redis and
# rack-attack in front. Everything a fault mode changes is read from the
# environment here, in config/database.yml and in config/puma.rb.
require_relative "boot"

require "rails"
require "active_record/railtie"
require "action_controller/railtie"
require "action_view/railtie"
require "action_mailer/railtie" # Devise's mailer class is eager-loaded
require "devise"
require "rack/attack"
require "connection_pool" # redis-rack's pool_size uses it without requiring it
require "redis-actionpack"
require "lograge"
require "pg"

module Reftarget
  # Env reads the target's settings from the environment.
  module Env
    module_function

    def str(name, default)
      v = ENV[name]
      v.nil? || v.empty? ? default : v
    end

    def int(name, default)
      Integer(str(name, default.to_s))
    end

    def float(name, default)
      Float(str(name, default.to_s))
    end

    def bool(name)
      %w[1 true yes on].include?(ENV[name].to_s.downcase)
    end
  end

  class Application < Rails::Application
    config.load_defaults 6.1

    config.eager_load = true
    config.cache_classes = true
    config.consider_all_requests_local = false
    config.action_controller.perform_caching = false
    config.public_file_server.enabled = false
    config.active_support.deprecation = :log
    config.active_record.dump_schema_after_migration = false
    config.i18n.fallbacks = true
    config.time_zone = "UTC"
    config.secret_key_base = ENV.fetch("SECRET_KEY_BASE")

    # Logs. RAILS_LOG is Rails' own log (production.log, Ruby's Logger
    # format tagged with the request id: warnings, and each exception with
    # its class, message and backtrace as ActionDispatch writes them);
    # LOGRAGE_LOG has one JSON object per line and request, for a log
    # shipper (lograge: method, path, status, duration in ms, view and db
    # times, the exception of a failed request, the time it ended, the
    # request id).
    config.log_level = Env.str("RAILS_LOG_LEVEL", "info").to_sym
    config.log_tags = [:request_id]
    config.log_formatter = ::Logger::Formatter.new
    config.logger = ActiveSupport::TaggedLogging.new(
      ActiveSupport::Logger.new(Env.str("RAILS_LOG", "log/production.log")).tap { |l| l.formatter = config.log_formatter }
    )
    config.lograge.enabled = true
    config.lograge.formatter = Lograge::Formatters::Json.new
    config.lograge.logger = ActiveSupport::Logger.new(Env.str("LOGRAGE_LOG", "log/requests.log"))
    config.lograge.custom_options = ->(event) { { time: Time.now.utc.iso8601(3), request_id: event.payload[:request_id] }.compact }

    # Sessions in Redis (redis-actionpack), one connection pool per Puma
    # worker. SESSION_COOKIE_SECURE marks the cookie Secure: a client on
    # plain HTTP drops it.
    config.session_store :redis_store,
      servers: [Env.str("REDIS_URL", "redis://127.0.0.1:6379/1") + "/session"],
      key: "_reftarget_session",
      expire_after: 2.hours,
      secure: Env.bool("SESSION_COOKIE_SECURE"),
      httponly: true,
      pool_size: Env.int("REDIS_POOL", Env.int("RAILS_MAX_THREADS", 4)),
      pool_timeout: Env.float("REDIS_POOL_TIMEOUT", 5)
  end
end
