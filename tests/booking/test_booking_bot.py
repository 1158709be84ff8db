"""The booking bot through the webhook: /book for tables and services, /mybookings, admins."""

from __future__ import annotations

from _booking_support import ADMIN, BotUser, add_restaurant, add_salon, buttons, future_day, schema


async def test_book_a_table_through_the_bot(tenantry, updates, bot_api):
    config = add_restaurant(tenantry, locale="en")
    await tenantry.start()
    guest = BotUser(tenantry, updates, bot_api, "filin", config, user_id=4242)
    day = future_day(2)

    calendar = await guest.command("book")
    assert calendar.params["text"] == "Pick a date:"
    if str(day.day) not in [b["text"] for b in buttons(calendar)]:  # the day is next month
        calendar = await guest.tap(calendar, "›")
    times = await guest.tap(calendar, str(day.day))
    assert times.params["text"] == f"Free times on {day:%d.%m.%Y}:"
    assert [b["text"] for b in buttons(times)][:2] == ["12:00", "12:30"]

    party = await guest.tap(times, "19:00")
    assert party.params["text"] == "How many guests?"
    assert [b["text"] for b in buttons(party)][-1] == "8"  # t2+t3 joined seat 8

    ask_name = await guest.tap(party, "6")
    assert ask_name.params["text"] == "What name should we book under?"
    ask_phone = await guest.say("Anna")
    keyboard = ask_phone.params["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_contact"] is True
    summary = await guest.share_contact("79990001122")
    assert "Guests: 6" in summary.params["text"]
    assert "19:00" in summary.params["text"]

    done = await guest.tap(summary, "Confirm")
    assert done.params["text"].startswith("Booked! #")

    rows = await tenantry.sql(
        f"SELECT b.user_id, b.party_size, b.status, b.phone, b.source, array_agg(r.code ORDER BY r.code) AS tables "
        f'FROM "{schema(config)}".bookings b JOIN "{schema(config)}".resource_holds h ON h.booking_id = b.id '
        f'JOIN "{schema(config)}".resources r ON r.id = h.resource_id GROUP BY b.id'
    )
    assert rows == [
        {
            "user_id": 4242,
            "party_size": 6,
            "status": "confirmed",
            "phone": "+79990001122",  # E.164 (core.kit.normalize_phone)
            "source": "bot",
            "tables": ["t2", "t3"],
        }
    ]
    [notice] = bot_api.calls("sendMessage", bot_id=guest.bot_id, chat_id=ADMIN)
    assert "New booking #" in notice.params["text"]
    assert [b["text"] for b in buttons(notice)] == ["seated", "cancelled", "no-show"]

    # the flow is over: the old Confirm button is outdated now
    stale = await guest.tap(summary, "Confirm")
    assert stale is None
    answers = bot_api.calls("answerCallbackQuery", bot_id=guest.bot_id)
    assert answers[-1].params["text"].startswith("This button is outdated")
    assert len(await tenantry.sql(f'SELECT id FROM "{schema(config)}".bookings')) == 1


async def test_book_a_service_through_the_bot_in_russian(tenantry, updates, bot_api):
    config = add_salon(tenantry, locale="ru", confirmation_required=True)
    await tenantry.start()
    client = BotUser(tenantry, updates, bot_api, "glow", config, user_id=5151)
    day = future_day(3)

    calendar = await client.command("book")
    assert calendar.params["text"] == "Выберите дату:"
    if str(day.day) not in [b["text"] for b in buttons(calendar)]:
        calendar = await client.tap(calendar, "›")
    times = await client.tap(calendar, str(day.day))
    services = await client.tap(times, "19:00")
    labels = [b["text"] for b in buttons(services)]
    assert labels == [
        "Haircut · 60 мин · 1\u00a0500,00\u00a0₽"
    ]  # coloring (120 min) would end after 20:00
    staff = await client.tap(services, labels[0])
    assert [b["text"] for b in buttons(staff)] == ["Любой мастер", "Anna", "Boris"]
    await client.tap(staff, "Boris")
    await client.say("Мария")
    bad = await client.say("not a phone")
    assert bad.params["text"].startswith("Это не похоже")
    summary = await client.say("+7 999 000-11-22")
    assert "Haircut, мастер Boris, 1\u00a0500,00\u00a0₽" in summary.params["text"]
    done = await client.tap(summary, "Подтвердить")
    assert "ждёт подтверждения" in done.params["text"]

    [row] = await tenantry.sql(
        f'SELECT id, status, price, service_code FROM "{schema(config)}".bookings'
    )
    assert (
        row["status"] == "pending" and row["price"] == 150000 and row["service_code"] == "haircut"
    )

    # the admin confirms from the notification; the client is told
    [notice] = bot_api.calls("sendMessage", bot_id=client.bot_id, chat_id=ADMIN)
    assert [b["text"] for b in buttons(notice)] == ["подтверждена", "Отклонить"]
    admin = BotUser(tenantry, updates, bot_api, "glow", config, user_id=ADMIN)
    await admin.tap(notice, "подтверждена")
    told = client.sent()[-1]
    assert told.params["text"] == f"Ваша бронь №{row['id']} на {day:%d.%m.%Y} 19:00: подтверждена."
    [status] = await tenantry.sql(f'SELECT status FROM "{schema(config)}".bookings')
    assert status["status"] == "confirmed"
