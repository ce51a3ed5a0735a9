"""What both services share, in layers, each importing only the ones before it: `process`
(environment, logs), `domain` (errors, ids, page tokens: no I/O), `security` (bearer tokens
verified, TLS identities and reloading credentials), `storage` (the database,
units of work, the changelog), `feed` (the change feed's live tail and Watch calls),
`serving` (settings, start-up, the gRPC server and its interceptor). Import a layer's names
from the layer itself (`from shop_common.storage import UnitOfWork`): its `__init__` is its
surface."""
