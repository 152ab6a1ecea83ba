"""``ringlog demo``: the two seed stories end to end on the embedded stack."""
