"""Chat between a ticket's technician and the user of its device."""
