"""ATEC AutoML: a competition harness for payment-fraud detection."""
