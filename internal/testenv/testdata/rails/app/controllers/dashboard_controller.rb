# Counts and totals over the user's work items.
class DashboardController < ApplicationController
  before_action :authenticate_user!

  def show
    items = current_user.work_items
    @count = items.count
    @volume = items.sum(:volume)
    @value = items.sum("volume * unit_price")
    @updated = items.maximum(:updated_at)
    @by_status = items.group(:status).order(:status).count
    @logins = DailyLogin.where(day: Time.now.utc.to_date).pick(:attempts) || 0
  end
end
