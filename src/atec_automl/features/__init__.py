"""Strictly-past features: tabular entity aggregates and past-event sequences."""
