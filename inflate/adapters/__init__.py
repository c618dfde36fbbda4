"""Adapters apply the core's rules to a framework's models. They walk and rewrite; rules never do."""
