"""The plugin kit: what every plugin needs and none should write again.

* money (:mod:`core.kit.money`): :func:`format_money` of minor units per
  currency and locale (Babel);
* phones (:mod:`core.kit.phones`): :func:`normalize_phone` to E.164
  (``phonenumbers``), :func:`phone_region` of a tenant;
* dates (:mod:`core.kit.dates`): :func:`format_date`, :func:`format_time`,
  :func:`format_datetime`, :func:`weekday_names` in a locale and zone (Babel);
* texts (:mod:`core.kit.texts`): :func:`status_label` and :func:`error_text`
  from the tenant's texts;
* Telegram (:mod:`core.kit.telegram`): :func:`send_message`,
  :func:`edit_message_text` and :func:`deliver`, safe Bot API calls
  (blocked users, 429, network errors).

Errors and bodies are in :mod:`core.errors`. Documented in ``docs/hooks.md``
("The plugin kit")::

    from core.kit import format_money, normalize_phone, send_message, status_label
"""

from core.kit.dates import format_date, format_datetime, format_time, weekday_name, weekday_names
from core.kit.money import format_money, minor_unit_digits
from core.kit.phones import InvalidPhoneNumber, normalize_phone, phone_region
from core.kit.telegram import deliver, edit_message_text, send_message
from core.kit.texts import error_text, status_label

__all__ = [
    "InvalidPhoneNumber",
    "deliver",
    "edit_message_text",
    "error_text",
    "format_date",
    "format_datetime",
    "format_money",
    "format_time",
    "minor_unit_digits",
    "normalize_phone",
    "phone_region",
    "send_message",
    "status_label",
    "weekday_name",
    "weekday_names",
]
