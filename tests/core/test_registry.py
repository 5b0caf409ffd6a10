import pytest

from paramcast.registry import register


def test_rejects_bad_names_and_double_registration():
    with pytest.raises(ValueError, match="lower-case"):
        register("Bad Name")

    @register("test-dummy-method")
    class A:
        pass

    assert A.name == "test-dummy-method"
    with pytest.raises(ValueError, match="already registered"):
        register("test-dummy-method")(type("B", (), {}))
