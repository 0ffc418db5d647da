"""The development signing key: random, made once per checkout, kept out of git.

Development needs no configuration, but a key written in the source is a key every
reader has: anyone who reaches the port could sign a token for any user, staff included.
So the first start writes a random key to `.dev-secret` beside manage.py (ignored by
git, readable by its owner only) and every later start, and every test process, reads
it back. Production never calls this: it refuses to start without its own SECRET_KEY.
"""

import os
import secrets
import time
from pathlib import Path

FILE_NAME = ".dev-secret"


def development_secret(base_dir: Path) -> str:
    path = base_dir / FILE_NAME
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if key:
        return key
    key = secrets.token_urlsafe(50)
    try:
        # O_EXCL: when two processes start at once, one writes and both read its key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_when_written(path)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def _read_when_written(path: Path) -> str:
    """The other process created the file a moment ago; its key may not be there yet."""
    for _ in range(100):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} exists but is empty: delete it and start again")
