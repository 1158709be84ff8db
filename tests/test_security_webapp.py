"""Telegram WebApp init data is a credential: it never appears in a log line or an answer.

Whoever holds a user's ``X-Telegram-Init-Data`` acts as that user until it
expires, so neither a request that uses it nor one it fails for (forged,
expired, from the future) may write it, or its ``hash``, anywhere.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from test_security_limits import ANNA, BOOKINGS, add_restaurant, at, booking_body, future_day

from core.testing.updates import webapp_init_data

MY_BOOKINGS = "/api/tenants/filin/booking/my-bookings"


async def test_init_data_never_reaches_a_log_line_or_an_answer(tenantry, capsys):
    config = add_restaurant(tenantry)
    await tenantry.start()
    token = config["bot"]["token"]
    now = int(time.time())
    valid = webapp_init_data(token, ANNA, query_id="AAHdF6IQAAAAAN0XohDhrOrc")
    forged = webapp_init_data(token, {**ANNA, "id": 7999})
    forged = forged.replace(parse_qs(forged)["hash"][0], "0" * 64)
    expired = webapp_init_data(token, ANNA, auth_date=now - 7200)
    future = webapp_init_data(token, ANNA, auth_date=now + 3600)
    other_bot = webapp_init_data("999:another-bot", ANNA)

    answers = [
        await tenantry.client.get(MY_BOOKINGS, headers={"X-Telegram-Init-Data": valid}),
        await tenantry.client.post(
            BOOKINGS,
            json=booking_body(at(future_day(), "19:00")),
            headers={"X-Telegram-Init-Data": valid, "Idempotency-Key": "init-data-log"},
        ),
    ]
    for refused in (forged, expired, future, other_bot):
        answers.append(
            await tenantry.client.get(MY_BOOKINGS, headers={"X-Telegram-Init-Data": refused})
        )
    assert [a.status_code for a in answers] == [200, 201, 401, 401, 401, 401], [
        a.text for a in answers
    ]

    logged = capsys.readouterr().err
    assert "request_refused" in logged  # the refusals were logged, without the data
    for init_data in (valid, forged, expired, future, other_bot):
        shown = [init_data, parse_qs(init_data)["hash"][0]]
        for secret in shown:
            assert secret not in logged, secret
            assert all(secret not in a.text for a in answers), secret
