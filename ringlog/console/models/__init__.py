"""The console's view models: what a page or a live update shows, built from view rows.

Every function here is pure: it takes the rows the read side fetched (:mod:`..queries`) and
returns frozen dataclasses the templates render. Phone numbers are masked in these modules,
once, with the project's one rule (:func:`ringlog.logs.mask_phone`); numbers and texts reach
the templates masked only.

* :mod:`.board`: the live calls board (a call's row, the board, what changed between two);
* :mod:`.events`: a call's events (its timeline, the live list's feed);
* :mod:`.sessions`: booking sessions (the list's rows, a session's dialog).
"""
