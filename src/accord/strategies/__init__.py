"""Strategies: recipes over the store's one atomic primitive.

Nothing here reaches below ``Backend.txn``/``get``/``scan``/``wait``/``now``.
"""
