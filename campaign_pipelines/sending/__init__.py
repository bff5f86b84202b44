"""Sending a campaign: the send loop of one line, launching and finishing a campaign."""
