"""Local HTTP fakes of the live intensity APIs (loopback only), for tests of the sources and the
merging service. Fixtures: see tests/fakes/conftest_plugin.py."""
