# A user of the estimating app; signs in with a username or an e-mail
# address (Devise's wiki recipe: the :login virtual attribute).
class User < ApplicationRecord
  devise :database_authenticatable, authentication_keys: [:login]

  has_many :work_items, dependent: :destroy

  attr_writer :login

  def login
    @login || username || email
  end

  def self.find_for_database_authentication(warden_conditions)
    conditions = warden_conditions.dup
    login = conditions.delete(:login)
    return find_by(conditions.to_h) if login.nil?

    where(conditions.to_h).where("username = :login OR email = :login", login: login.downcase).first
  end
end
