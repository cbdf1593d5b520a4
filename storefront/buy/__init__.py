"""Buying: checkout, payments and orders (JSON routes and webhooks; pages beside them)."""
