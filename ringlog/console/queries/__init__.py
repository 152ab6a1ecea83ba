"""The console's read side: bounded, indexed queries on the views the runtime keeps.

Nothing here reads the log. Everything comes from tables in the CRM database that the
runtime writes with its checkpoints (the worker's ``worker_calls`` and ``worker_checkpoints``,
the projector's ``view_timeline``, ``view_sessions`` and ``view_checkpoints``); these modules
only read them, and each query is bounded and served by an index:

* :mod:`.reader`: :class:`~.reader.ConsoleReader`, the one object the pages and streams read
  through (one connection per call, blocking work in a thread), made of the reads below;
* :mod:`.topics`: the deployment's topics, and positions on them;
* :mod:`.checkpoints`: how far the views are (the two checkpoint tables, by primary key: a
  few rows; the live streams poll this);
* :mod:`.calls`: the live list's calls and one call's state;
* :mod:`.events`: timeline rows between two checkpoints, of a call, at places;
* :mod:`.sessions`: open sessions, a call's session, its dialog;
* :mod:`.timeline`: the statements on the timeline view's table those reads share (by primary
  key; pages of partitions read backwards in one ``UNION ALL``).
"""
