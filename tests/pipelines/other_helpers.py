"""A project module of helpers used from another module."""


def triple(x):
    return x * 3
