"""Alembic migrations of the console's database (run by ``deskside.console.db.migrate``)."""
