"""Loading, validating and generating ATEC-style transaction data."""
