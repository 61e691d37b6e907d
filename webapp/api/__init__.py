"""The operator API (`/api/v1`): Flask views, the checked fields and errors, a video recorded
elsewhere and its `video_url` fetch, and the OpenAPI document.
"""
