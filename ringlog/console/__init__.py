"""The operator console: read-only pages served by the API at ``/console``.

Behind the API key (a sign-in form sets a session cookie proving one of
``RINGLOG_API_KEYS``: :mod:`.auth`), the console shows, from the views the runtime keeps and
never from the log:

* **Live calls** (``/console/calls``): calls in progress and the latest others, each with its
  direction, status, duration and ABT events, kept up to date by server-sent events;
* **a call's timeline** (``/console/calls/{call_ref}``): every event of the call in the order
  recorded, with its topic, time and payload (phone numbers masked);
* **Sessions** (``/console/sessions``): open and dropped booking sessions with their stage,
  and a session's dialog so far;
* **Health** (``/console/health``): lag per consumer group, projection and partition, the
  dead-letter and quarantine counts with the latest entries, and which parts of the stack
  answer.

Modules: :mod:`.models` (pure view models: the calls board, a call's events, sessions),
:mod:`.queries` (bounded indexed reads of the views, through one
:class:`~.queries.reader.ConsoleReader`), :mod:`.live` (what the streams send), :mod:`.health`,
:mod:`.pages` (templates), :mod:`.auth` (the session cookie) and :mod:`.routes` (sign-in, pages,
streams).
"""

from ringlog.console.routes import router

__all__ = ["router"]
