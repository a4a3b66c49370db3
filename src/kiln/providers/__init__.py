"""Providers: where instances run. One module per backend behind ``base.Provider``."""
