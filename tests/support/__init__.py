"""What tests and benchmarks share: helpers, fakes and harnesses with no test in them.

One module per job, each saying what it holds. Any test module (any tier) and any benchmark may import
from here; nothing here imports a test module (tests/<tier>/test_*.py), and no test module imports another
(tests/unit/test_test_layout.py checks both). Shared pytest fixtures are not here but in the conftest.py of
the tier that uses them.
"""
