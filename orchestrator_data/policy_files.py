"""Policies kept as data files: one `<name>.json` per thing in a package's `policies/` folder, each
replaceable by a file of the same name in a directory setting. Shared by the search lifecycle
(SEARCH_LIFECYCLE_DIR) and retention (RETENTION_POLICY_DIR); `data_file` also reads the search index
definitions. Imports nothing of the project: every domain may use it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path


def data_file(text: str, where: str, error: type[Exception]) -> dict:
    """A data file's JSON object without its "_comment"-style keys; `error` names `where` otherwise."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise error(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{where}: expected an object")
    return {key: value for key, value in data.items() if not key.startswith("_")}


def policy_texts(package: str, names: Iterable[str], directory: Path | None, *, variable: str, kind: str,
                 error: type[Exception]) -> dict[str, tuple[str, str]]:
    """name -> (file text, where it came from): the package's `policies/<name>.json`, each replaced by
    `<directory>/<name>.json`. A file there that names no `kind` is refused, not ignored; so is a
    `directory` that is not one (`variable` names the setting)."""
    names = tuple(names)
    folder = package.split(".", 1)[-1].replace(".", "/")
    texts = {name: ((resources.files(package) / "policies" / f"{name}.json").read_text(encoding="utf-8"),
                    f"{folder}/policies/{name}.json") for name in names}
    if directory is not None:
        directory = Path(directory)
        if not directory.is_dir():
            raise error(f"{variable}: {directory} is not a directory")
        for path in sorted(directory.glob("*.json")):
            if path.stem not in names:
                raise error(f"{path}: no {kind} is named '{path.stem}' (the file name must be one of "
                            f"{', '.join(f'{n}.json' for n in names)})")
            texts[path.stem] = (path.read_text(encoding="utf-8"), str(path))
    return texts


def policy_data(text: str, where: str, error: type[Exception], *, known: set[str], subject: str,
                names: Iterable[str], expected: str) -> dict:
    """A policy file's fields after the checks every policy file shares: valid JSON, no unknown field,
    and `subject` (e.g. "index", "table") naming one of `names` and the file it is in."""
    data = data_file(text, where, error)
    for key in data:
        if key not in known:
            raise error(f"{where}: unknown field '{key}' (known: {', '.join(sorted(known))})")
    value = data.get(subject)
    names = tuple(names)
    if value not in names:
        raise error(f"{where}: '{subject}' must name one of {', '.join(names)} (got {value!r})")
    if value != expected:
        raise error(f"{where}: '{subject}' is '{value}' but the file is named for '{expected}'")
    return data
