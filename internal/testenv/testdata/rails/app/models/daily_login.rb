# Sign-in attempts per day, shown on the dashboard: one row per day.
class DailyLogin < ApplicationRecord
  self.primary_key = "day"

  # count! adds one to today's attempts. With lock, the row is first
  # locked with SELECT ... FOR UPDATE (ActiveRecord's lock): the lock is
  # held until the surrounding transaction ends.
  def self.count!(lock: false)
    today = Time.now.utc.to_date
    if lock
      row = self.lock.find_by(day: today) || create!(day: today, attempts: 0)
      row.increment!(:attempts)
    elsif where(day: today).update_all("attempts = attempts + 1").zero?
      insert_all([{ day: today, attempts: 1 }], unique_by: :day)
    end
  end
end
