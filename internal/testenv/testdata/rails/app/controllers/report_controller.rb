# The cost report: every analysis line of the user's estimate, costed and
# formatted in Ruby (BigDecimal arithmetic, Rails' number helpers), grouped
# by work item and kind with running totals. The query is quick; the page's
# time is Ruby's, holding the interpreter's lock (the GVL) while it runs.
class ReportController < ApplicationController
  before_action :authenticate_user!

  Line = Struct.new(:code, :kind, :component, :coefficient, :price, :cost, :running)

  def show
    rows = Analysis.joins(:work_item).where(work_items: { user_id: current_user.id })
      .order("work_items.code", :kind, :id)
      .pluck("work_items.code", :kind, :component, :coefficient, :price)
    running = BigDecimal("0")
    @lines = rows.map do |code, kind, component, coefficient, price|
      cost = (coefficient * price).round(2)
      running += cost
      Line.new(code, kind, component, coefficient, price, cost, running)
    end
    @by_kind = @lines.group_by(&:kind).transform_values { |ls| ls.sum(&:cost) }
    @total = running
  end
end
