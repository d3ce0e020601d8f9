"""The test suite. Every folder is a package, so that test files in different folders may share a name
(tests/manual_bp/test_conv.py, tests/crosscheck/test_conv.py) and ``tests.helpers`` imports from any of them."""
