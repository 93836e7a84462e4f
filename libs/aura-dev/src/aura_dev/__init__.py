"""Development tooling: the local process runner behind `make run` and the tests."""
