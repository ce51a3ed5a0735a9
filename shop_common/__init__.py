"""What every service needs once: config helpers, the server bootstrap, storage, errors."""
