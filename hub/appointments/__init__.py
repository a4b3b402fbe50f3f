"""Appointments and the queue (预约 / 取号 / 叫号, docs/appointments.md), by concept: `groups` (the
item groups of config/appointments.yaml, checked with file:line), `slots` (desks' time slots and
their capacity), `bookings` (book, move, cancel: capacity taken with one conditional UPDATE),
`tickets` (take a ticket: walk-in or check-in, priority), `calls` (call the next ticket to a
counter — an atomic claim —, recall, no-show, start, finish, link to the application), `display`
(the 叫号屏's per-process broadcaster), `figures` (waiting and service times), `common` (who may
act where, the errors all surfaces share)."""
