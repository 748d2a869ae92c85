"""Who is calling, and what they may do.

tokens  verify a bearer token (Cognito's ID token, or make dev's issuer's)
access  the caller, the access levels of operations, and the ownership rules
"""
