"""`python manage.py test` runs the pytest suite (the project's tests are pytest tests;
Django's own runner would find none and report "Ran 0 tests ... OK").

The recipe from pytest-django's documentation, `manage.py test` options mapped to pytest's.
https://pytest-django.readthedocs.io/en/latest/faq.html#how-can-i-use-manage-py-test-with-pytest-django
"""

from typing import Any


class PytestTestRunner:
    def __init__(
        self, verbosity: int = 1, failfast: bool = False, keepdb: bool = False, **kwargs: Any
    ) -> None:
        self.verbosity = verbosity
        self.failfast = failfast
        self.keepdb = keepdb

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "--keepdb", action="store_true", help="keep the test database between runs"
        )

    def run_tests(self, test_labels: list[str], **kwargs: Any) -> int:
        import pytest  # a test dependency: imported only when tests run

        argv = []
        if self.verbosity == 0:
            argv.append("--quiet")
        elif self.verbosity >= 2:
            argv.append("-" + "v" * (self.verbosity - 1))
        if self.failfast:
            argv.append("--exitfirst")
        if self.keepdb:
            argv.append("--reuse-db")
        return pytest.main([*argv, *test_labels])
