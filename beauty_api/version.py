"""The pack's version, in one place (the CLI's --version, the package's __version__)."""

VERSION = "0.1.0"
