# Rack entry point of the reference Rails target, for Puma (config/puma.rb).
require_relative "config/environment"

run Rails.application
