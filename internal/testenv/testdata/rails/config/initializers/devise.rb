# Devise 4.8: sign in with a username or an e-mail address (the :login
# virtual attribute of User) and a password hashed with bcrypt.
Devise.setup do |config|
  require "devise/orm/active_record"

  config.mailer_sender = "noreply@example.test"
  config.authentication_keys = [:login]
  config.case_insensitive_keys = [:login]
  config.strip_whitespace_keys = [:login]
  config.skip_session_storage = [:http_auth]
  # bcrypt's cost (Devise's stretches). Devise's template has 12; the
  # target's default is bcrypt's minimum, 4, as Devise itself uses in
  # test environments, so a login costs no CPU worth measuring unless a
  # mode says otherwise. The seeded hashes are made with this cost
  # (db/seed.rb --passwords-only).
  config.stretches = Reftarget::Env.int("DEVISE_STRETCHES", 4)
  config.sign_out_via = :delete
end
