"""Work items of a construction-cost estimate and their analysis lines."""
from django.conf import settings
from django.db import models


class WorkItem(models.Model):
    """A line of a user's estimate: what is built, how much, at what price."""

    STATUSES = [("draft", "Draft"), ("review", "In review"), ("final", "Final")]

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="work_items")
    code = models.CharField(max_length=20)
    title = models.CharField(max_length=200)
    unit = models.CharField(max_length=10)
    volume = models.DecimalField(max_digits=12, decimal_places=2)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    status = models.CharField(max_length=10, choices=STATUSES, default="draft")
    updated_at = models.DateTimeField()

    def __str__(self):
        return self.code


class Analysis(models.Model):
    """One cost component of a work item (labour, material or equipment):
    the detail table, tens of rows per work item."""

    KINDS = [("labor", "Labour"), ("material", "Material"), ("equipment", "Equipment")]

    # The index on work_item is declared by name below, so a migration (or
    # an operator) can drop and restore it by that name.
    work_item = models.ForeignKey(WorkItem, on_delete=models.CASCADE, related_name="analyses", db_index=False)
    kind = models.CharField(max_length=10, choices=KINDS)
    component = models.CharField(max_length=100)
    coefficient = models.DecimalField(max_digits=10, decimal_places=4)
    price = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        indexes = [models.Index(fields=["work_item"], name="work_analysis_item_idx")]


class DailyLogins(models.Model):
    """Login attempts per day, shown on the dashboard; one row per day."""

    day = models.DateField(primary_key=True)
    attempts = models.PositiveIntegerField(default=0)
