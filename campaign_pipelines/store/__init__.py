"""The PostgreSQL schema, its migrations and the SQL the rest of the code calls by name."""
