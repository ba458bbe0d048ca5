"""Data retention: how long rows are kept (policies as data files) and the purge that applies them."""
