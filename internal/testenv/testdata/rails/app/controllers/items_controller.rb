# The user's work items, ten to a page.
class ItemsController < ApplicationController
  before_action :authenticate_user!
  PER_PAGE = 10

  def index
    items = current_user.work_items
    @pages = [(items.count + PER_PAGE - 1) / PER_PAGE, 1].max
    @page = params[:page].to_i.clamp(1, @pages)
    @items = items.order(:code).offset((@page - 1) * PER_PAGE).limit(PER_PAGE)
  end
end
