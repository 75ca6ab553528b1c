"""Outbound network access: the SSRF guard every user-supplied URL goes through."""
