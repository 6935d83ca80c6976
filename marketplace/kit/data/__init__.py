"""Reference data files (CSV) read by marketplace.kit.codelists."""
