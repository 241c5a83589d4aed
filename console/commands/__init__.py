"""Commands on devices for tickets: requests, output, runbooks, routes."""
