"""The core's page texts (``web.*``): sign-in, the web index, connection states, common words.

A tenant overrides any of them in its ``texts:`` block, as it does bot texts
(:func:`core.web.pages.web_text`). Plugins ship their page texts with their
bot texts (``register_texts``, keys ``<plugin>.web.*``).
"""

from __future__ import annotations

__all__ = ["WEB_TEXTS"]

WEB_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "web.signin_title": "Staff sign-in",
        "web.signin_intro": "Open this page from the bot (the command /panel for admins, "
        "/storepanel for store partners), or sign in with an API key of the tenant.",
        "web.api_key": "API key",
        "web.signin": "Sign in",
        "web.signin_link": "Continue to sign in",
        "web.signin_link_intro": "This one-time link signs you in on this device.",
        "web.signout": "Sign out",
        "web.signin_bad_key": "This key is not one of this tenant's API keys.",
        "web.signin_bad_link": "This link was already used or has expired. "
        "Ask the bot for a new one.",
        "web.signin_not_staff": "These pages are for staff: admins and store partners.",
        "web.signin_required": "Please sign in again: your session has expired.",
        "web.signin_webapp": "Signing you in through Telegram…",
        "web.index_title": "Pages",
        "web.index_none": "Nothing here for your role.",
        "web.forbidden_title": "Not allowed",
        "web.forbidden": "You may not open this page.",
        "web.state_connecting": "connecting…",
        "web.state_live": "live",
        "web.state_offline": "offline, reconnecting…",
        "web.state_polling": "refreshing every few seconds",
        "web.error_generic": "Something went wrong. Please try again.",
        "web.error_network": "No connection to the server. Please try again.",
        "web.loading": "Loading…",
        "web.close": "Close",
        "web.today": "Today",
        "web.signed_in_as": "Signed in as {who}",
    },
    "ru": {
        "web.signin_title": "Вход для сотрудников",
        "web.signin_intro": "Откройте эту страницу из бота (команда /panel для администраторов, "
        "/storepanel для партнёров магазинов) или войдите по API-ключу.",
        "web.api_key": "API-ключ",
        "web.signin": "Войти",
        "web.signin_link": "Продолжить вход",
        "web.signin_link_intro": "Эта одноразовая ссылка выполнит вход на этом устройстве.",
        "web.signout": "Выйти",
        "web.signin_bad_key": "Такого API-ключа у этого бота нет.",
        "web.signin_bad_link": "Ссылка уже использована или устарела. Запросите новую в боте.",
        "web.signin_not_staff": "Эти страницы для сотрудников: администраторов и партнёров.",
        "web.signin_required": "Войдите снова: сессия истекла.",
        "web.signin_webapp": "Входим через Telegram…",
        "web.index_title": "Страницы",
        "web.index_none": "Для вашей роли здесь ничего нет.",
        "web.forbidden_title": "Нет доступа",
        "web.forbidden": "Эта страница вам недоступна.",
        "web.state_connecting": "подключение…",
        "web.state_live": "онлайн",
        "web.state_offline": "нет связи, переподключаемся…",
        "web.state_polling": "обновляется каждые несколько секунд",
        "web.error_generic": "Что-то пошло не так. Попробуйте ещё раз.",
        "web.error_network": "Нет связи с сервером. Попробуйте ещё раз.",
        "web.loading": "Загрузка…",
        "web.close": "Закрыть",
        "web.today": "Сегодня",
        "web.signed_in_as": "Вы вошли как {who}",
    },
}
