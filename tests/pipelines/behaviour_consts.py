"""A constant that a method of tests/pipelines/behaviour_lib.py reads through its module."""

FACTOR = 1
