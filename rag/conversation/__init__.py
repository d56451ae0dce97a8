"""Conversations: a follow-up question rewritten to stand alone before it is searched."""
