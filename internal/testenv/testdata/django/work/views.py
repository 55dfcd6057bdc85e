"""The pages behind the login: a dashboard, the list of work items, and the
cost recap."""
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, DecimalField, F, Max, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.shortcuts import render
from django.utils import timezone

from work.models import Analysis, DailyLogins, WorkItem

MONEY = DecimalField(max_digits=20, decimal_places=2)


@login_required
def dashboard(request):
    """Counts and totals over the user's work items."""
    items = WorkItem.objects.filter(owner=request.user)
    totals = items.aggregate(
        count=Count("id"),
        volume=Sum("volume"),
        value=Sum(F("volume") * F("unit_price"), output_field=MONEY),
        updated=Max("updated_at"),
    )
    by_status = items.order_by().values("status").annotate(n=Count("id")).order_by("status")
    logins = DailyLogins.objects.filter(day=timezone.localdate()).values_list("attempts", flat=True).first()
    return render(request, "work/dashboard.html", {"totals": totals, "by_status": by_status, "logins": logins or 0})


@login_required
def item_list(request):
    """The user's work items, ten to a page."""
    items = WorkItem.objects.filter(owner=request.user).order_by("code")
    page = Paginator(items, 10).get_page(request.GET.get("page"))
    return render(request, "work/item_list.html", {"page": page})


def _cost(**filters):
    """The cost of the outer work item's analysis lines (those matching
    filters): coefficient times price, summed."""
    lines = (
        Analysis.objects.filter(work_item=OuterRef("pk"), **filters)
        .order_by()
        .values("work_item")
        .annotate(total=Sum(F("coefficient") * F("price"), output_field=MONEY))
        .values("total")
    )
    return Coalesce(Subquery(lines, output_field=MONEY), Value(Decimal("0")), output_field=MONEY)


@login_required
def recap(request):
    """Every work item with its labour cost and its whole cost from the
    analysis lines, and the estimate's total: the recap."""
    items = list(
        WorkItem.objects.filter(owner=request.user)
        .annotate(labor=_cost(kind="labor"), cost=_cost())
        .order_by("code")
    )
    grand = sum((i.cost for i in items), Decimal("0"))
    return render(request, "work/recap.html", {"items": items, "grand": grand})
