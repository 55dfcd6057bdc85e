# Debian's Rails and its gems are system gems (ruby-rails, ruby-devise, ...):
# RubyGems activates them by plain requires, no Bundler and no Gemfile.lock,
# so the app starts without any network access.
ENV["RAILS_ENV"] ||= "production"
