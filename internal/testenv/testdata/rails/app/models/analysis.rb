# One cost component of a work item (labour, material or equipment): the
# detail table, tens of rows per work item. Its index on work_item_id is
# named analyses_work_item_idx, so it can be dropped and restored by name.
class Analysis < ApplicationRecord
  KINDS = %w[labor material equipment].freeze

  belongs_to :work_item
end
