"""`python -m user_svc` serves; `python -m user_svc migrate` only migrates."""

import os
import sys

from shop_common import entrypoint
from user_svc import app
from user_svc.config import Settings
from user_svc.schema import MIGRATIONS

if __name__ == "__main__":
    sys.exit(
        entrypoint.main(
            sys.argv[1:],
            name=app.NAME,
            settings=Settings.from_env(os.environ),
            start=app.start,
            migrations=MIGRATIONS,
        )
    )
