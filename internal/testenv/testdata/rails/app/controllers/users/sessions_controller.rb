# Devise's sessions controller, counting each sign-in attempt of the day
# (DailyLogin). With LOGIN_COUNT_IN_TRANSACTION the count and the sign-in
# run in one transaction: the day's row is locked FOR UPDATE before Devise
# checks the password and stays locked until the sign-in is done, across
# the bcrypt hash.
module Users
  class SessionsController < Devise::SessionsController
    def create
      if Reftarget::Env.bool("LOGIN_COUNT_IN_TRANSACTION")
        ActiveRecord::Base.transaction do
          DailyLogin.count!(lock: true)
          super
        end
      else
        DailyLogin.count!
        super
      end
    end
  end
end
