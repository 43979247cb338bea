"""A small reproduction of the old design: one blocking HTTP request per import."""
