"""The sending engine: from a queued message to a stored answer, in one folder."""
