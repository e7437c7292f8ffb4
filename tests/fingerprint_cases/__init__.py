"""Small user modules whose step functions the fingerprint tests look at.

Each module shows one behaviour. Modules that tests edit are not here: they
are written to ``tmp_path`` from templates in ``tests/test_fingerprint.py``.
"""
