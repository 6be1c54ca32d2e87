"""Schemathesis hooks for Plaudit's API: request bodies in the media types it takes besides JSON."""

import schemathesis

# Plugin uploads are raw WebAssembly bytes; rule sets can be TOML text.
schemathesis.serializer.alias("application/wasm", "application/octet-stream")
schemathesis.serializer.alias("application/toml", "text/plain")
