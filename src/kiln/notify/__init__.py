"""Outbound notifications (webhooks): I/O, off the caller's thread."""

from kiln.notify.webhook import Webhook

__all__ = ["Webhook"]
