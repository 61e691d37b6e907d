"""The pages a person sees and the operator's console: Flask views, the capture page's state,
static files and security headers. Nothing outside web/, api/ and the wiring imports them.
"""
