"""`python -m order_svc` serves; `python -m order_svc migrate` only migrates."""

import os
import sys

from order_svc import app
from order_svc.config import Settings
from order_svc.schema import MIGRATIONS
from shop_common import entrypoint

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
