"""One module per noun. Each parses options, calls the library, prints; no SQL and no restic here."""
