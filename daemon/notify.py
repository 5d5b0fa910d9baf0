"""The systemd notify protocol, spoken directly: datagrams to ``$NOTIFY_SOCKET``.

``READY=1`` once the store is open, ``STATUS=`` lines, ``WATCHDOG=1`` every half
``$WATCHDOG_USEC`` (only for the process ``$WATCHDOG_PID`` names, when set), and during long
work after the steps that end (``progress``), and ``STOPPING=1`` on shutdown. Outside systemd
there is no socket and every call does nothing. A leading ``@`` in the socket's name means
Linux's abstract namespace.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("repofeed.daemon")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        self.address: str | None = None
        self.watchdog_interval: float | None = None
        self._next_ping = 0.0
        address = env.get("NOTIFY_SOCKET")
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address
        usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        if usec and (not pid or pid == str(os.getpid())):
            try:
                self.watchdog_interval = int(usec) / 2e6
            except ValueError:
                self.watchdog_interval = None
        self._sock: socket.socket | None = None
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def send(self, *fields: str) -> None:
        if self._sock is None or self.address is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode("utf-8", "replace"), self.address)
        except OSError as exc:  # the manager went away; nothing to tell
            log.debug("notify: %s", exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
        self.ping()

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def ping(self) -> None:
        """Send ``WATCHDOG=1`` now and plan the next."""
        if self.watchdog_interval is None:
            return
        self.send("WATCHDOG=1")
        self._next_ping = time.monotonic() + self.watchdog_interval

    def ping_if_due(self) -> None:
        if self.watchdog_interval is not None and time.monotonic() >= self._next_ping:
            self.ping()

    def progress(self) -> None:
        """Long work moved on a step: ping once a quarter of ``WATCHDOG_USEC`` has passed, so
        that a step may take up to three quarters of it. Pings come only from steps that end,
        so a step that hangs still gets the service restarted."""
        if self.watchdog_interval is not None and \
                time.monotonic() >= self._next_ping - self.watchdog_interval / 2:
            self.ping()

    def seconds_to_ping(self) -> float | None:
        """How long the main loop may sleep before the next ping; None without a watchdog."""
        if self.watchdog_interval is None:
            return None
        return max(0.0, self._next_ping - time.monotonic())

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
