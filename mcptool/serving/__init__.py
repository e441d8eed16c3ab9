"""Serving the Ollama API: the HTTP server, the wire format and the scheduling that the
Ollama simulator and ``mcptool model serve`` share; only where answers come from differs.
"""

from mcptool.serving.http import DropConnection, HTTPServer, Request, Response
from mcptool.serving.scheduler import ModelSlots, Scheduler, SchedulingCounters, Shape, Ticket
from mcptool.serving.wire import BUSY_MESSAGE, ApiError, StreamError, keep_alive_seconds, rfc3339

__all__ = [
    "BUSY_MESSAGE",
    "ApiError",
    "DropConnection",
    "HTTPServer",
    "ModelSlots",
    "Request",
    "Response",
    "Scheduler",
    "SchedulingCounters",
    "Shape",
    "StreamError",
    "Ticket",
    "keep_alive_seconds",
    "rfc3339",
]
