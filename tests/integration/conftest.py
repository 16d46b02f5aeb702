"""Integration suites: the session's real ``mlflow server`` fixtures live in tests/conftest.py."""
