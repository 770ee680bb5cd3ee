"""The widgets the apps share, one a module."""
