"""The service's routers, one per endpoint group."""
