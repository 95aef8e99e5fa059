"""One module per command group; the root app in txpipe_cli.app only composes them."""
