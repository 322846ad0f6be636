"""The registered model's class under its first name: models registered before labeltune's MLflow code moved
into search/tracking/ pickle `search.pyfunc.LabeltuneModel` by reference (tests/test_registered_fixture.py)."""

from search.tracking.pyfunc import INPUT_SHAPE, LabeltuneModel, signature  # noqa: F401
