class ApplicationController < ActionController::Base
  # Rails' CSRF protection (load_defaults: protect_from_forgery with:
  # :exception): a POST whose authenticity_token does not match the one in
  # the session raises ActionController::InvalidAuthenticityToken, a 422.
  protect_from_forgery with: :exception

  private

  def append_info_to_payload(payload)
    super
    payload[:request_id] = request.request_id
  end
end
