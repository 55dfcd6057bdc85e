# Every work item of the user with its labour cost and its whole cost from
# the analysis lines, and the estimate's total: the recap. The costs are
# two correlated subqueries per item on analyses, which filter on
# work_item_id (analyses_work_item_idx).
class RecapController < ApplicationController
  before_action :authenticate_user!

  COST = "COALESCE((SELECT SUM(a.coefficient * a.price) FROM analyses a WHERE a.work_item_id = work_items.id%s), 0)"

  def show
    @items = current_user.work_items
      .select("work_items.*", "#{format(COST, " AND a.kind = 'labor'")} AS labor", "#{format(COST, "")} AS cost")
      .order(:code).to_a
    @total = @items.sum(&:cost)
  end
end
