# A line of a user's estimate: what is built, how much, at what price.
class WorkItem < ApplicationRecord
  STATUSES = %w[draft review final].freeze

  belongs_to :user
  has_many :analyses, dependent: :delete_all
end
