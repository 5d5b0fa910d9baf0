"""repofeed.systemd — the user unit template, shipped as package data (``repofeed@.service.in``)
and written by ``repofeed service install``."""
