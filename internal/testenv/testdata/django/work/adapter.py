"""The project's allauth adapter: counts login attempts per day."""
from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from work.models import DailyLogins


class AccountAdapter(DefaultAccountAdapter):
    def pre_authenticate(self, request, **credentials):
        super().pre_authenticate(request, **credentials)
        count_login_attempt()


def count_login_attempt():
    """Adds one to today's login attempts. The row is locked only for the
    update, in its own short transaction: unless the request already runs in
    one (ATOMIC_REQUESTS), when atomic() is a savepoint and the lock stays
    until the request's transaction commits, after the password check."""
    with transaction.atomic():
        row, _ = DailyLogins.objects.select_for_update().get_or_create(day=timezone.localdate())
        row.attempts = F("attempts") + 1
        row.save(update_fields=["attempts"])
