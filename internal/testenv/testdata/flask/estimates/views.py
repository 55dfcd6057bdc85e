"""The pages behind the login: a dashboard, the list of work items, and the
cost recap."""

import datetime
import math
from decimal import Decimal

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from . import rates
from .db import db_session
from .models import Analysis, LoginCounter, WorkItem

bp = Blueprint("views", __name__)
PER_PAGE = 10


@bp.route("/")
def index():
    return redirect(url_for("views.dashboard"))


@bp.route("/dashboard")
@login_required
def dashboard():
    """Counts and totals over the user's work items, today's logins, and
    the exchange rates of the day."""
    mine = WorkItem.owner_id == current_user.id
    totals = db_session.execute(
        select(
            func.count(WorkItem.id).label("count"),
            func.sum(WorkItem.volume).label("volume"),
            func.sum(WorkItem.volume * WorkItem.unit_price).label("value"),
            func.max(WorkItem.updated_at).label("updated"),
        ).where(mine)
    ).one()
    by_status = db_session.execute(
        select(WorkItem.status, func.count(WorkItem.id)).where(mine).group_by(WorkItem.status).order_by(WorkItem.status)
    ).all()
    logins = db_session.execute(
        select(LoginCounter.attempts).where(LoginCounter.day == datetime.date.today())
    ).scalar_one_or_none()
    return render_template("dashboard.html", totals=totals, by_status=by_status, logins=logins or 0, rates=rates.current())


@bp.route("/items")
@login_required
def item_list():
    """The user's work items, ten to a page."""
    mine = WorkItem.owner_id == current_user.id
    total = db_session.execute(select(func.count(WorkItem.id)).where(mine)).scalar_one()
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    items = db_session.execute(
        select(WorkItem).where(mine).order_by(WorkItem.code).limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    ).scalars().all()
    return render_template("items.html", items=items, page=page, pages=pages, statuses=WorkItem.STATUSES)


def _cost(*filters):
    """The cost of the outer work item's analysis lines (those matching
    filters): coefficient times price, summed; a correlated subquery on
    analysis.work_item_id."""
    return func.coalesce(
        select(func.sum(Analysis.coefficient * Analysis.price))
        .where(Analysis.work_item_id == WorkItem.id, *filters)
        .scalar_subquery(),
        0,
    )


@bp.route("/recap")
@login_required
def recap():
    """Every work item with its labour, material and equipment costs and
    its whole cost from the analysis lines, and the estimate's total: the
    recap."""
    rows = db_session.execute(
        select(
            WorkItem,
            _cost(Analysis.kind == "labor").label("labor"),
            _cost(Analysis.kind == "material").label("material"),
            _cost(Analysis.kind == "equipment").label("equipment"),
            _cost().label("cost"),
        )
        .where(WorkItem.owner_id == current_user.id)
        .order_by(WorkItem.code)
    ).all()
    grand = sum((r.cost for r in rows), Decimal("0"))
    return render_template("recap.html", rows=rows, grand=grand)
