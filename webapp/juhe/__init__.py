"""Juhe's antiFaceId API: the client (an injected `requests.Session`), the answer's types and
codes, the deadline that cuts a call's sockets, and the sandbox that stands in for Juhe.
Flask-free.
"""
