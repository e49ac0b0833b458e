from __future__ import annotations

import accord


def test_all_is_sorted_and_importable() -> None:
    names = [n for n in accord.__all__ if n != "__version__"]
    assert names == sorted(names, key=str.lower) or names == sorted(names)
    for name in accord.__all__:
        assert hasattr(accord, name), name


def test_public_names_are_exactly_all() -> None:
    public = {n for n in vars(accord) if not n.startswith("_")}
    modules = {n for n, v in vars(accord).items() if type(v).__name__ == "module"}
    assert public - modules == set(accord.__all__) - {"__version__"}


def test_one_root_exception() -> None:
    for name in accord.__all__:
        obj = getattr(accord, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, accord.AccordError), name


def test_py_typed_is_shipped() -> None:
    from pathlib import Path

    assert (Path(accord.__file__).parent / "py.typed").exists()
