"""Benchmarks that print their figures: a table for people, one JSON line for tools."""
