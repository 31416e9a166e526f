"""The distributed controller: PaddleSlim's protocol (`protocol`), the TCP server (`server`), leases and the
shared record (`leases`), the remote client (`client`), and the one place that picks a controller (`connect`)."""
